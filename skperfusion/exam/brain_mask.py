"""A brain mask from the DSC baseline images, for exams that come without one.

The recipe of dipy's ``median_otsu`` (Garyfallidis et al. 2014), written
with scipy.ndimage: the mean pre-bolus image, a median filter, Otsu's
threshold (Otsu 1979), the largest connected component, holes filled. On a
T2*-weighted EPI the brain is brighter than the background, and the median
filter removes the isolated bright noise voxels that would otherwise pass
the threshold.
"""

import numpy as np
from scipy import ndimage

from ..preprocessing import detect_baseline_frames

__all__ = ["compute_brain_mask", "otsu_threshold"]


def otsu_threshold(values, n_bins=256):
    """Otsu's threshold: the cut that maximises the between-class variance.

    Parameters
    ----------
    values : array_like
        Intensities (any unit); NaN and infinite values are ignored.
    n_bins : int, default=256
        Histogram bins between the smallest and largest value.

    Returns
    -------
    threshold : float
        Values above it form the bright class, in the unit of ``values``.

    Examples
    --------
    >>> import numpy as np
    >>> values = np.r_[np.full(50, 1.0), np.full(50, 9.0)]
    >>> 1.0 < otsu_threshold(values) < 9.0
    True
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    counts, edges = np.histogram(values, bins=n_bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    cumulative = np.cumsum(counts * centres)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_low = cumulative / weight_low
        mean_high = (cumulative[-1] - cumulative) / weight_high
        between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[1:][np.nanargmax(np.where(weight_high > 0, between, np.nan))])


def compute_brain_mask(signal, n_skip=0, *, median_radius=1, n_passes=2):
    """Brain mask of a DSC series from its baseline images (median filter and Otsu).

    1. The baseline image: the mean of the pre-bolus frames after the
       ``n_skip`` non-steady-state ones (bolus arrival detected on the
       whole-volume mean signal, :func:`~skperfusion.preprocessing.detect_baseline_frames`).
    2. ``n_passes`` median filters of a ``(2 · median_radius + 1)³`` cube.
    3. Otsu's threshold (:func:`otsu_threshold`) of the filtered image.
    4. The largest connected component (26-connectivity), holes filled
       slice by slice and in 3-D.

    Parameters
    ----------
    signal : array_like of shape (X, Y, Z, T) or (X, Y, Z, T, E)
        DSC signal (arbitrary units); the first echo of a multi-echo series
        is used.
    n_skip : int, default=0
        Leading non-steady-state frames left out.
    median_radius : int, default=1
        Radius of the median filter in voxels.
    n_passes : int, default=2
        Times the median filter is applied.

    Returns
    -------
    brain : ndarray of bool, shape (X, Y, Z)

    Raises
    ------
    ValueError
        When the baseline image has no contrast (Otsu finds no bright class).

    Examples
    --------
    >>> from skperfusion.datasets import simulate_exam
    >>> exam = simulate_exam(shape=(24, 24, 2), random_state=0)
    >>> brain = compute_brain_mask(exam.signal, exam.n_skip)
    >>> bool((brain == exam.masks["brain"]).mean() > 0.95)
    True
    """
    signal = np.asarray(signal)
    if signal.ndim == 5:
        signal = signal[..., 0]
    series = signal[..., n_skip:].astype(np.float64, copy=False)
    n_baseline = int(detect_baseline_frames(series.reshape(-1, series.shape[-1]).mean(axis=0)
                                            [None])[0])
    image = series[..., :n_baseline].mean(axis=-1)
    size = 2 * median_radius + 1
    for _ in range(n_passes):
        image = ndimage.median_filter(image, size=size, mode="nearest")
    if not np.ptp(image) > 0:
        raise ValueError("the baseline image has no contrast: no brain mask can be computed; "
                         "give brain_mask.nii.gz.")
    bright = image > otsu_threshold(image)
    labels, n_labels = ndimage.label(bright, structure=np.ones((3, 3, 3)))
    if n_labels == 0:
        raise ValueError("no voxel above Otsu's threshold: no brain mask can be computed; give "
                         "brain_mask.nii.gz.")
    sizes = ndimage.sum_labels(bright, labels, index=np.arange(1, n_labels + 1))
    brain = labels == 1 + int(np.argmax(sizes))
    for z in range(brain.shape[2]):
        brain[..., z] = ndimage.binary_fill_holes(brain[..., z])
    return ndimage.binary_fill_holes(brain)
