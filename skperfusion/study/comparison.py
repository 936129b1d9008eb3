"""Paired comparison of ROC curves: DeLong's test, or a permutation test at small n.

Several methods grade the *same* patients, so their AUCs are correlated and
an unpaired comparison of their confidence intervals says little. DeLong,
DeLong and Clarke-Pearson (1988) estimate the covariance of the AUCs from the
structural components of the Mann-Whitney statistic; Sun and Xu (2014)
compute them from midranks in ``O(k · N log N)`` for ``k`` methods and
``N`` patients, the algorithm used here. The test is asymptotic (a normal
approximation): with few patients per class its p-values go far below what
any exact test on those patients can reach (with 4 and 3 patients, 0.0004
where the paired permutation test cannot go below 2/2^7 = 0.016).
:func:`auc_comparison_table` therefore uses it only from
:data:`MIN_DELONG_PER_CLASS` patients of each class, and below that the paired
permutation test of Venkatraman and Begg (1996): each method's scores are
replaced by their ranks, and under the null hypothesis the two ranks of a
patient are exchangeable.
"""

from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata

__all__ = ["MIN_DELONG_PER_CLASS", "auc_comparison_table", "delong_covariance", "delong_table",
           "permutation_auc_test"]

MIN_DELONG_PER_CLASS = 20
"""Fewest patients of each class for which DeLong's asymptotic test is used.

Below it the normal approximation of the AUC difference is poor; the exact
(or Monte Carlo) paired permutation test is used instead."""

_EXACT_MAX_PATIENTS = 16  # 2^16 relabellings, enumerated exactly
_COLUMNS = ["method_a", "method_b", "auc_a", "auc_b", "difference", "se", "z", "p", "test"]


def delong_covariance(scores, is_high):
    """AUCs of several scores on the same patients and their DeLong covariance.

    Parameters
    ----------
    scores : array_like of shape (n_patients, n_methods)
        Finite scores, one column per method; the positive class scores higher.
    is_high : array_like of bool of shape (n_patients,)
        True for the positive class (e.g. HGG); both classes present.

    Returns
    -------
    auc : ndarray of shape (n_methods,)
        ROC AUC of each column (ties count one half).
    covariance : ndarray of shape (n_methods, n_methods)
        DeLong's estimate of the covariance of the AUCs,
        ``S10 / m + S01 / n`` with ``m`` positives and ``n`` negatives.

    Notes
    -----
    Sun and Xu's fast algorithm: with ``Tz`` the midranks of a score among
    all patients and ``Tx``, ``Ty`` those within the positives and the
    negatives, the structural components are ``V10 = (Tz - Tx) / n`` for the
    positives and ``V01 = 1 - (Tz - Ty) / m`` for the negatives, and
    ``AUC = mean(V10)``.
    """
    scores = np.asarray(scores, dtype=float)
    is_high = np.asarray(is_high, dtype=bool)
    if scores.ndim != 2 or scores.shape[0] != is_high.size:
        raise ValueError(f"scores must be (n_patients, n_methods) with one row per label; got "
                         f"shapes {scores.shape} and {is_high.shape}.")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf; DeLong's test needs finite scores.")
    high, low = scores[is_high].T, scores[~is_high].T
    m, n = high.shape[1], low.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"DeLong's test needs at least two patients of each class; got {m} "
                         f"and {n}.")
    ranks = rankdata(np.concatenate([high, low], axis=1), axis=1)
    v10 = (ranks[:, :m] - rankdata(high, axis=1)) / n
    v01 = 1.0 - (ranks[:, m:] - rankdata(low, axis=1)) / m
    covariance = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return v10.mean(axis=1), covariance


def delong_table(ratios, y, *, higher_class="HGG"):
    """DeLong's two-sided test for every pair of methods on the same patients.

    Parameters
    ----------
    ratios : pandas.DataFrame of shape (n_patients, n_methods)
        Scores (e.g. tumour/NAWM CBF ratios), one column per method.
    y : array_like of shape (n_patients,)
        Labels in the row order of ``ratios``.
    higher_class : label, default="HGG"
        The class expected to score higher.

    Returns
    -------
    table : pandas.DataFrame
        One row per pair: ``method_a``, ``method_b``, ``auc_a``, ``auc_b``,
        ``difference`` (``auc_a - auc_b``), its standard error ``se``, ``z``
        and the two-sided p-value ``p`` (normal approximation; 1 for two
        methods that rank every patient pair alike).

    Examples
    --------
    >>> import pandas as pd
    >>> ratios = pd.DataFrame({"A": [1.0, 1.2, 1.1, 2.0, 2.5, 1.9],
    ...                        "B": [1.0, 2.2, 1.1, 2.0, 1.5, 1.9]})
    >>> row = delong_table(ratios, ["LGG"] * 3 + ["HGG"] * 3).iloc[0]
    >>> print(f"{row.auc_a:.2f} vs {row.auc_b:.2f}, p = {row.p:.2f}")
    1.00 vs 0.67, p = 0.32
    """
    methods = list(ratios.columns)
    auc, covariance = delong_covariance(ratios.to_numpy(), np.asarray(y) == higher_class)
    rows = []
    for a, b in combinations(range(len(methods)), 2):
        difference = auc[a] - auc[b]
        se = float(np.sqrt(max(covariance[a, a] + covariance[b, b] - 2 * covariance[a, b],
                               0.0)))
        z = difference / se if se > 0 else 0.0
        p = float(2 * norm.sf(abs(z))) if se > 0 else 1.0
        rows.append({"method_a": methods[a], "method_b": methods[b], "auc_a": auc[a],
                     "auc_b": auc[b], "difference": difference, "se": se, "z": z, "p": p})
    return pd.DataFrame([row | {"test": "DeLong"} for row in rows], columns=_COLUMNS)


def _aucs(scores, is_high):
    """AUC of each row of ``scores`` (n_rows, n_patients), ties counting one half."""
    difference = scores[:, is_high][:, :, None] - scores[:, ~is_high][:, None, :]
    return ((difference > 0) + 0.5 * (difference == 0)).mean(axis=(1, 2))


def permutation_auc_test(a, b, is_high, *, n_permutations=10_000, random_state=0):
    """Paired permutation test of the difference of two AUCs on the same patients.

    Venkatraman and Begg (1996): each score is replaced by its rank among
    the patients (the AUC depends on ranks only, and ranks put two methods
    on one scale); under the null hypothesis the two methods' ranks of a
    patient are exchangeable, so the p-value is the fraction of the ``2^N``
    swaps of ranks within patients whose AUC difference is at least as
    large in magnitude as the observed one. All swaps are enumerated up to
    16 patients; beyond, ``n_permutations`` random ones (the observed
    labelling counted among them).

    Parameters
    ----------
    a, b : array_like of shape (n_patients,)
        Scores of the two methods (the positive class scores higher).
    is_high : array_like of bool of shape (n_patients,)
        True for the positive class; both classes present.
    n_permutations : int, default=10000
        Random swaps beyond 16 patients.
    random_state : int, default=0
        Seed of the random swaps.

    Returns
    -------
    p : float
        Two-sided p-value, at least ``2 / 2^N`` when exact (the observed
        swap and its mirror; patients with equal ranks double it).
    exact : bool
        Whether every swap was enumerated.

    Examples
    --------
    >>> from skperfusion.study.comparison import permutation_auc_test
    >>> permutation_auc_test([1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1],
    ...                      [False] * 3 + [True] * 4)
    (0.03125, True)
    """
    is_high = np.asarray(is_high, dtype=bool)
    ranks = np.stack([rankdata(a), rankdata(b)])
    n = is_high.size
    exact = n <= _EXACT_MAX_PATIENTS
    if exact:
        swaps = (np.arange(2 ** n)[:, None] >> np.arange(n)) & 1
    else:
        rng = np.random.default_rng(random_state)
        swaps = np.vstack([np.zeros(n, int), rng.integers(0, 2, (n_permutations - 1, n))])
    swaps = swaps.astype(bool)
    first = np.where(swaps, ranks[1], ranks[0])
    second = np.where(swaps, ranks[0], ranks[1])
    differences = np.abs(_aucs(first, is_high) - _aucs(second, is_high))
    observed = differences[0]  # no swap (the first row, in both cases)
    # The tolerance keeps float noise from dropping ties with the observed difference.
    return float(np.mean(differences >= observed - 1e-12)), exact


def auc_comparison_table(ratios, y, *, higher_class="HGG", min_per_class=MIN_DELONG_PER_CLASS,
                         n_permutations=10_000, random_state=0):
    """Every pair of methods compared on the same patients, by a test valid at this n.

    DeLong's test (:func:`delong_table`) where each class has at least
    ``min_per_class`` patients; otherwise the paired permutation test
    (:func:`permutation_auc_test`), whose p-values are exact at any n.

    Parameters
    ----------
    ratios : pandas.DataFrame of shape (n_patients, n_methods)
        Scores, one column per method.
    y : array_like of shape (n_patients,)
        Labels in the row order of ``ratios``.
    higher_class : label, default="HGG"
        The class expected to score higher.
    min_per_class : int, default=MIN_DELONG_PER_CLASS
        Fewest patients of each class for DeLong's test.
    n_permutations : int, default=10000
        Random swaps of the permutation test beyond 16 patients.
    random_state : int, default=0
        Seed of those swaps.

    Returns
    -------
    table : pandas.DataFrame
        The columns of :func:`delong_table` and ``test`` (``"DeLong"``,
        ``"permutation (exact)"`` or ``"permutation (Monte Carlo)"``); the
        permutation test has no standard error or z (NaN).
    """
    is_high = np.asarray(y) == higher_class
    if min(is_high.sum(), (~is_high).sum()) >= min_per_class:
        return delong_table(ratios, y, higher_class=higher_class)
    methods = list(ratios.columns)
    scores = ratios.to_numpy(dtype=float)
    auc = _aucs(scores.T, is_high)
    rows = []
    for a, b in combinations(range(len(methods)), 2):
        p, exact = permutation_auc_test(scores[:, a], scores[:, b], is_high,
                                        n_permutations=n_permutations,
                                        random_state=random_state)
        rows.append({"method_a": methods[a], "method_b": methods[b], "auc_a": auc[a],
                     "auc_b": auc[b], "difference": auc[a] - auc[b], "se": np.nan,
                     "z": np.nan, "p": p,
                     "test": f"permutation ({'exact' if exact else 'Monte Carlo'})"})
    return pd.DataFrame(rows, columns=_COLUMNS)
