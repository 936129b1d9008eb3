"""The study's statistics at small n, its feasibility checks and its report text."""

from itertools import product

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from skperfusion.study.comparison import (
    MIN_DELONG_PER_CLASS,
    auc_comparison_table,
    permutation_auc_test,
)
from skperfusion.study.feasibility import check_study_design
from skperfusion.study.report import plural


def _pair_auc(scores, is_high):
    """The AUC as the Mann-Whitney double sum over (HGG, LGG) pairs, ties one half."""
    high = [s for s, h in zip(scores, is_high, strict=True) if h]
    low = [s for s, h in zip(scores, is_high, strict=True) if not h]
    return sum((x > y) + 0.5 * (x == y) for x in high for y in low) / (len(high) * len(low))


def _reference_permutation_p(a, b, is_high):
    """Every swap of the two methods' ranks within patients, enumerated one by one."""
    ranks = [pd.Series(a).rank().tolist(), pd.Series(b).rank().tolist()]
    observed = abs(_pair_auc(ranks[0], is_high) - _pair_auc(ranks[1], is_high))
    extreme = 0
    for swap in product([False, True], repeat=len(a)):
        first = [r1 if s else r0 for r0, r1, s in zip(*ranks, swap, strict=True)]
        second = [r0 if s else r1 for r0, r1, s in zip(*ranks, swap, strict=True)]
        difference = abs(_pair_auc(first, is_high) - _pair_auc(second, is_high))
        extreme += difference >= observed - 1e-12
    return extreme / 2 ** len(a)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_permutation_test_matches_a_plain_enumeration(seed):
    rng = np.random.default_rng(seed)
    is_high = np.array([False] * 3 + [True] * 5)
    a = rng.normal(is_high * 1.0, 1.0)
    b = rng.normal(is_high * 0.3, 1.0)
    p, exact = permutation_auc_test(a, b, is_high)
    assert exact and p == pytest.approx(_reference_permutation_p(a, b, is_high))


def test_permutation_p_cannot_go_below_what_the_patients_allow():
    # 4 HGG and 3 LGG (the case where DeLong printed p = 0.0004): the observed swap
    # and its mirror are always among the 2^7 relabellings, so p >= 2 / 128.
    is_high = np.array([True] * 4 + [False] * 3)
    rng = np.random.default_rng(0)
    p_values = [permutation_auc_test(rng.normal(size=7), rng.normal(size=7), is_high)[0]
                for _ in range(50)]
    assert min(p_values) >= 2 / 2 ** 7
    perfect, reversed_ = [5, 6, 7, 8, 1, 2, 3], [1, 2, 3, 4, 5, 6, 7]
    assert permutation_auc_test(perfect, reversed_, is_high)[0] == 2 / 2 ** 7


def test_delong_only_from_the_minimum_per_class():
    rng = np.random.default_rng(0)
    for n, expected in ((MIN_DELONG_PER_CLASS, "DeLong"), (6, "permutation (exact)"),
                        (MIN_DELONG_PER_CLASS - 1, "permutation (Monte Carlo)")):
        y = np.array(["LGG"] * n + ["HGG"] * n)
        ratios = pd.DataFrame({"A": rng.normal(y == "HGG", 1.0), "B": rng.normal(size=2 * n),
                               "C": rng.normal(size=2 * n)})
        table = auc_comparison_table(ratios, y)
        assert len(table) == 3 and set(table["test"]) == {expected}
        assert table["p"].between(0, 1).all()
        np.testing.assert_allclose(table["auc_a"].iloc[0], roc_auc_score(y == "HGG",
                                                                         ratios["A"]))


def test_an_eight_patient_study_is_refused_with_its_remedies():
    grades = ["LGG"] * 3 + ["HGG"] * 5
    with pytest.raises(ValueError) as info:
        check_study_design(grades, test_size=0.4, n_splits=5, snrs=(20,), n_draws=3)
    message = str(info.value)
    assert "8 patients: 3 LGG, 5 HGG" in message and "Nothing was trained" in message
    assert "--cv-splits 3 or fewer" in message
    assert "use --test-size" in message
    # With the remedies applied, it passes.
    size = float(message.split("use --test-size ")[1].split()[0])
    check_study_design(grades, test_size=size, n_splits=3, snrs=(20,), n_draws=3)


def test_feasibility_checks_noise_settings_and_single_class_cohorts():
    with pytest.raises(ValueError, match=r"--snrs must be finite and positive.*"
                                         r"--noise-draws must be at least 1"):
        check_study_design(["LGG"] * 10 + ["HGG"] * 10, test_size=0.4, n_splits=5,
                           snrs=(20, -1), n_draws=0)
    with pytest.raises(ValueError, match="at least 2 patients of each grade"):
        check_study_design(["HGG"] * 10 + ["LGG"], test_size=0.4, n_splits=2, snrs=(20,),
                           n_draws=1)


def test_plural():
    assert [plural(n, "draw") for n in (0, 1, 2)] == ["0 draws", "1 draw", "2 draws"]
