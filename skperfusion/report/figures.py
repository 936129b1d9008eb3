"""Figures of the QC report: the AIF, the maps, a few voxels' fits.

Each function returns a :class:`matplotlib.figure.Figure` built without
pyplot (no global state; the Agg canvas renders it).
"""

import numpy as np
from matplotlib.figure import Figure

from ..exam.model import MAP_UNITS

__all__ = ["aif_figure", "fit_figure", "maps_figure", "perfused_voxels", "robust_limits",
           "voxel_fits"]

_ORDER = ("CBF", "CBV", "MTT", "Tmax", "rCBF", "rCBV", "K2")
_ROI_COLORS = {"tumor": "tab:red", "nawm": "tab:cyan"}
_MAX_SLICES = 4


def robust_limits(values, *, symmetric=False, percentiles=(2, 98)):
    """Colour limits from percentiles of the finite values.

    Parameters
    ----------
    values : array_like
        Map values (any shape); NaN and inf are ignored.
    symmetric : bool, default=False
        Limits ``(-a, a)`` with ``a`` the upper percentile of ``|values|``
        (for signed maps such as K2).
    percentiles : tuple of float, default=(2, 98)
        Lower and upper percentiles (in %) of the finite values.

    Returns
    -------
    low, high : float
        ``(0, 1)`` when no value is finite; ``high > low`` always.

    Examples
    --------
    >>> from skperfusion.report.figures import robust_limits
    >>> [round(v, 2) for v in robust_limits([*range(101), 1e9])]  # the outlier barely counts
    [2.02, 98.98]
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0
    if symmetric:
        high = float(np.percentile(np.abs(values), percentiles[1]))
        low = -high
    else:
        low, high = (float(v) for v in np.percentile(values, percentiles))
    if not high > low:
        low, high = low - 0.5, low + 0.5
    return low, high


def perfused_voxels(cbf, mapped, *, fraction=0.1):
    """The mapped voxels whose CBF is at least ``fraction`` of its 98th percentile.

    Colour scales are set from these: CSF and noise-only voxels (CBF near 0,
    MTT the ratio of two small noisy numbers, often negative) would
    otherwise stretch the MTT and Tmax scales until normal tissue is one
    colour.

    Parameters
    ----------
    cbf : ndarray of shape (X, Y, Z) or None
        The CBF map (ml/100g/min); None keeps every mapped voxel.
    mapped : ndarray of bool of shape (X, Y, Z)
        The mapped voxels.
    fraction : float, default=0.1
        Threshold relative to the 98th percentile of the mapped CBF.

    Returns
    -------
    voxels : ndarray of bool of shape (X, Y, Z)
        Every mapped voxel when no CBF is finite.
    """
    if cbf is None:
        return mapped
    values = cbf[mapped & np.isfinite(cbf)]
    if not values.size:
        return mapped
    return mapped & (np.nan_to_num(cbf, nan=-np.inf) >= fraction * np.percentile(values, 98))


def _baseline(exam):
    """Mean of the first baseline frames (first echo of a multi-echo exam)."""
    signal = exam.signal if exam.signal.ndim == 4 else exam.signal[..., 0]
    return signal[..., exam.n_skip:exam.n_skip + 5].mean(axis=-1)


def _slices(mask, count):
    """Up to ``count`` axial slices holding mask voxels, evenly spread."""
    present = np.flatnonzero(mask.any(axis=(0, 1)))
    if present.size <= count:
        return list(present)
    return list(present[np.linspace(0, present.size - 1, count).round().astype(int)])


def aif_figure(aif, exam, *, saturated=None):
    """The AIF: its voxels on the baseline image, and its curve.

    Parameters
    ----------
    aif : ExamAIF
        The AIF used (curve in ``aif.unit`` on a grid of ``aif.tr`` seconds).
    exam : Exam
        The exam (baseline image).
    saturated : array_like of bool or None, default=None
        Frames at which the arterial signal saturated, marked with crosses:
        one per sample of ``aif.curve``, or one per acquired frame (the
        non-steady-state frames first, left out; on another grid each sample
        takes the flag of the nearest frame); None when not known.

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    figure = Figure(figsize=(10, 3.6))  # fixed margins: see fit_figure
    image_ax, curve_ax = figure.subplots(1, 2, width_ratios=(1, 1.8),
                                         gridspec_kw={"left": 0.02, "right": 0.99,
                                                      "bottom": 0.5 / 3.6, "top": 1 - 0.3 / 3.6,
                                                      "wspace": 0.12})
    z = int(np.argmax(aif.voxels.sum(axis=(0, 1))))
    image_ax.imshow(_baseline(exam)[..., z].T, origin="lower", cmap="gray")
    x, y = np.nonzero(aif.voxels[..., z])
    image_ax.scatter(x, y, s=14, marker="s", facecolors="none", edgecolors="red",
                     label=f"AIF voxels ({int(aif.voxels.sum())} in all)")
    image_ax.set(xticks=[], yticks=[], title=f"baseline image, slice {z}")
    image_ax.legend(fontsize="small", loc="lower right")
    if aif.candidate_curves is not None and len(aif.candidate_curves):
        low, high = np.percentile(aif.candidate_curves, [10, 90], axis=0)
        curve_ax.fill_between(aif.times, low, high, color="0.85",
                              label=f"{len(aif.candidate_curves)} candidates (10-90 %)")
    scaled = f", scaled x{aif.scale:.3g}" if aif.scale != 1 else ""
    curve_ax.plot(aif.times, aif.curve, color="C3", lw=2, label=f"AIF{scaled}")
    if saturated is not None:
        saturated = np.asarray(saturated, dtype=bool)
        if saturated.size == exam.n_times:
            saturated = saturated[exam.n_skip:]
        if saturated.size != aif.curve.size:  # frames of the exam, the curve on another grid
            nearest = np.rint(aif.times / exam.tr).astype(int)
            saturated = saturated[np.clip(nearest, 0, saturated.size - 1)]
        curve_ax.plot(aif.times[saturated], aif.curve[saturated], "kx", markersize=7,
                      label=f"saturated samples ({int(saturated.sum())})")
    curve_ax.set(xlabel="time (s)", ylabel=f"concentration ({aif.unit})",
                 title="arterial input function")
    curve_ax.legend(fontsize="small")
    return figure


def maps_figure(exam_maps, *, n_slices=_MAX_SLICES):
    """Every map of an exam on a few slices, one robust colour scale per map.

    Parameters
    ----------
    exam_maps : ExamMaps
        The maps; all-NaN maps are left out.
    n_slices : int, default=4
        Axial slices shown (evenly spread over the mapped voxels).

    Returns
    -------
    figure : matplotlib.figure.Figure
        One row per map, one column per slice; each row shares the colour
        scale of :func:`robust_limits` over the perfused voxels
        (:func:`perfused_voxels`) of the whole volume, the AIF and VOF
        vessels left out.
    """
    exam = exam_maps.exam
    mapped = exam.mask(exam_maps.mask)
    vessels = np.zeros(mapped.shape, bool)
    for name in ("aif", "vof"):  # arteries and veins would set the CBF and CBV scales
        vessels |= exam.masks.get(name, vessels)
    if exam_maps.aif is not None:
        vessels |= exam_maps.aif.voxels
    scaled = perfused_voxels(exam_maps.maps.get("CBF"), mapped & ~vessels)
    names = [name for name in _ORDER if name in exam_maps.maps
             and np.isfinite(exam_maps.maps[name]).any()]
    slices = _slices(mapped, n_slices)
    # A fixed grid: constrained layout costs seconds with 28 panels and 7 colour bars.
    figure = Figure(figsize=(2.2 * len(slices) + 1.4, 2.0 * len(names) + 0.4))
    axes = figure.subplots(len(names), len(slices), squeeze=False,
                           gridspec_kw={"left": 0.06, "right": 0.9, "bottom": 0.02,
                                        "top": 0.96, "wspace": 0.05, "hspace": 0.12})
    for row, name in enumerate(names):
        volume = np.where(mapped, exam_maps.maps[name], np.nan)
        signed = name == "K2"
        low, high = robust_limits(volume[scaled], symmetric=signed)
        for col, z in enumerate(slices):
            ax = axes[row, col]
            shown = ax.imshow(volume[..., z].T, origin="lower", vmin=low, vmax=high,
                              cmap="RdBu_r" if signed else "inferno")
            for roi, color in _ROI_COLORS.items():
                if roi in exam.masks and exam.masks[roi][..., z].any():
                    ax.contour(exam.masks[roi][..., z].T.astype(float), levels=[0.5],
                               colors=color, linewidths=0.8)
            ax.set(xticks=[], yticks=[])
            if row == 0:
                ax.set_title(f"slice {z}", fontsize="small")
            if col == 0:
                ax.set_ylabel(name)
        top, bottom = axes[row, -1].get_position().y1, axes[row, -1].get_position().y0
        bar = figure.add_axes((0.91, bottom + 0.1 * (top - bottom), 0.015,
                               0.8 * (top - bottom)))
        figure.colorbar(shown, cax=bar, label=MAP_UNITS.get(name, ""))
    return figure


def voxel_fits(mapper, exam_maps, *, n_voxels=4):
    """Curves of a few voxels and the method's fit to them.

    The voxels are those of the 10th, 50th and 90th CBF percentiles of the
    mapped voxels, and the tumour voxel of median CBF when the exam has a
    tumour mask. The fit is the AIF convolved with the deconvolved impulse
    response, for methods that give it (oSVD, Tikhonov: ``residues``).

    Parameters
    ----------
    mapper : PerfusionMapper
        The fitted mapper that made the maps.
    exam_maps : ExamMaps
        Its maps of the exam.
    n_voxels : int, default=4
        Most voxels shown.

    Returns
    -------
    fits : dict
        ``"times"`` (s), ``"tissue"`` (n, n_times), ``"fit"`` (n, n_times,
        or None when the method gives no impulse response), ``"labels"``
        and ``"unit"``.
    """
    from ..physics.convolution import convolve_aif

    exam = exam_maps.exam
    mapped = exam.mask(exam_maps.mask)
    cbf = np.where(mapped, exam_maps.maps["CBF"], np.nan)
    finite = np.flatnonzero(np.isfinite(cbf))
    picks, labels = [], []
    if finite.size:
        order = finite[np.argsort(cbf.ravel()[finite])]
        for q in (10, 50, 90):
            picks.append(order[int(q / 100 * (order.size - 1))])
            labels.append(f"CBF {q}th percentile")
    if "tumor" in exam.masks:
        tumour = np.flatnonzero(np.isfinite(cbf) & exam.masks["tumor"])
        if tumour.size:
            picks.append(tumour[np.argsort(cbf.ravel()[tumour])][tumour.size // 2])
            labels.append("tumour, median CBF")
    picks, labels = picks[:n_voxels], labels[:n_voxels]
    selected = np.zeros(mapped.size, dtype=bool)
    selected[picks] = True
    curves = mapper.curves_.transform(exam, selected.reshape(mapped.shape))
    # X is in C order of the selected voxels: put it back in the order of picks.
    position = {voxel: k for k, voxel in enumerate(np.flatnonzero(selected))}
    X = curves.X[[position[voxel] for voxel in picks]].astype(float)
    tissue, aif = X[:, 0], X[:, 1]
    deconvolver = getattr(mapper.deconvolver_, "estimator", mapper.deconvolver_)
    fit = None
    if hasattr(deconvolver, "residues"):
        residues = deconvolver.residues(X)
        n = tissue.shape[1]
        if residues.shape[1] == n:
            fit = convolve_aif(aif, residues, curves.tr)
        else:  # block-circulant: circular convolution with the zero-padded AIF
            length = residues.shape[1]
            fit = curves.tr * np.fft.irfft(np.fft.rfft(aif, length) * np.fft.rfft(residues),
                                           length)[:, :n]
    return {"times": np.arange(tissue.shape[1]) * curves.tr, "tissue": tissue, "fit": fit,
            "labels": labels, "unit": curves.aif.unit}


def fit_figure(fits):
    """A few voxels' curves with the method's fit (:func:`voxel_fits`).

    Parameters
    ----------
    fits : dict
        Output of :func:`voxel_fits`.

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    n = len(fits["labels"])
    width = 2.6 * max(n, 1) + 0.5
    # Fixed margins (inches): the constrained layout took a third of the report's time
    # (its text extents are measured again and again).
    figure = Figure(figsize=(width, 2.8))
    axes = figure.subplots(1, max(n, 1), squeeze=False,
                           gridspec_kw={"left": 0.75 / width, "right": 1 - 0.1 / width,
                                        "bottom": 0.5 / 2.8, "top": 1 - 0.3 / 2.8,
                                        "wspace": 0.25})[0]
    for k, label in enumerate(fits["labels"]):
        ax = axes[k]
        ax.plot(fits["times"], fits["tissue"][k], ".", color="0.3", markersize=4,
                label="tissue")
        if fits["fit"] is not None:
            ax.plot(fits["times"], fits["fit"][k], color="C0", label="fit")
        ax.set(title=label, xlabel="time (s)")
        if k == 0:
            ax.set_ylabel(f"concentration ({fits['unit']})")
            ax.legend(fontsize="small")
    return figure
