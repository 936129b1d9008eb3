"""Paired comparison of ROC curves: DeLong's test for correlated AUCs.

Several methods grade the *same* patients, so their AUCs are correlated and
an unpaired comparison of their confidence intervals says little. DeLong,
DeLong and Clarke-Pearson (1988) estimate the covariance of the AUCs from the
structural components of the Mann-Whitney statistic; Sun and Xu (2014)
compute them from midranks in ``O(k · N log N)`` for ``k`` methods and
``N`` patients, the algorithm used here.
"""

from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata

__all__ = ["delong_covariance", "delong_table"]


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
    return pd.DataFrame(rows, columns=["method_a", "method_b", "auc_a", "auc_b", "difference",
                                       "se", "z", "p"])
