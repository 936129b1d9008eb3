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

from .._io import atomic_write
from ..exam import MAP_UNITS
from ..grading import youden_cutoff
from .evaluation import TRUTH

__all__ = [
    "plot_auc_vs_snr",
    "plot_map_comparison",
    "plot_ratio_boxplots",
    "plot_roc_curves",
    "save_figure",
]

_ROI_COLORS = {"tumor": "tab:red", "nawm": "tab:cyan"}


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
                        include_truth=True):
    """Maps of one exam side by side, one column per method (Fig. 3).

    Every panel of a row shares one colour scale (2nd-98th percentile of
    the brain voxels of the whole row), so methods compare by eye; relative
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
    figure = Figure(figsize=(2.3 * len(columns) + 0.8, 2.3 * len(parameters) + 0.5),
                    layout="constrained")
    axes = figure.subplots(len(parameters), len(columns), squeeze=False)
    for row, parameter in enumerate(parameters):
        images = {name: np.where(brain, _relative(maps, parameter, exam)[..., slice_index],
                                 np.nan) for name, maps in columns.items()}
        pooled = np.concatenate([image[np.isfinite(image)] for image in images.values()])
        limits = np.percentile(pooled, [2, 98]) if pooled.size else (0.0, 1.0)
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
    figure.suptitle(f"{exam.subject_id} ({exam.grade or 'grade unknown'}, test set), axial "
                    f"slice {slice_index}; one colour scale per row")
    return figure


def plot_ratio_boxplots(ratios, grades, cutoffs=None, *, parameter="CBF",
                        classes=("LGG", "HGG")):
    """Tumour/NAWM ratios of the test patients by grade, with each method's cut-off (Fig. 4).

    Parameters
    ----------
    ratios : pandas.DataFrame of shape (n_patients, n_methods)
        Ratios, one column per method.
    grades : array_like of shape (n_patients,)
        Grade of each patient.
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
        Each point is a patient; the grade labels give the number of patients.
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
            ax.boxplot(values, positions=[m + offset], widths=0.8 * width, showfliers=False,
                       medianprops={"color": colors[method]})
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
    ax.set_title(f"Test set ({grades.size} patients): one point per patient")
    if cutoffs is not None:
        figure.legend(fontsize="small", title="Youden cut-off (dashed)", title_fontsize="small",
                      loc="outside right upper")
    return figure


def plot_auc_vs_snr(table):
    """Grading AUC with its interval against SNR, per method (Fig. 5).

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`~skperfusion.study.evaluation.noise_robustness`
        (its AUC table): ``snr``, ``method``, ``auc``, ``auc_low``,
        ``auc_high``.

    Returns
    -------
    figure : matplotlib.figure.Figure
        SNR decreasing to the right, as noise grows; each method's band is
        its 95 % interval (error bar), methods offset slightly along the SNR
        axis so that the intervals stay apart; the true ratios' AUC is the
        dotted ceiling.
    """
    methods = [m for m in dict.fromkeys(table["method"]) if m != TRUTH]
    colors = _method_colors(methods)
    figure = Figure(figsize=(8.0, 4.2), layout="constrained")
    ax = figure.subplots()
    snrs = np.sort(table["snr"].unique())
    step = 0.012 * (snrs.max() - snrs.min() if snrs.size > 1 else 1.0)
    for k, method in enumerate(methods):
        rows = table[table["method"] == method].sort_values("snr")
        x = rows["snr"].to_numpy(float) + (k - (len(methods) - 1) / 2) * step
        ax.errorbar(x, rows["auc"], yerr=[rows["auc"] - rows["auc_low"],
                                          rows["auc_high"] - rows["auc"]],
                    color=colors[method], marker="o", capsize=3, label=f"{method}, 95% interval")
    if TRUTH in set(table["method"]):
        rows = table[table["method"] == TRUTH].sort_values("snr")
        ax.plot(rows["snr"], rows["auc"], color=colors[TRUTH], linestyle=":", linewidth=2,
                label="true ratios (ceiling)")
    ax.axhline(0.5, color="0.75", linewidth=0.8)
    ax.text(snrs.max(), 0.5, " chance", va="bottom", ha="left", fontsize="small", color="0.5")
    low = float(np.nanmin(table["auc_low"]))
    ax.set_ylim(max(0.0, min(0.5, low) - 0.05), 1.01)
    ax.invert_xaxis()
    ax.set_xticks(snrs)
    ax.set_xlabel("baseline SNR of the added noise")
    ax.set_ylabel("ROC AUC, LGG vs HGG (test set)")
    # Outside the axes: inside, the legend hides the chance line and the intervals.
    figure.legend(fontsize="small", loc="outside right upper")
    return figure


def plot_roc_curves(ratios, grades, *, higher_class="HGG"):
    """ROC curves of each method's ratio for grading, with the Youden points.

    Parameters
    ----------
    ratios : pandas.DataFrame of shape (n_patients, n_methods)
        Ratios, one column per method.
    grades : array_like of shape (n_patients,)
        Grade of each patient.
    higher_class : str, default="HGG"
        The positive class (expected higher ratios).

    Returns
    -------
    figure : matplotlib.figure.Figure
        One curve per method; a filled marker at the operating point of its
        Youden cut-off.
    """
    is_high = np.asarray(grades) == higher_class
    colors = _method_colors([m for m in ratios.columns if m != TRUTH])
    figure = Figure(figsize=(4.8, 4.8), layout="constrained")
    ax = figure.subplots()
    for method in ratios.columns:
        fpr, tpr, _ = roc_curve(is_high, ratios[method])
        area = np.trapezoid(tpr, fpr)
        # Straight segments: the ROC of tied scores is the diagonal between points.
        ax.plot(fpr, tpr, color=colors[method],
                linestyle=":" if method == TRUTH else "-", label=f"{method} (AUC {area:.2f})")
        _, sensitivity, specificity = youden_cutoff(ratios[method].to_numpy(), is_high)
        ax.plot(1 - specificity, sensitivity, "o", color=colors[method], markersize=6,
                markeredgecolor="white", zorder=3)
    ax.plot([], [], "o", color="0.4", label="Youden cut-off")
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
