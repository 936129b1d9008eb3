"""Multi-echo DSC signals to ΔR2*, free of T1 effects (two or more echoes).

Input shape ``(n_samples, 2, n_echoes, n_times)``: per sample the tissue
and the arterial signal (channels, as in :func:`skperfusion.pair_curves`),
each at every echo. Output the usual curves ``(n_samples, 2, n_times)`` in
1/s, ready for any deconvolver.
"""

from numbers import Integral
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ..curves import AIF
from ..physics import delta_r2star_from_echoes
from .concentration import _degenerate_samples, detect_baseline_frames

__all__ = ["MultiEchoTransformer"]


class MultiEchoTransformer(TransformerMixin, BaseEstimator):
    """Multi-echo DSC signals to ``ΔR2*`` curves, cancelling T1 effects.

    Per echo ``y_e(t) = ln(S_e(t) / S_e,0)`` with ``S_e,0`` that echo's mean
    baseline signal, then ``ΔR2*(t)`` is the least-squares slope of ``-y_e``
    against ``TE_e`` (:func:`skperfusion.physics.delta_r2star_from_echoes`):
    for two echoes ``ΔR2* = ln[(S_1/S_1,0) / (S_2/S_2,0)] / (TE_2 - TE_1)``,
    for three or more the log-linear fit. A T1 change that scales every
    echo alike (contrast leakage, inflow) is the intercept and drops out,
    which a single echo (``-ln(S/S_0)/TE``) cannot tell from ``ΔR2*``.
    Stateless: ``fit`` only validates and records the input shape.

    Parameters
    ----------
    te : tuple of float, default=(0.002, 0.03)
        Echo times in seconds, at least two, strictly increasing.
    n_baseline : int or None, default=None
        Pre-bolus baseline frames (after the skipped ones). None detects
        them per sample from the arterial signal of the longest echo (the
        largest bolus dip) with
        :func:`~skperfusion.preprocessing.detect_baseline_frames`; every
        echo and channel uses the same frames.
    n_skip : int, default=0
        Leading non-steady-state frames to drop.

    Attributes
    ----------
    n_times_ : int
        Frames per echo seen in ``fit``.
    n_echoes_ : int
        Echoes seen in ``fit``.

    See Also
    --------
    ConcentrationTransformer : The single-echo conversion (eq. 1).

    Notes
    -----
    Input ``X`` has shape ``(n_samples, 2, n_echoes, n_times)``, strictly
    positive signals (their log is taken); the output has shape
    ``(n_samples, 2, n_times - n_skip)``, in 1/s (no relaxivity constant, as
    for the single echo).

    Examples
    --------
    >>> import numpy as np
    >>> from skperfusion.preprocessing import MultiEchoTransformer
    >>> te = (0.01, 0.03)
    >>> r2 = np.r_[np.zeros(5), 20.0, 10.0, np.zeros(3)]      # ΔR2* in 1/s
    >>> t1 = np.r_[np.ones(6), np.full(4, 1.2)]             # T1 signal rise after the bolus
    >>> S = 100 * t1 * np.exp(-np.array(te)[:, None] * r2)  # (echoes, times)
    >>> X = np.stack([S, S])[None]                          # (1, 2, 2, 10)
    >>> MultiEchoTransformer(te=te, n_baseline=5).fit_transform(X)[0, 0].round(6)
    array([ 0.,  0.,  0.,  0.,  0., 20., 10.,  0.,  0.,  0.])
    """

    _parameter_constraints: ClassVar[dict] = {
        "te": [tuple, list, np.ndarray],
        "n_baseline": [Interval(Integral, 1, None, closed="left"), None],
        "n_skip": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, te=(0.002, 0.03), n_baseline=None, n_skip=0):
        self.te = te
        self.n_baseline = n_baseline
        self.n_skip = n_skip

    def _validate_signals(self, X, reset):
        X = np.asarray(X)
        if X.dtype.kind not in "fiu":
            raise ValueError(f"X must be numeric; got dtype {X.dtype}.")
        X = X.astype(X.dtype if X.dtype in (np.float32, np.float64) else np.float64, copy=False)
        te = np.asarray(self.te, dtype=float)
        if te.ndim != 1 or te.size < 2 or not np.all(te > 0) or np.any(np.diff(te) <= 0):
            raise ValueError(f"te must hold at least two strictly increasing positive echo "
                             f"times in seconds; got {self.te!r}.")
        if X.ndim != 4 or X.shape[1] != 2 or X.shape[2] != te.size:
            raise ValueError(f"X must have shape (n_samples, 2, {te.size}, n_times) (tissue "
                             f"and arterial signal per echo); got {X.shape}.")
        if X.shape[0] < 1 or X.shape[3] < 2:
            raise ValueError(f"X needs at least one sample and two frames; got {X.shape}.")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or inf.")
        if not reset and X.shape[3] != self.n_times_:
            raise ValueError(f"X has {X.shape[3]} frames; {type(self).__name__} was fitted "
                             f"with {self.n_times_}.")
        if reset and np.any(X < 0):
            raise ValueError(f"Negative values in data passed to {type(self).__name__}: "
                             "signal intensities must be > 0 because their logarithm is taken.")
        return X, te

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate the signals and record their shape.

        Parameters
        ----------
        X : array_like of shape (n_samples, 2, n_echoes, n_times)
            Non-negative tissue and arterial signals per echo.
        y : None
            Ignored (unsupervised).

        Returns
        -------
        self : MultiEchoTransformer
            With ``n_times_`` and ``n_echoes_``, the shape ``transform`` expects.
        """
        X, te = self._validate_signals(X, reset=True)
        n_times = X.shape[3]
        kept = n_times - self.n_skip - (self.n_baseline or 0)
        if kept < 1:
            raise ValueError(f"n_skip={self.n_skip} and n_baseline={self.n_baseline} leave no "
                             f"frame of the {n_times} after the baseline.")
        self.n_times_, self.n_echoes_ = n_times, te.size
        return self

    def transform(self, X):
        """Convert multi-echo signals to ``ΔR2*``.

        Parameters
        ----------
        X : array_like of shape (n_samples, 2, n_echoes, n_times)
            Strictly positive signals with the shape seen in ``fit``.

        Returns
        -------
        C : ndarray of shape (n_samples, 2, n_times - n_skip)
            Tissue and arterial ``ΔR2*`` in 1/s; NaN for a sample with a zero
            or negative signal in a kept frame (one
            :class:`~skperfusion.preprocessing.DegenerateVoxelWarning` counts
            them), the other samples unaffected.
        """
        check_is_fitted(self)
        signals, te = self._validate_signals(X, reset=False)
        signals = signals[..., self.n_skip:]
        n_samples, n_frames = signals.shape[0], signals.shape[3]
        degenerate = _degenerate_samples(signals.reshape(n_samples, 2, -1))
        if degenerate.any():
            # Stand-in values keep the other samples' arithmetic (and a shared AIF) intact.
            good = np.flatnonzero(~degenerate)
            signals = signals.copy()
            signals[degenerate] = signals[good[0]] if good.size else 1.0
        if self.n_baseline is None:
            aif = signals[:, AIF, -1]
            shared = n_samples > 1 and bool(np.all(aif == aif[:1]))
            n_baseline = detect_baseline_frames(aif[:1] if shared else aif)
            n_baseline = np.broadcast_to(n_baseline, (n_samples,))
        else:
            n_baseline = np.full(n_samples, self.n_baseline)
        in_baseline = (np.arange(n_frames) < n_baseline[:, None]).astype(signals.dtype)
        s0 = np.einsum("ncet,nt->nce", signals, in_baseline) / n_baseline[:, None, None]
        log_ratio = np.log(signals / s0[..., None].astype(signals.dtype))
        delta_r2star = delta_r2star_from_echoes(log_ratio, te)
        delta_r2star[degenerate] = np.nan
        return delta_r2star

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.input_tags.positive_only = True
        tags.target_tags.required = False
        return tags
