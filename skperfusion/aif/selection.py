"""Automatic selection of arterial (and venous) voxels from the DSC curves.

Arterial voxels after Mouridsen et al. (2006): among the brain voxels with
a clear first pass, the voxels with the highest peaks and the least noise
are clustered by the *shape* of their area-normalised curves with k-means;
the cluster whose mean curve peaks earliest and highest is kept, and
clustered once more. Partial-volumed voxels (lower peaks than the rest of
the arterial cluster) and saturated or noisy voxels are left out. Venous
voxels are the late voxels with the largest areas (sagittal sinus, large
veins): a vein, free of partial volume, may peak higher than the arteries,
but it peaks later.

All functions take the voxel curves at once, ``(n_voxels, n_times)``.
"""

import numpy as np

from ..preprocessing import detect_baseline_frames

__all__ = ["select_arterial_voxels", "select_venous_voxels", "voxel_concentrations"]

MIN_SIGNAL_FRACTION = 0.02
"""Lowest ``S/S0`` of a usable voxel: below it the signal sits at the noise
floor and the peak concentration is clipped (saturation)."""

PEAK_SNR = 5.0
"""A first pass must rise above the baseline by this many baseline sd."""


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


def _earliest_highest(curves, labels, k):
    """Index of the cluster whose mean curve peaks first (within a frame) and highest."""
    means = np.stack([curves[labels == j].mean(axis=0) for j in range(k)])
    time_to_peak = np.argmax(means, axis=1)
    early = time_to_peak <= time_to_peak.min() + 1
    return int(np.argmax(np.where(early, means.max(axis=1), -np.inf)))


def select_arterial_voxels(concentration, tr, *, baseline_sd=None, min_fraction=None,
                           n_clusters=5, peak_quantile=0.9, noise_quantile=0.75,
                           random_state=0):
    """Arterial voxels among voxel concentration curves (Mouridsen et al. 2006).

    1. Usable voxels: finite curves, a first-pass peak above ``PEAK_SNR``
       baseline sd (noise), a lowest signal ``S/S0`` above
       :data:`MIN_SIGNAL_FRACTION` (saturation).
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
       arterial voxel lowers and widens its peak).

    Parameters
    ----------
    concentration : array_like of shape (n_voxels, n_times)
        Voxel concentration curves in 1/s (NaN: unusable voxel).
    tr : float
        Sampling interval in seconds.
    baseline_sd : array_like of shape (n_voxels,) or None, default=None
        Baseline sd of each curve (1/s), for the noise check; None skips it.
    min_fraction : array_like of shape (n_voxels,) or None, default=None
        Lowest ``S/S0`` of each voxel, for the saturation check; None skips it.
    n_clusters : int, default=5
        Clusters of each k-means step.
    peak_quantile : float, default=0.9
        Peak quantile of the usable voxels that candidates reach.
    noise_quantile : float, default=0.75
        Quantile of the candidates' noise per peak above which they are dropped.
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
        if min_fraction is not None:
            usable &= np.asarray(min_fraction) > MIN_SIGNAL_FRACTION
    if not usable.any():
        raise ValueError(f"no arterial candidates: none of the {n_voxels} voxels has a first "
                         "pass above the noise without saturating; check the brain mask or "
                         "give an aif mask.")
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
    chosen &= peak >= np.median(peak[chosen])
    return chosen, candidates


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
