"""DSC signal to contrast-agent concentration (Fayolle et al. 2025, eq. 1).

``C(t) = -ln(S(t) / S0) / TE`` on the tissue and the arterial channel alike,
with ``S0`` the mean of the pre-bolus baseline frames of that channel.
"""

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from .._warnings import warn
from ..curves import AIF, shared_aif, validate_curves
from ..physics import aif_peak_scale

__all__ = ["ARRIVAL_THRESHOLD_SD", "MIN_BASELINE_FRAMES", "ConcentrationTransformer",
           "DegenerateVoxelWarning", "detect_baseline_frames"]

ARRIVAL_THRESHOLD_SD = 3.0
"""Signal drop, in noise standard deviations, that marks the bolus arrival."""

MIN_BASELINE_FRAMES = 2
"""Fewest frames a detected baseline keeps (fewer only if the series is shorter)."""

_MAD_TO_SD = 1.4826
"""Median absolute deviation to standard deviation of a normal distribution."""


def detect_baseline_frames(signal, n_sd=ARRIVAL_THRESHOLD_SD, min_frames=MIN_BASELINE_FRAMES):
    """Number of pre-bolus baseline frames of each arterial signal.

    Rule, per sample:

    1. the noise standard deviation ``σ`` is estimated robustly from the
       frame-to-frame differences, ``σ = 1.4826 · median|ΔS| / √2`` (the few
       large differences of the bolus passage barely move a median);
    2. the bolus arrives at the first frame ``i >= min_frames`` where the
       signal and the next frame are both below ``mean(S[:i]) - n_sd · σ``;
       requiring two frames makes a false alarm on pure noise rare
       (about 1 % of noise-only series of 40 to 60 frames);
    3. the frames just before the arrival that are already more than ``σ``
       below that baseline mean are the slow start of the bolus, still under
       the detection level, and are left out too.

    The baseline is then ``S[:n_baseline]`` with ``n_baseline >= min_frames``.
    Where no arrival is found (a flat or noise-only series), or the series
    has at most ``min_frames`` frames, every frame is baseline.

    Parameters
    ----------
    signal : array_like of shape (n_samples, n_times)
        Arterial DSC signal (arbitrary intensity unit); the bolus lowers it.
    n_sd : float, default=3.0
        Detection threshold in noise standard deviations.
    min_frames : int, default=2
        Fewest baseline frames, and first frame that may mark the arrival.

    Returns
    -------
    n_baseline : ndarray of shape (n_samples,), int
        Baseline frames ``S[:n_baseline]`` of each sample.

    Examples
    --------
    >>> import numpy as np
    >>> from skperfusion.preprocessing import detect_baseline_frames
    >>> detect_baseline_frames([[100, 100, 100, 100, 100, 98, 60, 30, 80, 100, 100]])
    array([5])
    """
    signal = np.asarray(signal, dtype=np.float64)
    n_samples, n_times = signal.shape
    if n_times <= min_frames:
        return np.full(n_samples, n_times)
    # Centring on the first frame keeps a noise-free baseline exactly at its mean.
    centred = signal - signal[:, :1]
    sigma = _MAD_TO_SD / np.sqrt(2.0) * np.median(np.abs(np.diff(centred, axis=1)), axis=1)
    mean = np.cumsum(centred, axis=1) / np.arange(1, n_times + 1)
    threshold = mean - n_sd * sigma[:, None]
    # Frame i (and i + 1) against the baseline S[:i], whose mean sits at index i - 1.
    below = centred[:, 1:] < threshold[:, :-1]
    next_below = np.ones_like(below)
    next_below[:, :-1] = centred[:, 2:] < threshold[:, :-2]
    arrival = below & next_below
    arrival[:, : min_frames - 1] = False
    found = arrival.any(axis=1)
    first = np.where(found, np.argmax(arrival, axis=1) + 1, n_times)
    baseline_mean = np.take_along_axis(mean, first[:, None] - 1, axis=1)
    frames = np.arange(n_times)
    at_baseline = (centred >= baseline_mean - sigma[:, None]) & (frames < first[:, None])
    last_at_baseline = np.where(at_baseline, frames, -1).max(axis=1)
    return np.where(found, np.maximum(last_at_baseline + 1, min_frames), n_times)


class DegenerateVoxelWarning(UserWarning):
    """Voxels (samples) whose signal has no logarithm: their outputs are NaN."""


def _degenerate_samples(signals):
    """Samples with a non-positive signal somewhere, warned about once.

    Their logarithm is undefined: the sample's outputs become NaN
    and the other samples are computed as usual.
    """
    degenerate = ~np.all(signals > 0, axis=(1, 2))
    n_bad = int(np.count_nonzero(degenerate))
    if n_bad:
        warn(f"{n_bad} of {len(signals)} sample(s) (first: sample "
             f"{int(np.argmax(degenerate))}) have a zero or negative signal, whose "
             "logarithm is undefined; their concentrations are NaN.",
             DegenerateVoxelWarning)
    return degenerate


def _warn_without_bolus(no_bolus, degenerate, n_frames):
    """Warn once about samples whose arterial signal shows no bolus arrival."""
    no_bolus = no_bolus & ~degenerate
    n_none = int(np.count_nonzero(no_bolus))
    if n_none and n_frames > MIN_BASELINE_FRAMES:
        warn(f"no bolus arrival found in the arterial signal of {n_none} of "
             f"{len(no_bolus)} sample(s): the whole series is taken as baseline, so "
             "their concentrations are noise around 0 (is the contrast injection in "
             "this series?).", UserWarning)


class ConcentrationTransformer(TransformerMixin, BaseEstimator):
    """DSC signal to concentration, ``C(t) = -ln(S(t) / S0) / TE`` (eq. 1).

    Applied to the tissue and the arterial channel of every sample alike;
    ``S0`` is the mean of that channel's baseline frames. The first
    ``n_skip`` frames (before the magnetisation reaches steady state) are
    dropped before anything else. Stateless: ``fit`` only validates and
    records the number of time points.

    Parameters
    ----------
    te : float, default=0.03
        Echo time in seconds (> 0). Concentrations are in 1/s (the
        relaxivity constant of eq. 1 is left out, as it cancels in every
        perfusion parameter).
    n_baseline : int or None, default=None
        Number of pre-bolus baseline frames, counted after the skipped ones.
        None detects them per sample from the arterial channel with
        :func:`detect_baseline_frames` (bolus arrival at the first two frames
        more than 3 noise sd below the mean of the frames before, minus the
        slow start of the bolus; at least 2 frames; the whole series where no
        bolus is found) and uses the same frames for the tissue channel.
    n_skip : int, default=0
        Leading non-steady-state frames to drop; the output has
        ``n_times - n_skip`` frames.
    normalize_by_aif_peak : bool, default=False
        Divide both channels of a sample by the peak of that sample's
        arterial concentration (the stateless form of the per-subject
        normalisation of the paper; it leaves MTT and CBF/CBV ratios
        unchanged). The output is then dimensionless.

    Attributes
    ----------
    n_times_ : int
        Time points per channel of the signals seen in ``fit``.
    n_features_in_ : int
        Number of features (flat columns) seen in ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names seen in ``fit``, when ``X`` had string column names.

    See Also
    --------
    skperfusion.pair_curves : Build ``X`` from tissue signals and one AIF.

    Notes
    -----
    Input is the signal ``X`` of shape ``(n_samples, 2, n_times)`` (tissue,
    arterial) or its flat form ``(n_samples, 2 * n_times)``; its logarithm is
    taken, so a sample with a zero or negative signal in a kept frame (a
    degenerate voxel) gets NaN concentrations in both channels, with one
    warning counting such samples, and the other samples are unaffected.
    The output has the form of the input, except under
    ``set_output(transform="pandas")`` where it is the flat form with
    columns ``tissue_t<k>`` and ``aif_t<k>`` (``k`` the acquisition frame),
    or the kept input columns when ``X`` had names.

    Examples
    --------
    >>> import numpy as np
    >>> from skperfusion import ConcentrationTransformer, pair_curves
    >>> aif = np.array([100.0, 100.0, 100.0, 100.0, 50.0, 25.0, 50.0, 100.0])
    >>> X = pair_curves([[80.0, 80.0, 80.0, 80.0, 80.0, 60.0, 70.0, 80.0]], aif)
    >>> C = ConcentrationTransformer(te=0.03, n_baseline=4).fit_transform(X)
    >>> C.shape
    (1, 2, 8)
    >>> np.round(C[0, 1, 4], 2)  # -ln(50 / 100) / 0.03
    np.float64(23.1)
    """

    _parameter_constraints: ClassVar[dict] = {
        "te": [Interval(Real, 0, None, closed="neither")],
        "n_baseline": [Interval(Integral, 1, None, closed="left"), None],
        "n_skip": [Interval(Integral, 0, None, closed="left")],
        "normalize_by_aif_peak": ["boolean"],
    }

    def __init__(self, te=0.03, n_baseline=None, n_skip=0, normalize_by_aif_peak=False):
        self.te = te
        self.n_baseline = n_baseline
        self.n_skip = n_skip
        self.normalize_by_aif_peak = normalize_by_aif_peak

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate the signals and record the number of time points.

        Parameters
        ----------
        X : array_like of shape (n_samples, 2, n_times) or (n_samples, 2 * n_times)
            Tissue and arterial signals, see :func:`skperfusion.pair_curves`;
            ``transform`` gives NaN for the samples that are not strictly
            positive.
        y : None
            Ignored.

        Returns
        -------
        self : object
            Fitted transformer.
        """
        # No logarithm is taken here; degenerate samples only matter in transform.
        signals, _ = validate_curves(self, X, reset=True)
        n_times = signals.shape[2]
        if self.n_skip >= n_times:
            raise ValueError(
                f"n_skip={self.n_skip} drops every one of the {n_times} time points; "
                "it must be smaller than n_times."
            )
        if self.n_baseline is not None and self.n_skip + self.n_baseline >= n_times:
            raise ValueError(
                f"n_skip={self.n_skip} plus n_baseline={self.n_baseline} frames leave none "
                f"of the {n_times} time points after the baseline; their sum must be "
                "smaller than n_times."
            )
        self.n_times_ = n_times
        return self

    def transform(self, X):
        """Convert signals to concentrations.

        Parameters
        ----------
        X : array_like of shape (n_samples, 2, n_times) or (n_samples, 2 * n_times)
            Signals with the ``n_times`` seen in ``fit``; samples with a zero
            or negative value in a kept frame give NaN (one warning counts them).

        Returns
        -------
        C : ndarray of shape (n_samples, 2, n_times - n_skip) or (n_samples, 2 * (n_times - n_skip))
            Tissue and arterial concentrations in 1/s (dimensionless with
            ``normalize_by_aif_peak``), in the form of ``X``; NaN for the
            degenerate samples.
        """
        check_is_fitted(self)
        signals, was_channel_form = validate_curves(self, X, reset=False)
        signals = signals[:, :, self.n_skip:]
        n_samples, _, n_frames = signals.shape
        if n_frames <= MIN_BASELINE_FRAMES:
            warn(f"only {n_frames} frame(s) are left after the {self.n_skip} skipped "
                 "one(s): too few to tell a bolus from the baseline, so the "
                 "concentrations (and any map from them) are meaningless.",
                 UserWarning)
        degenerate = _degenerate_samples(signals)
        if degenerate.any():
            # Stand-in values keep the other samples' arithmetic (and a shared AIF) intact.
            good = np.flatnonzero(~degenerate)
            signals = signals.copy()
            signals[degenerate] = signals[good[0]] if good.size else 1.0
        if self.n_baseline is None:
            # All voxels of an exam share one AIF: detect once when they do.
            n_baseline = detect_baseline_frames(shared_aif(signals[:, AIF]))
            n_baseline = np.broadcast_to(n_baseline, (n_samples,))
            _warn_without_bolus(n_baseline == n_frames, degenerate, n_frames)
        else:
            n_baseline = np.full(n_samples, self.n_baseline)
        in_baseline = (np.arange(n_frames) < n_baseline[:, None]).astype(signals.dtype)
        s0 = np.einsum("nct,nt->nc", signals, in_baseline) / n_baseline[:, None]
        concentration = signals / s0[:, :, None].astype(signals.dtype)
        np.log(concentration, out=concentration)
        concentration *= -1.0 / self.te
        if self.normalize_by_aif_peak:
            scale, has_peak = aif_peak_scale(concentration[:, AIF])
            flat_aif = np.flatnonzero(~has_peak & ~degenerate)
            if flat_aif.size:
                raise ValueError(
                    f"normalize_by_aif_peak=True but the arterial concentration of "
                    f"{flat_aif.size} sample(s) (first: sample {flat_aif[0]}) has no positive "
                    "peak: the AIF signal never drops below its baseline, so there is no "
                    "bolus to normalise by."
                )
            concentration /= scale[:, None, None]
        concentration[degenerate] = np.nan
        if was_channel_form and _get_output_config("transform", self)["dense"] == "default":
            return concentration
        return concentration.reshape(n_samples, -1)

    def get_feature_names_out(self, input_features=None):
        """Names of the flat output columns.

        Parameters
        ----------
        input_features : array_like of str or None, default=None
            Input column names; default ``feature_names_in_`` if ``X`` had
            names, else ``tissue_t<k>`` then ``aif_t<k>`` for every frame ``k``.

        Returns
        -------
        feature_names_out : ndarray of str objects
            The input names of the kept frames (frames ``n_skip`` onwards) of
            the tissue then the arterial half.
        """
        check_is_fitted(self)
        names = _check_feature_names_in(self, input_features, generate_names=False)
        if names is None:
            frames = range(self.n_times_)
            names = np.asarray([f"tissue_t{k}" for k in frames] + [f"aif_t{k}" for k in frames],
                               dtype=object)
        kept = np.arange(self.n_skip, self.n_times_)
        return names[np.concatenate([kept, kept + self.n_times_])]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.target_tags.required = False
        return tags
