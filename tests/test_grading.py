"""CBFRatioGrader and the Youden cut-off against hand-computable cases and sklearn."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import get_scorer, roc_auc_score, roc_curve
from sklearn.utils.estimator_checks import parametrize_with_checks

from skperfusion import CBFRatioGrader
from skperfusion.grading import youden_cutoff


@parametrize_with_checks([CBFRatioGrader()])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_youden_perfect_separation_is_the_midpoint_of_the_gap():
    cutoff, sensitivity, specificity = youden_cutoff([0.75, 1.0, 1.25, 2.0, 2.5, 3.0],
                                                     [0, 0, 0, 1, 1, 1])
    assert (cutoff, sensitivity, specificity) == (1.625, 1.0, 1.0)


def test_youden_hand_case_with_overlap_breaks_ties_towards_the_lower_cut_off():
    # LGG 1, 1.5, 2.5 and HGG 2, 3, 4: cut-offs 1.75 (sens 3/3, spec 2/3) and
    # 2.75 (sens 2/3, spec 3/3) both give J = 2/3; the lower one is kept.
    cutoff, sensitivity, specificity = youden_cutoff([1.0, 1.5, 2.5, 2.0, 3.0, 4.0],
                                                     [0, 0, 0, 1, 1, 1])
    assert cutoff == 1.75
    assert sensitivity == 1.0
    assert specificity == pytest.approx(2 / 3)


def test_youden_index_matches_the_best_point_of_sklearn_roc_curve():
    rng = np.random.default_rng(0)
    for _ in range(20):
        is_high = rng.random(30) < 0.5
        is_high[:2] = [True, False]
        scores = np.round(rng.normal(is_high * 0.8, 1.0), 1)  # rounding makes ties
        cutoff, sensitivity, specificity = youden_cutoff(scores, is_high)
        fpr, tpr, _ = roc_curve(is_high, scores)
        assert sensitivity + specificity - 1 == pytest.approx(np.max(tpr - fpr))
        assert sensitivity == pytest.approx(np.mean(scores[is_high] > cutoff))
        assert specificity == pytest.approx(np.mean(scores[~is_high] <= cutoff))


@pytest.mark.parametrize("scores, is_high, match", [
    ([1.0, 2.0], [True, True], "one class"),
    ([1.0, np.nan], [True, False], "NaN"),
    ([1.0, 2.0], [True], "same length"),
])
def test_youden_rejects_bad_input(scores, is_high, match):
    with pytest.raises(ValueError, match=match):
        youden_cutoff(scores, is_high)


RATIOS = np.array([0.8, 1.0, 1.1, 1.4, 1.3, 1.9, 2.4, 3.0])
GRADES = np.array(["LGG", "LGG", "LGG", "LGG", "HGG", "HGG", "HGG", "HGG"])


def test_grader_thresholds_at_the_youden_cut_off_with_string_labels():
    grader = CBFRatioGrader(higher_class="HGG").fit(RATIOS[:, None], GRADES)
    assert grader.classes_.tolist() == ["HGG", "LGG"]
    # Sorted ratios ... 1.1 (LGG), 1.3 (HGG), 1.4 (LGG), 1.9 (HGG): J is 3/4
    # at 1.2 (sens 1, spec 3/4) and at 1.65 (sens 3/4, spec 1); lower kept.
    assert grader.cutoff_ == pytest.approx(1.2)
    assert (grader.sensitivity_, grader.specificity_) == (1.0, 0.75)
    assert grader.predict([[1.15], [1.25], [5.0]]).tolist() == ["LGG", "HGG", "HGG"]
    # classes_[1] is "LGG": the decision is positive below the cut-off.
    np.testing.assert_allclose(grader.decision_function([[1.0], [1.5]]), [0.2, -0.3])
    assert grader.score(RATIOS[:, None], GRADES) == pytest.approx(7 / 8)


def test_roc_auc_scoring_equals_the_auc_of_the_ratio_for_hgg():
    grader = CBFRatioGrader(higher_class="HGG").fit(RATIOS[:, None], GRADES)
    expected = roc_auc_score(GRADES == "HGG", RATIOS)
    assert get_scorer("roc_auc")(grader, RATIOS[:, None], GRADES) == pytest.approx(expected)
    assert expected == pytest.approx(15 / 16)  # one discordant pair (1.4 LGG > 1.3 HGG)


def test_predict_proba_is_the_discriminant_logistic_centred_on_the_cut_off():
    grader = CBFRatioGrader(higher_class="HGG").fit(RATIOS[:, None], GRADES)
    high, low = RATIOS[GRADES == "HGG"], RATIOS[GRADES == "LGG"]
    pooled = (np.sum((high - high.mean()) ** 2) + np.sum((low - low.mean()) ** 2)) / 6
    slope = (high.mean() - low.mean()) / pooled
    assert grader.slope_ == pytest.approx(slope)
    proba = grader.predict_proba([[grader.cutoff_], [2.0], [0.5]])
    np.testing.assert_allclose(proba[0], [0.5, 0.5])
    hgg = 1 / (1 + np.exp(-slope * (np.array([2.0, 0.5]) - grader.cutoff_)))
    np.testing.assert_allclose(proba[1:, 0], hgg)  # classes_[0] is "HGG"
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_constant_classes_give_certain_probabilities():
    grader = CBFRatioGrader().fit([[1.0], [1.0], [2.0], [2.0]], [0, 0, 1, 1])
    assert grader.slope_ == np.inf
    np.testing.assert_array_equal(grader.predict_proba([[0.5], [1.5], [3.0]]),
                                  [[1, 0], [0.5, 0.5], [0, 1]])


def test_learned_direction_and_feature_selection():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    informative = np.where(y == 1, 1.0, 3.0) + rng.normal(0, 0.3, 40)  # class 1 lower
    X = pd.DataFrame({"noise": rng.normal(0, 1, 40), "MTT_ratio": informative})
    grader = CBFRatioGrader().fit(X, y)
    assert grader.feature_index_ == 1
    assert grader.higher_class_ == 0
    assert grader.score(X, y) == 1.0
    named = CBFRatioGrader(feature="MTT_ratio").fit(X, y)
    assert named.cutoff_ == grader.cutoff_


@pytest.mark.parametrize("params, X, y, match", [
    ({}, [[1.0], [2.0]], ["HGG", "HGG"], "one class"),
    ({}, [[1.0], [np.nan]], ["LGG", "HGG"], "NaN"),
    ({"higher_class": "GBM"}, [[1.0], [2.0]], ["LGG", "HGG"], "not one of the classes"),
    ({}, [[1.0], [2.0], [3.0]], ["LGG", "HGG", "GBM"], "Only binary"),
    ({"feature": "CBF_ratio"}, [[1.0], [2.0]], ["LGG", "HGG"], "not a column"),
    ({"feature": 3}, [[1.0], [2.0]], ["LGG", "HGG"], "out of range"),
])
def test_grader_rejects_bad_input(params, X, y, match):
    with pytest.raises(ValueError, match=match):
        CBFRatioGrader(**params).fit(X, y)
