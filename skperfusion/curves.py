"""Voxel-level input conventions: pairing tissue curves with AIFs.

One sample is one voxel. ``X`` has shape ``(n_samples, 2, n_times)`` with
channel 0 the tissue curve and channel 1 that voxel's arterial input curve,
or the flat form ``(n_samples, 2 * n_times)`` laid out ``[tissue | aif]``.
"""

import numpy as np
from sklearn.utils.validation import validate_data

__all__ = ["pair_curves", "shared_aif", "split_curves"]

TISSUE, AIF = 0, 1


def pair_curves(tissue, aif, *, flat=False):
    """Build the estimator input ``X`` from tissue curves and arterial input.

    Parameters
    ----------
    tissue : array_like of shape (n_samples, n_times) or (n_times,)
        Tissue curves (signal or concentration).
    aif : array_like of shape (n_times,) or (n_samples, n_times)
        One AIF broadcast to every sample, or one AIF per sample, in the
        same unit as ``tissue``.
    flat : bool, default=False
        Return the flat ``(n_samples, 2 * n_times)`` form instead of the
        channel form.

    Returns
    -------
    X : ndarray of shape (n_samples, 2, n_times) or (n_samples, 2 * n_times)
        Channel 0 (or the first half) is the tissue curve, channel 1 the AIF.

    Examples
    --------
    >>> import numpy as np
    >>> from skperfusion import pair_curves
    >>> pair_curves(np.zeros((5, 40)), np.ones(40)).shape
    (5, 2, 40)
    """
    tissue = np.atleast_2d(np.asarray(tissue))
    aif = np.asarray(aif)
    if tissue.ndim != 2:
        raise ValueError(
            f"tissue must have shape (n_samples, n_times); got {tissue.ndim} dimensions."
        )
    if aif.ndim not in (1, 2):
        raise ValueError(
            f"aif must have shape (n_times,) or (n_samples, n_times); got {aif.shape}."
        )
    if aif.shape[-1] != tissue.shape[-1]:
        raise ValueError(
            f"tissue has {tissue.shape[-1]} time points but aif has {aif.shape[-1]}."
        )
    if aif.ndim == 2 and aif.shape[0] not in (1, tissue.shape[0]):
        raise ValueError(
            f"aif has {aif.shape[0]} curves for {tissue.shape[0]} tissue curves; "
            "give one AIF or one per sample."
        )
    dtype = np.result_type(tissue, aif, np.float32)
    X = np.empty((tissue.shape[0], 2, tissue.shape[1]), dtype=dtype)
    X[:, TISSUE] = tissue
    X[:, AIF] = aif
    return X.reshape(X.shape[0], -1) if flat else X


def split_curves(X):
    """Split ``X`` into tissue curves and AIFs (no validation; see estimators).

    Parameters
    ----------
    X : array_like of shape (n_samples, 2, n_times) or (n_samples, 2 * n_times)
        Paired curves, see :func:`pair_curves`.

    Returns
    -------
    tissue : ndarray of shape (n_samples, n_times)
        Channel 0.
    aif : ndarray of shape (n_samples, n_times)
        Channel 1.
    """
    X = np.asarray(X)
    if X.ndim == 2:
        X = X.reshape(X.shape[0], 2, -1)
    return X[:, TISSUE], X[:, AIF]


def shared_aif(aif):
    """Collapse identical AIF rows to one row, so that per-AIF work is done once.

    All voxels of an exam share one AIF; the transformers and deconvolvers
    detect it here, once, and then transform or analyse it a single time.

    Parameters
    ----------
    aif : ndarray of shape (n_samples, n_times)
        Arterial curves.

    Returns
    -------
    aif : ndarray of shape (1, n_times) or (n_samples, n_times)
        The first row when every row equals it, else ``aif`` unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> from skperfusion.curves import shared_aif
    >>> shared_aif(np.ones((3, 4))).shape
    (1, 4)
    """
    if aif.shape[0] > 1 and not (aif == aif[:1]).all():
        return aif
    return aif[:1]


def _to_flat(X):
    """Reshape a channel-form array to the flat form; leave anything else alone."""
    if hasattr(X, "ndim") and not hasattr(X, "columns") and X.ndim == 3:
        if X.shape[1] != 2:
            raise ValueError(
                f"X has {X.shape[1]} channels; expected 2 (tissue curve, arterial input)."
            )
        return np.asarray(X).reshape(X.shape[0], -1), True
    return X, False


def validate_curves(estimator, X, *, reset, positive=False, min_times=1, allow_nan=False):
    """Validate ``X`` for a curve estimator and return it in channel form.

    Shared validation path of every voxel-level estimator: accepts the
    channel and flat forms, checks the channel count, even feature count,
    finite values and (on ``reset=False``) the number of time points seen in
    ``fit``; records ``n_features_in_`` (and ``feature_names_in_``) through
    :func:`sklearn.utils.validation.validate_data`.

    Parameters
    ----------
    estimator : BaseEstimator
        The estimator being fitted or applied.
    X : array_like
        Input, see :func:`pair_curves`.
    reset : bool
        True in ``fit`` (record the input shape), False afterwards (check it).
    positive : bool or "non-negative", default=False
        Require strictly positive values (True: signals whose log is taken)
        or non-negative ones (``"non-negative"``).
    min_times : int, default=1
        Smallest number of time points accepted.
    allow_nan : bool, default=False
        Accept NaN (degenerate voxels marked upstream); inf is still refused.

    Returns
    -------
    curves : ndarray of shape (n_samples, 2, n_times)
        Float32 or float64 copy-free view of the validated input.
    was_channel_form : bool
        Whether ``X`` came in the channel form.
    """
    X, was_channel_form = _to_flat(X)
    if getattr(X, "ndim", 2) not in (2, 3) and not hasattr(X, "columns"):
        raise ValueError(
            f"X must have shape (n_samples, 2, n_times) or (n_samples, 2 * n_times); "
            f"got an array with {np.ndim(X)} dimensions."
        )
    X = validate_data(
        estimator, X, reset=reset, dtype=[np.float64, np.float32], ensure_min_features=1,
        ensure_all_finite="allow-nan" if allow_nan else True,
    )
    n_features = X.shape[1]
    if n_features % 2:
        raise ValueError(
            f"X has {n_features} feature(s); the flat form [tissue | aif] needs an even "
            "number of columns (2 * n_times)."
        )
    n_times = n_features // 2
    if n_times < min_times:
        raise ValueError(f"X has {n_times} time point(s); {estimator.__class__.__name__} "
                         f"needs at least {min_times}.")
    if positive and not np.all(X >= 0 if positive == "non-negative" else X > 0):
        # "Negative values in data" is the wording sklearn's positive_only checks expect.
        kind = "Negative" if np.any(X < 0) else "Zero"
        raise ValueError(
            f"{kind} values in data passed to {estimator.__class__.__name__}: signal "
            "intensities must be > 0 because their logarithm is taken."
        )
    return X.reshape(X.shape[0], 2, n_times), was_channel_form
