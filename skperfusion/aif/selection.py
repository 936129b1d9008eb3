"""Automatic selection of arterial (and venous) voxels from the DSC curves.

Arterial voxels after Mouridsen et al. (2006): among the brain voxels with
a clear first pass, the voxels with the highest peaks and the least noise
are clustered by the *shape* of their area-normalised curves with k-means;
the cluster whose mean curve peaks earliest and highest is kept, and
clustered once more. Partial-volumed voxels (lower peaks than the rest of
the arterial cluster) are left out.

Real arteries often *saturate*: at the bolus peak their signal falls to the
noise floor (``S/S0`` below 0.02 at TE 30–45 ms and a standard dose), the
concentration is clipped and the voxel looks like a low, flat-topped curve.
Those voxels are the arteries, not noise: their saturated samples are
found (:func:`saturated_samples`) and their first pass is recovered by a
gamma-variate fit to the unsaturated samples of the rise and fall
(:func:`recover_first_pass`; Ellinger et al. 2000, Calamante 2013), and they
stay candidates. :func:`select_aif` then checks that the chosen AIF is
plausible (several voxels, a peak well above the tissue's, an arrival
before the tissue's), re-selects among the earliest voxels when it is not,
fails with a clear message when it still is not, and scores it
(:class:`AIFQuality`).

Venous voxels are the late voxels with the largest areas (sagittal sinus,
large veins): a vein, free of partial volume, may peak higher than the
arteries, but it peaks later.

All functions take the voxel curves at once, ``(n_voxels, n_times)``.
"""

from dataclasses import asdict, dataclass, field

import numpy as np

from ..preprocessing import detect_baseline_frames

__all__ = ["AIFQuality", "AIFSelection", "arrival_times", "recover_first_pass",
           "saturated_samples", "select_aif", "select_arterial_voxels", "select_venous_voxels",
           "voxel_concentrations"]

MIN_SIGNAL_FRACTION = 0.02
"""Lowest ``S/S0`` of an unsaturated sample: below it (or below
:data:`SATURATION_SD` noise sd) the signal sits at the noise floor and the
concentration is clipped (saturation)."""

SATURATION_SD = 3.5
"""A sample whose signal is within this many baseline noise sd of zero is at
the noise floor: where the true signal is gone, the magnitude is Rayleigh
distributed and exceeds 3.5 sd with probability ``exp(-3.5²/2) = 0.2 %``;
above it the Rician bias of a true signal is a few percent at most
(Gudbjartsson & Patz 1995)."""

PEAK_SNR = 5.0
"""A first pass must rise above the baseline by this many baseline sd."""

MIN_AIF_VOXELS = 3
"""Fewest voxels of a plausible AIF cluster: one voxel carries its noise and
partial volume unaveraged."""

MAX_EARLIER_FRACTION = 0.10
"""Largest fraction of the brain voxels whose bolus may arrive before the
AIF's: beyond it the AIF is not arterial (tissue or vein), re-selected, then
refused."""

MIN_PEAK_RATIO = 1.6
"""Lowest ratio of the AIF peak to the median first-pass peak of the brain
voxels for an arterial AIF. Grey matter has about twice the CBV of white
matter (Leenders et al. 1990), so a voxel of cortex peaks at most about 1.5
times the median brain voxel, whereas blood, with ``ΔR2*`` quadratic in its
concentration (van Osch et al. 2003), lifts an arterial voxel of 20 %
blood or more to about twice the median or higher."""


def voxel_concentrations(signal, te):
    """Concentration curves of voxels, each with its own detected baseline.

    Parameters
    ----------
    signal : array_like of shape (n_voxels, n_times)
        DSC signals (one echo), arbitrary units.
    te : float
        Echo time in seconds.

    Returns
    -------
    concentration : ndarray of shape (n_voxels, n_times)
        ``-ln(S/S0)/TE`` in 1/s; NaN for voxels with a non-positive sample.
    baseline_sd : ndarray of shape (n_voxels,)
        Standard deviation of each voxel's baseline concentration, 1/s.
    min_fraction : ndarray of shape (n_voxels,)
        Lowest ``S/S0`` of each voxel, dimensionless.
    """
    signal = np.asarray(signal, dtype=np.float64)
    usable = np.all(signal > 0, axis=1)
    safe = np.where(usable[:, None], signal, 1.0)
    n_baseline = detect_baseline_frames(safe)
    in_baseline = np.arange(signal.shape[1]) < n_baseline[:, None]
    s0 = np.sum(safe * in_baseline, axis=1) / n_baseline
    ratio = safe / s0[:, None]
    concentration = -np.log(ratio) / te
    masked = np.where(in_baseline, concentration, np.nan)
    baseline_sd = np.nanstd(masked, axis=1)
    concentration[~usable] = np.nan
    return concentration, np.where(usable, baseline_sd, np.nan), np.where(
        usable, ratio.min(axis=1), np.nan)


def _first_moment(curves, tr):
    times = np.arange(curves.shape[-1]) * tr
    return np.sum(curves * times, axis=-1) / np.sum(curves, axis=-1)


def saturated_samples(concentration, baseline_sd, te):
    """Samples at the noise floor: the signal clipped by saturation.

    A sample is saturated where its signal ``S/S0 = exp(-TE · C)`` is below
    :data:`MIN_SIGNAL_FRACTION` or within :data:`SATURATION_SD` noise sd of
    zero (the signal's relative noise sd is ``TE`` times the baseline sd of
    the concentration); its concentration is then a lower bound.

    Parameters
    ----------
    concentration : array_like of shape (n_voxels, n_times)
        ``ΔR2*`` curves in 1/s (from :func:`voxel_concentrations`).
    baseline_sd : array_like of shape (n_voxels,)
        Baseline sd of each curve, 1/s.
    te : float
        Echo time in seconds.

    Returns
    -------
    saturated : ndarray of bool, shape (n_voxels, n_times)
        False where the concentration is NaN.

    Examples
    --------
    >>> import numpy as np
    >>> c = -np.log(np.array([[1.0, 0.5, 0.01, 0.3]])) / 0.03
    >>> saturated_samples(c, np.array([0.1]), 0.03).tolist()
    [[False, False, True, False]]
    """
    C = np.asarray(concentration, dtype=np.float64)
    floor = np.maximum(MIN_SIGNAL_FRACTION, SATURATION_SD * te * np.asarray(baseline_sd, float))
    with np.errstate(invalid="ignore", over="ignore"):
        return np.exp(-te * C) < floor[:, None]


def arrival_times(curves, tr):
    """Bolus arrival: the time a curve first reaches half its maximum, in seconds.

    Linearly interpolated between the two samples around the crossing; a
    maximum at the first sample gives 0.

    Parameters
    ----------
    curves : array_like of shape (n_voxels, n_times)
        Concentration curves (any unit).
    tr : float
        Sampling interval in seconds.

    Returns
    -------
    arrival : ndarray of shape (n_voxels,)
        Seconds from the first sample; NaN where a curve has no positive
        finite maximum.

    Examples
    --------
    >>> import numpy as np
    >>> float(arrival_times(np.array([[0.0, 0.0, 1.0, 5.0, 2.0]]), 2.0)[0])
    4.75
    """
    C = np.asarray(curves, dtype=np.float64)
    filled = np.where(np.isfinite(C), C, -np.inf)
    peak = filled.max(axis=1)
    above = filled >= peak[:, None] / 2
    first = np.argmax(above, axis=1)
    before = np.take_along_axis(filled, np.maximum(first - 1, 0)[:, None], axis=1)[:, 0]
    at = np.take_along_axis(filled, first[:, None], axis=1)[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = np.where(first > 0, first - 1 + (peak / 2 - before) / (at - before), 0.0)
    return np.where(np.isfinite(peak) & (peak > 0), crossing * tr, np.nan)


_T0_STEPS = 48  # arrival times tried per sample interval by the gamma-variate fit
_FIT_ROWS = 64  # saturated curves fitted at a time (bounds the (rows, t0, time) arrays)


def recover_first_pass(concentration, saturated, tr, baseline_sd):
    """Recover the saturated first pass of arterial curves by a gamma-variate fit.

    Each curve with saturated samples gets a gamma variate
    ``C(t) = exp(a) · (t - t0)^α · exp(-(t - t0) / β)`` (Thompson 1964)
    fitted to its *unsaturated* first-pass samples: the rise above
    :data:`PEAK_SNR` baseline sd before the first saturated sample (at least
    two samples, or the upslope is free and the curve is left as it is), and the
    fall after the last one while it decreases and stays above a twentieth of
    the smallest saturated value (before the recirculation). The saturated
    samples are replaced by the fit where it is higher (they are lower
    bounds), as in Ellinger et al. (2000) and the review of Calamante (2013).
    For each ``t0`` on a grid of ``TR / 48`` steps around the rise, the fit
    is linear least squares on ``ln C = a + α ln(t - t0) - (t - t0)/β``
    weighted by ``C²`` (the
    variance of ``ln C`` is ``σ²/C²``); the ``t0`` with the smallest squared
    error of ``C`` is kept. The fit must have ``α, β > 0``, at least four
    samples and a peak above the saturated samples.

    Parameters
    ----------
    concentration : array_like of shape (n_voxels, n_times)
        ``ΔR2*`` curves in 1/s.
    saturated : array_like of bool, shape (n_voxels, n_times)
        Saturated samples (:func:`saturated_samples`).
    tr : float
        Sampling interval in seconds.
    baseline_sd : array_like of shape (n_voxels,)
        Baseline sd of each curve, 1/s.

    Returns
    -------
    recovered : ndarray of shape (n_voxels, n_times)
        The curves, with the saturated samples of the recovered ones replaced.
    fitted : ndarray of bool, shape (n_voxels,)
        Curves with saturated samples whose first pass was recovered.

    Examples
    --------
    >>> import numpy as np
    >>> from skperfusion.datasets import gamma_variate
    >>> true = gamma_variate(np.arange(40.0), t0=8.0, alpha=3.0, beta=1.5, peak=100.0)[None]
    >>> clipped = np.minimum(true, 60.0)
    >>> recovered, fitted = recover_first_pass(clipped, clipped >= 60.0, 1.0, np.array([1.0]))
    >>> bool(fitted[0]), bool(np.allclose(recovered, true))
    (True, True)
    """
    C = np.array(concentration, dtype=np.float64)
    saturated = np.asarray(saturated, dtype=bool) & np.isfinite(C)
    fitted = np.zeros(len(C), dtype=bool)
    rows = np.flatnonzero(saturated.any(axis=1))
    if not rows.size:
        return C, fitted
    curves, sat = C[rows], saturated[rows]
    n_times = C.shape[1]
    index = np.arange(n_times)
    first = np.argmax(sat, axis=1)
    last = n_times - 1 - np.argmax(sat[:, ::-1], axis=1)
    clipped = (index >= first[:, None]) & (index <= last[:, None])
    low = np.where(clipped, curves, np.inf).min(axis=1)
    noise = PEAK_SNR * np.asarray(baseline_sd, float)[rows]
    # Rise: the samples above the noise just before the first saturated one.
    quiet = (index < first[:, None]) & ~(curves > noise[:, None])
    onset = np.where(quiet, index, -1).max(axis=1)  # last quiet sample before the rise
    rise = (index > onset[:, None]) & (index < first[:, None])
    shaped = rise.sum(axis=1) >= 2  # one rising sample leaves the upslope free
    # Fall: after the last saturated sample, until it drops below low / 20 or rises again.
    rising = np.concatenate([np.zeros((len(rows), 1), bool), np.diff(curves) > 0], axis=1)
    dropped = (index > last[:, None] + 1) & (~(curves > low[:, None] / 20) | rising)
    end = np.where(dropped, index, n_times).min(axis=1)
    fall = (index > last[:, None]) & (index < end[:, None])
    use = (rise | fall) & np.isfinite(curves) & (curves > 0)
    fit, ok = np.zeros_like(curves), np.zeros(len(rows), dtype=bool)
    for start in range(0, len(rows), _FIT_ROWS):
        block = slice(start, start + _FIT_ROWS)
        # Only the columns of the block's first passes enter the fit.
        columns = slice(max(int(onset[block].min()), 0), int(end[block].max()) + 1)
        fit[block, columns], ok[block] = _fit_gamma_variates(
            curves[block, columns], use[block, columns], clipped[block, columns],
            low[block], onset[block] - columns.start, tr)
    ok &= shaped
    C[rows] = np.where(clipped & ok[:, None], np.maximum(fit, curves), curves)
    fitted[rows] = ok
    return C, fitted


def _fit_gamma_variates(curves, use, clipped, low, onset, tr):
    """Gamma variates fitted to the ``use`` samples, t0 on a grid; (model, success) per row."""
    times = np.arange(curves.shape[1]) * tr
    # t0 candidates: from half a sample before the last quiet one to 1.5 samples after it.
    offsets = np.arange(-_T0_STEPS, _T0_STEPS + 1) * (tr / _T0_STEPS)
    t0 = (onset + 0.5)[:, None] * tr + offsets[None, :]  # (m, K)
    s = times[None, None, :] - t0[:, :, None]  # (m, K, T)
    valid = use[:, None, :] & (s > 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_s = np.log(np.where(s > 0, s, 1.0))
        log_c = np.log(np.where(use, curves, 1.0))[:, None, :]
        weight = np.where(valid, np.where(use, curves, 0.0)[:, None, :] ** 2, 0.0)
        design = np.stack([np.ones_like(s), log_s, -s], axis=-1)  # (m, K, T, 3)
        normal = np.einsum("mkt,mkti,mktj->mkij", weight, design, design)
        target = np.einsum("mkt,mkti,mkt->mki", weight, design, np.broadcast_to(log_c, s.shape))
        enough = valid.sum(axis=-1) >= 4
        normal[~enough] = np.eye(3)
        coef = np.linalg.solve(normal + 1e-12 * np.eye(3), target[..., None])[..., 0]
        a, alpha, rate = coef[..., 0], coef[..., 1], coef[..., 2]
        model = np.where(s > 0, np.exp(a[..., None] + alpha[..., None] * log_s
                                       - rate[..., None] * s), 0.0)
        error = np.sum(np.where(valid, (model - curves[:, None, :]) ** 2, 0.0), axis=-1)
        peak = np.max(np.where(clipped[:, None, :], model, -np.inf), axis=-1)
    good = enough & (alpha > 0) & (rate > 0) & np.isfinite(error) & (peak >= low[:, None])
    error = np.where(good, error, np.inf)
    best = np.argmin(error, axis=1)
    rows = np.arange(len(curves))
    return model[rows, best], np.isfinite(error[rows, best])


def _earliest_highest(curves, labels, k):
    """Index of the cluster whose mean curve peaks first (within a frame) and highest."""
    means = np.stack([curves[labels == j].mean(axis=0) for j in range(k)])
    time_to_peak = np.argmax(means, axis=1)
    early = time_to_peak <= time_to_peak.min() + 1
    return int(np.argmax(np.where(early, means.max(axis=1), -np.inf)))


def select_arterial_voxels(concentration, tr, *, baseline_sd=None, eligible=None,
                           n_clusters=5, peak_quantile=0.9, noise_quantile=0.75,
                           min_voxels=MIN_AIF_VOXELS, random_state=0):
    """Arterial voxels among voxel concentration curves (Mouridsen et al. 2006).

    1. Usable voxels: finite curves with a first-pass peak above
       ``PEAK_SNR`` baseline sd (noise), among ``eligible``. Saturated
       arteries belong here once their first pass is recovered
       (:func:`recover_first_pass`; :func:`select_aif` does both).
    2. Candidates: the usable voxels with a peak at or above the
       ``peak_quantile`` of the usable ones, less the noisiest
       ``1 - noise_quantile`` of them (baseline sd per peak), when
       ``baseline_sd`` is given.
    3. k-means (``n_clusters``) on the area-normalised curves (their
       shape); of the clusters whose mean curve peaks first (within one
       frame of the earliest), the one with the highest peak is kept (fewer
       clusters, of about 2 voxels at least, for few candidates), and split
       the same way once more if it still holds ``2 · n_clusters`` voxels.
    4. Partial volume: the voxels of that cluster whose peak is below the
       cluster's median peak are dropped (tissue signal mixed into an
       arterial voxel lowers and widens its peak), keeping at least the
       ``min_voxels`` highest; a cluster of fewer is completed by the
       candidates closest to its mean shape.

    Parameters
    ----------
    concentration : array_like of shape (n_voxels, n_times)
        Voxel concentration curves in 1/s (NaN: unusable voxel).
    tr : float
        Sampling interval in seconds.
    baseline_sd : array_like of shape (n_voxels,) or None, default=None
        Baseline sd of each curve (1/s), for the noise check; None skips it.
    eligible : array_like of bool, shape (n_voxels,) or None, default=None
        Voxels that may be chosen; None for all.
    n_clusters : int, default=5
        Clusters of each k-means step.
    peak_quantile : float, default=0.9
        Peak quantile of the usable voxels that candidates reach.
    noise_quantile : float, default=0.75
        Quantile of the candidates' noise per peak above which they are dropped.
    min_voxels : int, default=3
        Fewest voxels the partial-volume cut of step 4 keeps (fewer only
        when the cluster is smaller).
    random_state : int, default=0
        Seed of k-means.

    Returns
    -------
    arterial : ndarray of bool, shape (n_voxels,)
        The chosen voxels.
    candidates : ndarray of bool, shape (n_voxels,)
        The candidates clustered in step 3.

    Raises
    ------
    ValueError
        When no voxel has a usable first pass (no candidates).
    """
    from sklearn.cluster import KMeans

    C = np.asarray(concentration, dtype=np.float64)
    n_voxels = C.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        area = np.sum(C, axis=1) * tr
        peak = np.max(C, axis=1)
        usable = np.all(np.isfinite(C), axis=1) & (area > 0) & (peak > 0)
        if baseline_sd is not None:
            usable &= peak > PEAK_SNR * np.asarray(baseline_sd)
    if eligible is not None:
        usable &= np.asarray(eligible, dtype=bool)
    if not usable.any():
        raise ValueError(f"no arterial candidates: none of the {n_voxels} voxels has a first "
                         "pass above the noise; check the brain mask or give an aif mask.")
    candidates = usable & (peak >= np.quantile(peak[usable], peak_quantile))
    if baseline_sd is not None:
        # Noisiest relative to their peak: irregular curves, not clean first passes.
        noise = np.asarray(baseline_sd) / peak
        candidates &= noise <= np.quantile(noise[candidates], noise_quantile)
    chosen = candidates.copy()
    for round_ in range(2):
        index = np.flatnonzero(chosen)
        # Split once into at most n_clusters of >= 2 voxels, again only if many remain.
        k = min(n_clusters, index.size // 2)
        if k < 2 or (round_ and index.size < 2 * n_clusters):
            break
        shapes = C[index] / area[index, None]
        labels = KMeans(n_clusters=k, n_init=10, random_state=random_state).fit_predict(shapes)
        chosen = np.zeros(n_voxels, dtype=bool)
        chosen[index[labels == _earliest_highest(C[index], labels, k)]] = True
    index = np.flatnonzero(chosen)
    if index.size < min_voxels:
        # Too small a cluster: complete it with the candidates closest in shape.
        pool = np.flatnonzero(candidates)
        shapes = C[pool] / area[pool, None]
        distance = np.sum((shapes - shapes[np.isin(pool, index)].mean(axis=0)) ** 2, axis=1)
        index = pool[np.argsort(distance)[:min_voxels]]
    n_keep = max(int(np.sum(peak[index] >= np.median(peak[index]))), min_voxels)
    chosen = np.zeros(n_voxels, dtype=bool)
    chosen[index[np.argsort(peak[index])[::-1][:n_keep]]] = True
    return chosen, candidates


@dataclass(frozen=True)
class AIFQuality:
    """How plausible an automatically selected AIF is, and why.

    Parameters
    ----------
    n_voxels : int
        Voxels averaged into the AIF.
    peak_ratio : float
        AIF peak over the median first-pass peak of the brain voxels,
        dimensionless (arterial: at least :data:`MIN_PEAK_RATIO`).
    arrival_s : float
        AIF arrival (half-maximum on the rise, :func:`arrival_times`), s
        from the first kept frame.
    earlier_fraction : float
        Fraction of the brain voxels with a first pass whose arrival
        precedes the AIF's (at most :data:`MAX_EARLIER_FRACTION`).
    lead_s : float
        Median brain arrival minus the AIF arrival, s (positive: the AIF
        comes first).
    n_saturated : int
        Chosen voxels with saturated samples.
    n_recovered : int
        Of those, the ones whose first pass was recovered
        (:func:`recover_first_pass`); the others keep their clipped curve.
    reselected : bool
        Whether the first choice arrived too late and the AIF was chosen
        again among the earliest voxels.

    Attributes
    ----------
    score : float
        In [0, 1]: the product of ``min(1, n_voxels / MIN_AIF_VOXELS)``,
        ``min(1, peak_ratio / (2 · MIN_PEAK_RATIO))`` and
        ``1 - earlier_fraction``; 1 for several voxels peaking at least 3.2
        times the tissue and arriving before every brain voxel.
    """

    n_voxels: int
    peak_ratio: float
    arrival_s: float
    earlier_fraction: float
    lead_s: float
    n_saturated: int = 0
    n_recovered: int = 0
    reselected: bool = False
    score: float = field(init=False)

    def __post_init__(self):
        score = (min(1.0, self.n_voxels / MIN_AIF_VOXELS)
                 * min(1.0, max(self.peak_ratio, 0.0) / (2 * MIN_PEAK_RATIO))
                 * (1.0 - self.earlier_fraction))
        object.__setattr__(self, "score", float(score))

    def to_dict(self):
        """The fields as plain Python values (for JSON).

        Returns
        -------
        quality : dict
        """
        return {key: (value.item() if isinstance(value, np.generic) else value)
                for key, value in asdict(self).items()}


@dataclass(frozen=True)
class AIFSelection:
    """An automatically selected AIF (:func:`select_aif`).

    Parameters
    ----------
    voxels : ndarray of bool, shape (n_voxels,)
        The arterial voxels.
    candidates : ndarray of bool, shape (n_voxels,)
        The candidates of the final clustering.
    saturated : ndarray of bool, shape (n_voxels,)
        Voxels with saturated samples (all of them, chosen or not).
    curves : ndarray of shape (n_voxels, n_times)
        The concentration curves after first-pass recovery, 1/s.
    curve : ndarray of shape (n_times,)
        The AIF: mean curve of ``voxels``, of those whose first pass was
        recovered when there are some, 1/s.
    saturated_samples : ndarray of bool, shape (n_times,)
        Samples saturated in at least one chosen voxel.
    quality : AIFQuality
        Plausibility figures and score.
    """

    voxels: np.ndarray = field(repr=False)
    candidates: np.ndarray = field(repr=False)
    saturated: np.ndarray = field(repr=False)
    curves: np.ndarray = field(repr=False)
    curve: np.ndarray = field(repr=False)
    saturated_samples: np.ndarray = field(repr=False)
    quality: AIFQuality


def _quality(curves, chosen, first_pass, tr, recovered, **counts):
    # Recovered and clipped first passes do not mix: the recovered ones when there are some.
    aif = curves[chosen & recovered if (chosen & recovered).any() else chosen].mean(axis=0)
    brain_arrival = arrival_times(curves[first_pass], tr)
    arrival = float(arrival_times(aif[None], tr)[0])
    tissue_peak = np.median(curves[first_pass].max(axis=1))
    return aif, AIFQuality(
        n_voxels=int(chosen.sum()), peak_ratio=float(aif.max() / tissue_peak),
        arrival_s=arrival, earlier_fraction=float(np.mean(brain_arrival < arrival)),
        lead_s=float(np.median(brain_arrival) - arrival), **counts)


def select_aif(concentration, tr, te, baseline_sd, *, random_state=0):
    """The AIF of an exam's brain voxels: saturation handled, plausibility checked.

    1. Saturated samples (:func:`saturated_samples`) and the recovery of
       those voxels' first pass (:func:`recover_first_pass`): saturated
       voxels stay candidates.
    2. Arterial voxels among the recovered curves
       (:func:`select_arterial_voxels`).
    3. Timing: if the AIF arrives after more than
       :data:`MAX_EARLIER_FRACTION` of the brain voxels with a first pass, it
       is chosen again among the voxels arriving before the
       :data:`MAX_EARLIER_FRACTION` quantile of the brain arrivals; if it is
       still late, the exam is refused.
    4. Contrast: an AIF peaking below :data:`MIN_PEAK_RATIO` times the
       median brain voxel is tissue, not artery: the exam is refused.

    Parameters
    ----------
    concentration : array_like of shape (n_voxels, n_times)
        Brain voxel ``ΔR2*`` curves in 1/s (:func:`voxel_concentrations`).
    tr : float
        Sampling interval in seconds.
    te : float
        Echo time of the curves in seconds.
    baseline_sd : array_like of shape (n_voxels,)
        Baseline sd of each curve, 1/s.
    random_state : int, default=0
        Seed of k-means.

    Returns
    -------
    selection : AIFSelection
        The voxels, the recovered curves and AIF, and its quality.

    Raises
    ------
    ValueError
        When no voxel has a first pass above the noise, when even the
        earliest voxels give an AIF arriving after more than
        :data:`MAX_EARLIER_FRACTION` of the brain voxels, or when the AIF
        peaks below :data:`MIN_PEAK_RATIO` times the median brain voxel.
    """
    raw = np.asarray(concentration, dtype=np.float64)
    baseline_sd = np.asarray(baseline_sd, dtype=np.float64)
    sat_samples = saturated_samples(raw, baseline_sd, te)
    curves, fitted = recover_first_pass(raw, sat_samples, tr, baseline_sd)
    saturated = sat_samples.any(axis=1)
    with np.errstate(invalid="ignore"):
        first_pass = (np.all(np.isfinite(curves), axis=1)
                      & (curves.max(axis=1) > PEAK_SNR * baseline_sd))
    eligible, reselected = None, False
    for attempt in range(2):
        chosen, candidates = select_arterial_voxels(
            curves, tr, baseline_sd=baseline_sd, eligible=eligible, random_state=random_state)
        aif, quality = _quality(curves, chosen, first_pass, tr, fitted,
                                n_saturated=int((chosen & saturated).sum()),
                                n_recovered=int((chosen & fitted).sum()), reselected=reselected)
        if quality.earlier_fraction <= MAX_EARLIER_FRACTION:
            break
        if attempt:
            raise ValueError(
                f"no arterial AIF: the earliest voxels' AIF still arrives after "
                f"{quality.earlier_fraction:.0%} of the brain voxels (at most "
                f"{MAX_EARLIER_FRACTION:.0%} may come first); give an aif mask or an AIF "
                "curve (--aif FILE.tsv).")
        arrival = arrival_times(curves, tr)
        with np.errstate(invalid="ignore"):
            eligible = first_pass & (arrival <= np.quantile(arrival[first_pass],
                                                            MAX_EARLIER_FRACTION))
        reselected = True
    if not quality.peak_ratio >= MIN_PEAK_RATIO:
        raise ValueError(
            f"no arterial AIF: the chosen voxels peak only {quality.peak_ratio:.2g} times the "
            f"median brain voxel (an artery peaks at least {MIN_PEAK_RATIO:g} times: the exam "
            "seems to hold no usable artery); give an aif mask or an AIF curve "
            "(--aif FILE.tsv).")
    return AIFSelection(chosen, candidates, saturated, curves, aif,
                        sat_samples[chosen].any(axis=0), quality)


def select_venous_voxels(concentration, tr, aif, *, max_fraction=0.01):
    """Venous voxels: late, large-area curves (sagittal sinus, large veins).

    The voxels whose first moment is later than the AIF's, ranked by area
    ``∫C``; the largest ``max_fraction`` of all voxels (at least one) whose
    area is also at least half the largest one are kept.

    Parameters
    ----------
    concentration : array_like of shape (n_voxels, n_times)
        Brain voxel curves (1/s, from :func:`voxel_concentrations`); rows
        with a NaN are never venous.
    tr : float
        Frame interval of the curves, seconds.
    aif : array_like of shape (n_times,)
        The arterial concentration curve (1/s) the veins come after.
    max_fraction : float, default=0.01
        Largest fraction of the voxels that are kept.

    Returns
    -------
    venous : ndarray of bool, shape (n_voxels,)

    Raises
    ------
    ValueError
        When no voxel peaks after the AIF with a positive area.
    """
    C = np.asarray(concentration, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        area = np.sum(C, axis=1) * tr
        late = (np.all(np.isfinite(C), axis=1) & (area > 0)
                & (_first_moment(C, tr) > _first_moment(np.asarray(aif, float), tr)))
    if not late.any():
        raise ValueError("no venous candidates: no voxel has a positive-area curve later than "
                         "the AIF; give a vof mask.")
    n_keep = max(1, int(max_fraction * C.shape[0]))
    ranked = np.flatnonzero(late)[np.argsort(area[late])[::-1][:n_keep]]
    venous = np.zeros(C.shape[0], dtype=bool)
    venous[ranked[area[ranked] >= 0.5 * area[ranked[0]]]] = True
    return venous
