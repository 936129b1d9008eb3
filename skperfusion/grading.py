"""Glioma grading from tumour/NAWM perfusion ratios (Fayolle et al. 2025, §2.3).

The paper separates low- from high-grade gliomas with one number per patient,
the mean tumour CBF divided by the mean contralateral normal-appearing white
matter (NAWM) CBF, and a cut-off chosen by Youden's method (maximal
sensitivity + specificity - 1). :class:`CBFRatioGrader` is that rule as a
scikit-learn classifier.
"""

from numbers import Integral
from typing import ClassVar

import numpy as np
from scipy.special import expit
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from ._docs import fill_doc

__all__ = ["CBFRatioGrader", "youden_cutoff"]


def youden_cutoff(scores, is_high):
    """Youden-optimal cut-off of a score between two groups of patients.

    The rule is ``score > cutoff`` → the "high" group. Candidate cut-offs are
    the midpoints between consecutive distinct scores (so that no observed
    score sits on the cut-off) and the largest score (nobody called high);
    among the candidates maximising ``J = sensitivity + specificity - 1`` the
    lowest is returned.

    Parameters
    ----------
    scores : array_like of shape (n_samples,)
        Finite scores, e.g. tumour/NAWM CBF ratios (dimensionless).
    is_high : array_like of bool of shape (n_samples,)
        True for the group expected above the cut-off (e.g. HGG); both groups
        must be present.

    Returns
    -------
    cutoff : float
        The cut-off, in the unit of ``scores``.
    sensitivity : float
        Fraction of the high group above the cut-off.
    specificity : float
        Fraction of the other group at or below the cut-off.

    Examples
    --------
    >>> youden_cutoff([1.0, 1.5, 2.0, 3.0, 1.25], [False, False, True, True, True])
    (1.75, 0.6666666666666666, 1.0)
    """
    scores = np.asarray(scores, dtype=float)
    is_high = np.asarray(is_high, dtype=bool)
    if scores.ndim != 1 or scores.shape != is_high.shape:
        raise ValueError(
            f"scores and is_high must be 1-D of the same length; got shapes {scores.shape} "
            f"and {is_high.shape}."
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf; a cut-off needs finite values.")
    high = np.sort(scores[is_high])
    low = np.sort(scores[~is_high])
    if high.size == 0 or low.size == 0:
        raise ValueError(
            "A Youden cut-off needs patients of both classes; got only one class."
        )
    values = np.unique(scores)
    candidates = np.append((values[:-1] + values[1:]) / 2, values[-1])
    n_high_above = high.size - np.searchsorted(high, candidates, side="right")
    n_low_below = np.searchsorted(low, candidates, side="right")
    # J scaled by n_high·n_low, in integers, so that exact ties stay ties.
    best = np.argmax(n_high_above * low.size + n_low_below * high.size)
    return (float(candidates[best]), float(n_high_above[best] / high.size),
            float(n_low_below[best] / low.size))


def _rank_auc(X, positive):
    """ROC AUC of every column of ``X`` for ``positive`` samples scoring higher."""
    ranks = rankdata(X, axis=0)
    n_pos = positive.sum()
    n_neg = positive.size - n_pos
    return (ranks[positive].sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


class CBFRatioGrader(ClassifierMixin, BaseEstimator):
    """Binary classifier thresholding a perfusion ratio at its Youden cut-off.

    ``fit`` finds the cut-off maximising sensitivity + specificity - 1 on
    the training patients (:func:`youden_cutoff`); patients whose ratio is
    above it are assigned the class with the higher ratios (HGG for the
    tumour/NAWM CBF ratio), the others the second class. Works with any two
    labels; ``classes_`` is sorted as usual in scikit-learn, so with the
    labels ``"HGG"``/``"LGG"`` the positive class of ``decision_function``
    (``classes_[1]``) is ``"LGG"``: ROC AUC computed by ``scoring="roc_auc"``
    is nevertheless the AUC of the ratio for HGG, because both flip together.

    Parameters
    ----------
    higher_class : label or None, default=None
        The class expected to have the higher ratios (e.g. ``"HGG"``). None
        learns it from the training data: the class whose ratios rank higher
        (training ROC AUC ≥ 0.5; ``classes_[1]`` on an exact tie). Fixing it
        encodes the clinical prior and keeps an uninformative ratio from
        flipping the rule on training noise.
    feature : int, str or None, default=None
        Column of ``X`` holding the ratio (index, or name when ``X`` is a
        DataFrame). None uses the only column, or with several columns (e.g.
        CBF, CBV and MTT ratios) the one whose training ROC AUC is farthest
        from 0.5.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two labels, sorted.
    higher_class_ : label
        The class assigned above the cut-off.
    feature_index_ : int
        Index of the column used.
    cutoff_ : float
        Youden-optimal cut-off, in the unit of the ratio (dimensionless for
        tumour/NAWM ratios).
    sensitivity_ : float
        Training fraction of ``higher_class_`` above the cut-off.
    specificity_ : float
        Training fraction of the other class at or below the cut-off.
    slope_ : float
        Slope of the logistic link of :meth:`predict_proba`, in 1/ratio unit.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names seen in ``fit``, when ``X`` had string column names.

    See Also
    --------
    skperfusion.exam_estimators.ROIRatio : Tumour/NAWM ratios from perfusion maps.
    skperfusion.grading.youden_cutoff : The cut-off rule.

    Notes
    -----
    ``decision_function`` is the signed distance from the cut-off in ratio
    units, positive towards ``classes_[1]``. ``predict_proba`` maps it
    through a logistic function, ``P(classes_[1]) = 1 / (1 + exp(-slope_ ·
    d))``, centred on the Youden cut-off (so that probabilities and
    predictions agree) with the slope of the linear discriminant,
    ``|mean_high - mean_low| / pooled within-class variance`` — the exact
    posterior log-odds slope when the ratios of both classes are Gaussian with
    a common variance. It is infinite (probabilities 0 or 1) when both
    classes are constant, and zero (probabilities 0.5) when their means
    coincide.

    Examples
    --------
    >>> from skperfusion import CBFRatioGrader
    >>> ratios = [[0.75], [1.0], [1.25], [2.0], [2.5], [3.0]]
    >>> grades = ["LGG", "LGG", "LGG", "HGG", "HGG", "HGG"]
    >>> grader = CBFRatioGrader(higher_class="HGG").fit(ratios, grades)
    >>> grader.cutoff_
    1.625
    >>> grader.predict([[1.0], [2.0]]).tolist()
    ['LGG', 'HGG']
    """

    _parameter_constraints: ClassVar[dict] = {
        "higher_class": "no_validation",
        "feature": [None, Interval(Integral, 0, None, closed="left"), str],
    }

    def __init__(self, higher_class=None, feature=None):
        self.higher_class = higher_class
        self.feature = feature

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Find the Youden-optimal cut-off on training ratios.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Ratios, one row per patient (usually one column,
            see ``feature``).
        y : array_like of shape (n_samples,)
            Two class labels, e.g. ``"LGG"``/``"HGG"``.

        Returns
        -------
        self : object
            Fitted grader.
        """
        X, y = validate_data(self, X, y, dtype=np.float64)
        y_type = type_of_target(y, input_name="y", raise_unknown=True)
        if y_type != "binary":
            raise ValueError(
                f"Only binary classification is supported. The type of the target is {y_type}."
            )
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if self.classes_.size != 2:
            raise ValueError(
                f"CBFRatioGrader needs patients of two classes (e.g. LGG and HGG); got only "
                f"one class, {self.classes_[0]!r}."
            )
        self.feature_index_ = self._feature_index(X, y_index == 1)
        ratio = X[:, self.feature_index_]
        if self.higher_class is None:
            auc = _rank_auc(ratio[:, None], y_index == 1)[0]
            self.higher_class_ = self.classes_[int(auc >= 0.5)]
        elif self.higher_class in self.classes_:
            self.higher_class_ = self.higher_class
        else:
            raise ValueError(
                f"higher_class={self.higher_class!r} is not one of the classes "
                f"{self.classes_.tolist()}."
            )
        is_high = y == self.higher_class_
        self.cutoff_, self.sensitivity_, self.specificity_ = youden_cutoff(ratio, is_high)
        residuals = np.concatenate(
            [ratio[is_high] - ratio[is_high].mean(), ratio[~is_high] - ratio[~is_high].mean()]
        )
        pooled_variance = residuals @ residuals / max(ratio.size - 2, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = abs(ratio[is_high].mean() - ratio[~is_high].mean()) / pooled_variance
        self.slope_ = 0.0 if np.isnan(slope) else float(slope)
        return self

    def _feature_index(self, X, positive):
        """Resolve ``feature`` to a column index of the validated ``X``."""
        n_features = X.shape[1]
        if isinstance(self.feature, str):
            names = getattr(self, "feature_names_in_", None)
            if names is None or self.feature not in names:
                raise ValueError(
                    f"feature={self.feature!r} is not a column of X; name a column of a "
                    "DataFrame or give an integer index."
                )
            return int(np.flatnonzero(names == self.feature)[0])
        if self.feature is not None:
            if self.feature >= n_features:
                raise ValueError(
                    f"feature={self.feature} is out of range for X with {n_features} feature(s)."
                )
            return int(self.feature)
        if n_features == 1:
            return 0
        return int(np.argmax(np.abs(_rank_auc(X, positive) - 0.5)))

    @fill_doc
    def decision_function(self, X):
        """Signed distance of each ratio from the cut-off.

        %(ratios_parameters_returns)s
        distance : ndarray of shape (n_samples,)
            ``ratio - cutoff_`` when ``higher_class_`` is ``classes_[1]``,
            ``cutoff_ - ratio`` otherwise (ratio units): positive values are
            predicted ``classes_[1]``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        distance = X[:, self.feature_index_] - self.cutoff_
        return distance if self.higher_class_ == self.classes_[1] else -distance

    @fill_doc
    def predict(self, X):
        """Grade each patient by comparing its ratio with the cut-off.

        %(ratios_parameters_returns)s
        labels : ndarray of shape (n_samples,)
            ``higher_class_`` above the cut-off, the other class at or below.
        """
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]

    @fill_doc
    def predict_proba(self, X):
        """Class probabilities from a logistic link centred on the cut-off.

        %(ratios_parameters_returns)s
        proba : ndarray of shape (n_samples, 2)
            Probabilities of ``classes_[0]`` and ``classes_[1]``; 0.5 each
            exactly at the cut-off (see Notes of the class).
        """
        distance = self.decision_function(X)
        with np.errstate(invalid="ignore"):
            positive = np.where(distance == 0, 0.5, expit(self.slope_ * distance))
        return np.column_stack([1.0 - positive, positive])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags
