"""Figures of the grading study (Fayolle et al. 2025, Figs. 3-5, and ROC curves).

Every function returns a :class:`matplotlib.figure.Figure` built without
pyplot (no global state, no display needed: the Agg canvas renders it);
:func:`save_figure` writes it atomically.
"""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sklearn.metrics import roc_curve

from .._docs import fill_doc
from .._io import atomic_write
from ..exam import MAP_UNITS
from ..grading import youden_cutoff
from ..report.figures import perfused_voxels, robust_limits
from .evaluation import TRUTH

__all__ = [
    "MIN_BOX_POINTS",
    "plot_auc_vs_snr",
    "plot_map_comparison",
    "plot_ratio_boxplots",
    "plot_roc_curves",
    "save_figure",
]

_ROI_COLORS = {"tumor": "tab:red", "nawm": "tab:cyan"}
_LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)))
_MARKERS = ("o", "s", "^", "D", "v", "P")

MIN_BOX_POINTS = 10
"""Fewest points of a group for which Fig. 4 draws a box plot (quartiles of fewer
points say little; the points and their median are shown instead)."""


def _method_colors(methods):
    colors = dict(zip(methods, [f"C{k}" for k in range(len(methods))], strict=True))
    colors[TRUTH] = "0.35"
    return colors


def _relative(maps, parameter, exam):
    """A map by name; ``"rCBF"``/``"rCBV"`` divided by the exam's mean NAWM CBF/CBV."""
    if parameter in maps or not parameter.startswith("r"):
        return maps[parameter]
    volume = maps[parameter[1:]]
    nawm = volume[exam.mask("nawm")]
    return volume / np.nanmean(nawm[np.isfinite(nawm)])


def _unit(parameter):
    if parameter.startswith("r") and parameter[1:] in MAP_UNITS:
        return f"÷ mean NAWM {parameter[1:]}"
    return MAP_UNITS[parameter]


def plot_map_comparison(maps_by_method, *, parameters=("rCBF", "MTT"), slice_index=None,
                        include_truth=True, curves=None):
    """Maps of one exam side by side, one column per method (Fig. 3).

    Every panel of a row shares one colour scale, the 2nd-98th percentiles
    of the row's normal tissue (perfused brain voxels outside the tumour and
    the AIF and VOF vessels, :func:`~skperfusion.report.figures.perfused_voxels`,
    on the shown slice of every method), so methods compare by eye and leaky
    tumour voxels (often negative), arteries or CSF do not set it; relative
    maps (``"rCBF"``: CBF divided by the exam's mean NAWM CBF) are free of
    the global scale errors that make absolute CBF differ between methods
    and from the truth. The tumour and NAWM ROIs are outlined (legend below).

    Parameters
    ----------
    maps_by_method : dict of str to ExamMaps
        Maps of the same exam by method name.
    parameters : sequence of str, default=("rCBF", "MTT")
        Maps to show, one row each: a map name, or ``"rCBF"``/``"rCBV"``.
    slice_index : int or None, default=None
        Axial slice; None picks the slice with the most tumour voxels.
    include_truth : bool, default=True
        Add a ground-truth column when the exam has one.
    curves : str or None, default=None
        How the maps' curves were made, for the title (e.g. ``"leakage
        corrected (bsw)"``); None says nothing.

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    exam = next(iter(maps_by_method.values())).exam
    columns = {name: item.maps for name, item in maps_by_method.items()}
    if include_truth and exam.ground_truth:
        columns[TRUTH] = exam.ground_truth
    if slice_index is None:
        slice_index = int(np.argmax(exam.mask("tumor").sum(axis=(0, 1)))) \
            if "tumor" in exam.masks else exam.shape[2] // 2
    brain = exam.mask("brain")[..., slice_index]
    # Normal tissue: neither tumour nor the vessels of the AIF and VOF (arterial rCBF ~ 15).
    vessels = np.zeros(exam.shape, bool)
    for name in ("tumor", "aif", "vof"):
        vessels |= exam.masks.get(name, vessels)
    normal = brain & ~vessels[..., slice_index]
    figure = Figure(figsize=(2.3 * len(columns) + 0.8, 2.3 * len(parameters) + 0.5),
                    layout="constrained")
    axes = figure.subplots(len(parameters), len(columns), squeeze=False)
    for row, parameter in enumerate(parameters):
        images = {name: np.where(brain, _relative(maps, parameter, exam)[..., slice_index],
                                 np.nan) for name, maps in columns.items()}
        pooled = np.concatenate([
            image[perfused_voxels(maps.get("CBF", np.full(exam.shape, np.nan))[..., slice_index],
                                  normal)]
            for image, maps in zip(images.values(), columns.values(), strict=True)])
        limits = robust_limits(pooled)
        for col, (name, image) in enumerate(images.items()):
            ax = axes[row, col]
            shown = ax.imshow(image.T, origin="lower", cmap="inferno", vmin=limits[0],
                              vmax=limits[1])
            for roi, color in _ROI_COLORS.items():
                if roi in exam.masks:
                    ax.contour(exam.masks[roi][..., slice_index].T.astype(float), levels=[0.5],
                               colors=color, linewidths=0.9)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name)
            if col == 0:
                ax.set_ylabel(f"{parameter} ({_unit(parameter)})")
        figure.colorbar(shown, ax=axes[row, :], shrink=0.85, label=_unit(parameter))
    handles = [Line2D([], [], color=color, label=label) for label, color in
               (("tumour ROI", _ROI_COLORS["tumor"]), ("NAWM ROI", _ROI_COLORS["nawm"]))]
    figure.legend(handles=handles, loc="outside lower center", ncols=2, fontsize="small")
    described = f"; {curves}" if curves else ""
    figure.suptitle(f"{exam.subject_id} ({exam.grade or 'grade unknown'}, test set), axial "
                    f"slice {slice_index}{described}\none colour scale per row, from the normal "
                    "tissue (2nd-98th percentiles)")
    return figure


@fill_doc
def plot_ratio_boxplots(ratios, grades, cutoffs=None, *, parameter="CBF",
                        classes=("LGG", "HGG")):
    """Tumour/NAWM ratios of the test patients by grade, with each method's cut-off (Fig. 4).

    %(ratios_grades_parameters)s
    cutoffs : mapping of str to float or None, default=None
        Cut-off per method (e.g. the ``cutoff`` column of
        :func:`~skperfusion.study.evaluation.grading_table`), drawn dashed.
    parameter : str, default="CBF"
        Name of the map, for the axis label.
    classes : tuple of str, default=("LGG", "HGG")
        Grades, in plotting order.

    Returns
    -------
    figure : matplotlib.figure.Figure
        Each point is a patient; the grade labels give the number of
        patients. A box (quartiles) is drawn only from
        :data:`MIN_BOX_POINTS` patients of a grade on; with fewer, a line
        marks their median.
    """
    grades = np.asarray(grades)
    methods = list(ratios.columns)
    colors = _method_colors([m for m in methods if m != TRUTH])
    figure = Figure(figsize=(1.9 * len(methods) + 3.5, 4.2), layout="constrained")
    ax = figure.subplots()
    rng = np.random.default_rng(0)
    width = 0.8 / len(classes)
    offsets = [(c - (len(classes) - 1) / 2) * width for c in range(len(classes))]
    for m, method in enumerate(methods):
        for offset, grade in zip(offsets, classes, strict=True):
            values = ratios[method].to_numpy()[grades == grade]
            if values.size >= MIN_BOX_POINTS:
                ax.boxplot(values, positions=[m + offset], widths=0.8 * width,
                           showfliers=False, medianprops={"color": colors[method]})
            elif values.size:
                ax.hlines(np.median(values), m + offset - 0.3 * width, m + offset + 0.3 * width,
                          colors=colors[method], linewidth=2)
            ax.scatter(m + offset + rng.uniform(-0.15, 0.15, values.size) * width, values,
                       s=12, color=colors[method], alpha=0.7, zorder=3)
        if cutoffs is not None and method in cutoffs:
            ax.hlines(cutoffs[method], m - 0.45, m + 0.45, colors=colors[method],
                      linestyles="--", label=f"{method} cut-off {cutoffs[method]:.2f}")
    counts = [f"{grade}\nn={int(np.sum(grades == grade))}" for grade in classes]
    ax.set_xticks([m + offset for m in range(len(methods)) for offset in offsets],
                  counts * len(methods), minor=True)
    ax.set_xticks(range(len(methods)), methods)
    ax.tick_params(axis="x", which="major", length=0, pad=30)
    ax.set_ylabel(f"tumour / NAWM {parameter} ratio")
    ax.set_title(f"Test set ({grades.size} patients): one point per patient\nbox (quartiles) "
                 f"from {MIN_BOX_POINTS} patients of a grade on, else a line at the median",
                 fontsize="medium")
    if cutoffs is not None:
        figure.legend(fontsize="small", title="Youden cut-off (dashed)", title_fontsize="small",
                      loc="outside right upper")
    return figure


def plot_auc_vs_snr(table, acquired=None):
    """Grading AUC with its interval against SNR, per method (Fig. 5).

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`~skperfusion.study.evaluation.noise_robustness`
        (its AUC table): ``snr``, ``method``, ``auc``, ``auc_low``,
        ``auc_high``.
    acquired : pandas.DataFrame or None, default=None
        AUC of the acquired data (no added noise), indexed by method with
        ``auc``, ``auc_low``, ``auc_high`` (Table 1, e.g. the output of
        :func:`~skperfusion.study.evaluation.grading_table`), drawn left of
        the highest SNR at the tick "acquired"; None leaves it out.

    Returns
    -------
    figure : matplotlib.figure.Figure
        SNR decreasing to the right, as noise grows; each method's band is
        its 95 % interval (error bar), methods offset slightly along the SNR
        axis so that the intervals stay apart; the true ratios' AUC is the
        dotted ceiling; chance (0.5) is a grey line labelled at the left
        edge, where the AUCs are highest.
    """
    methods = [m for m in dict.fromkeys(table["method"]) if m != TRUTH]
    colors = _method_colors(methods)
    figure = Figure(figsize=(8.0, 4.2), layout="constrained")
    ax = figure.subplots()
    snrs = np.sort(table["snr"].unique())
    spacing = float(np.min(np.diff(snrs))) if snrs.size > 1 else max(float(snrs[0]) / 2, 1.0)
    ticks, labels = list(snrs), [f"{snr:g}" for snr in snrs]
    if acquired is not None:
        x_acquired = float(snrs.max()) + spacing
        ticks.append(x_acquired)
        labels.append("acquired")
    step = 0.012 * (max(ticks) - min(ticks) if len(ticks) > 1 else 1.0)
    for k, method in enumerate(methods):
        rows = table[table["method"] == method].sort_values("snr")
        shift = (k - (len(methods) - 1) / 2) * step
        ax.errorbar(rows["snr"].to_numpy(float) + shift, rows["auc"],
                    yerr=[rows["auc"] - rows["auc_low"], rows["auc_high"] - rows["auc"]],
                    color=colors[method], marker=_MARKERS[k % len(_MARKERS)], capsize=3,
                    label=f"{method}, 95% interval")
        if acquired is not None and method in acquired.index:
            row = acquired.loc[method]
            ax.errorbar([x_acquired + shift], [row["auc"]],
                        yerr=[[row["auc"] - row["auc_low"]], [row["auc_high"] - row["auc"]]],
                        color=colors[method], marker=_MARKERS[k % len(_MARKERS)], capsize=3,
                        markerfacecolor="none")
    if TRUTH in set(table["method"]):
        rows = table[table["method"] == TRUTH].sort_values("snr")
        x, y = rows["snr"].to_list(), rows["auc"].to_list()
        if acquired is not None and TRUTH in acquired.index:
            x, y = [*x, x_acquired], [*y, acquired.loc[TRUTH, "auc"]]
        ax.plot(x, y, color=colors[TRUTH], linestyle=":", linewidth=2,
                label="true ratios (ceiling)")
    ax.axhline(0.5, color="0.75", linewidth=0.8)
    ax.text(0.005, 0.5, "chance", transform=ax.get_yaxis_transform(), va="bottom",
            ha="left", fontsize="small", color="0.45")
    low = float(np.nanmin(table["auc_low"]))
    if acquired is not None:
        low = min(low, float(np.nanmin(acquired["auc_low"])))
    ax.set_ylim(max(0.0, min(0.5, low) - 0.05), 1.01)
    ax.invert_xaxis()
    ax.set_xticks(ticks, labels)
    if acquired is not None:
        ax.axvline(float(snrs.max()) + spacing / 2, color="0.85", linewidth=0.8)
    ax.set_xlabel("baseline SNR of the added noise (acquired: none added, open markers)")
    ax.set_ylabel("ROC AUC, LGG vs HGG (test set)")
    # Outside the axes: inside, the legend hides the chance line and the intervals.
    figure.legend(fontsize="small", loc="outside right upper")
    return figure


@fill_doc
def plot_roc_curves(ratios, grades, *, higher_class="HGG"):
    """ROC curves of each method's ratio for grading, with the Youden points.

    %(ratios_grades_parameters)s
    higher_class : str, default="HGG"
        The positive class (expected higher ratios).

    Returns
    -------
    figure : matplotlib.figure.Figure
        One curve per method, each with its own line style and vertex
        marker and drawn thinner than the one before, so that curves that
        coincide (on a small test set they often do) stay visible; a large
        marker at the operating point of its Youden cut-off.
    """
    is_high = np.asarray(grades) == higher_class
    methods = [m for m in ratios.columns if m != TRUTH]
    colors = _method_colors(methods)
    figure = Figure(figsize=(5.2, 5.2), layout="constrained")
    ax = figure.subplots()
    for k, method in enumerate(ratios.columns):
        fpr, tpr, _ = roc_curve(is_high, ratios[method])
        area = np.trapezoid(tpr, fpr)
        truth = method == TRUTH
        marker = "" if truth else _MARKERS[k % len(_MARKERS)]
        # Straight segments: the ROC of tied scores is the diagonal between points.
        # The ceiling goes underneath, wide and pale; the methods above it, each thinner.
        ax.plot(fpr, tpr, color="0.75" if truth else colors[method],
                linestyle="-" if truth else _LINESTYLES[k % len(_LINESTYLES)],
                linewidth=5 if truth else max(3.2 - 0.6 * k, 1.0), marker=marker,
                markersize=max(7 - k, 3), markerfacecolor="none",
                label=f"{method} (AUC {area:.2f})", zorder=1 if truth else 2 + k)
        _, sensitivity, specificity = youden_cutoff(ratios[method].to_numpy(), is_high)
        ax.plot(1 - specificity, sensitivity, marker or "o", color=colors[method],
                markersize=9, markeredgecolor="white", zorder=10)
    ax.plot([], [], "o", color="0.4", markersize=9, label="Youden cut-off (filled)")
    ax.plot([0, 1], [0, 1], color="0.8", linewidth=0.8)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel(f"sensitivity ({higher_class})")
    ax.set_title(f"Test set ({is_high.size} patients)")
    ax.set_aspect("equal")
    ax.legend(fontsize="small", loc="lower right")
    return figure


def save_figure(figure, path, *, dpi=120):
    """Write a figure atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        The figure.
    path : str or path-like
        Output file; the format follows its extension (e.g. ``.png``).
    dpi : int, default=120
        Resolution in dots per inch.

    Returns
    -------
    path : pathlib.Path
        The written file.
    """
    path = Path(path)
    (written,) = atomic_write({path.name: lambda temp: figure.savefig(temp, dpi=dpi)},
                               path.parent)
    return written
