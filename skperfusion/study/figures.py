"""Figures of the grading study (Fayolle et al. 2025, Figs. 3-5, and ROC curves).

Every function returns a :class:`matplotlib.figure.Figure` built without
pyplot (no global state, no display needed: the Agg canvas renders it);
:func:`save_figure` writes it atomically.
"""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from .._io import atomic_write
from ..exam import MAP_UNITS
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


def plot_map_comparison(maps_by_method, *, parameters=("CBF", "MTT"), slice_index=None,
                        include_truth=True):
    """Maps of one exam side by side, one column per method (Fig. 3).

    Each panel has its own colour scale (2nd-98th percentile of its brain
    voxels), since methods differ in global scale; the tumour (red) and
    NAWM (cyan) ROIs are outlined.

    Parameters
    ----------
    maps_by_method : dict of str to ExamMaps
        Maps of the same exam by method name.
    parameters : sequence of str, default=("CBF", "MTT")
        Maps to show, one row each.
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
    figure = Figure(figsize=(2.6 * len(columns), 2.4 * len(parameters)), layout="constrained")
    axes = figure.subplots(len(parameters), len(columns), squeeze=False)
    for row, parameter in enumerate(parameters):
        for col, (name, maps) in enumerate(columns.items()):
            ax = axes[row, col]
            image = np.where(brain, maps[parameter][..., slice_index], np.nan)
            finite = image[np.isfinite(image)]
            limits = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
            shown = ax.imshow(image.T, origin="lower", cmap="inferno", vmin=limits[0],
                              vmax=limits[1])
            for roi, color in _ROI_COLORS.items():
                if roi in exam.masks:
                    ax.contour(exam.masks[roi][..., slice_index].T.astype(float), levels=[0.5],
                               colors=color, linewidths=0.8)
            figure.colorbar(shown, ax=ax, shrink=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name)
            if col == 0:
                ax.set_ylabel(f"{parameter} ({MAP_UNITS[parameter]})")
    figure.suptitle(f"{exam.subject_id} ({exam.grade or 'grade unknown'}), slice {slice_index}")
    return figure


def plot_ratio_boxplots(ratios, grades, cutoffs=None, *, parameter="CBF",
                        classes=("LGG", "HGG")):
    """Tumour/NAWM ratios by grade for each method, with its cut-off (Fig. 4).

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
    """
    grades = np.asarray(grades)
    methods = list(ratios.columns)
    colors = _method_colors(methods)
    figure = Figure(figsize=(1.9 * len(methods) + 1.5, 4.0), layout="constrained")
    ax = figure.subplots()
    rng = np.random.default_rng(0)
    width = 0.8 / len(classes)
    for m, method in enumerate(methods):
        for c, grade in enumerate(classes):
            values = ratios[method].to_numpy()[grades == grade]
            position = m + (c - (len(classes) - 1) / 2) * width
            ax.boxplot(values, positions=[position], widths=0.8 * width, showfliers=False,
                       medianprops={"color": colors[method]})
            ax.scatter(position + rng.uniform(-0.15, 0.15, values.size) * width, values,
                       s=12, color=colors[method], alpha=0.7, zorder=3)
        if cutoffs is not None and method in cutoffs:
            ax.hlines(cutoffs[method], m - 0.45, m + 0.45, colors=colors[method],
                      linestyles="--", label=f"{method} cut-off {cutoffs[method]:.2f}")
    ax.set_xticks([m + (c - (len(classes) - 1) / 2) * width for m in range(len(methods))
                   for c in range(len(classes))], list(classes) * len(methods), minor=True)
    ax.set_xticks(range(len(methods)), methods)
    ax.tick_params(axis="x", which="major", length=0, pad=16)
    ax.set_ylabel(f"tumour / NAWM {parameter} ratio")
    if cutoffs is not None:
        ax.legend(fontsize="small")
    return figure


def plot_auc_vs_snr(table):
    """Grading AUC with its confidence band against SNR, per method (Fig. 5).

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`~skperfusion.study.evaluation.noise_robustness`.

    Returns
    -------
    figure : matplotlib.figure.Figure
        SNR decreasing to the right, as noise grows.
    """
    methods = list(dict.fromkeys(table["method"]))
    colors = _method_colors([m for m in methods if m != TRUTH])
    figure = Figure(figsize=(5.5, 4.0), layout="constrained")
    ax = figure.subplots()
    for method in methods:
        rows = table[table["method"] == method].sort_values("snr")
        style = {"linestyle": ":", "marker": None} if method == TRUTH else {"marker": "o"}
        ax.plot(rows["snr"], rows["auc"], color=colors[method], label=method, **style)
        if method != TRUTH:
            ax.fill_between(rows["snr"], rows["auc_low"], rows["auc_high"],
                            color=colors[method], alpha=0.15)
    ax.invert_xaxis()
    ax.set_xlabel("baseline SNR of the added noise")
    ax.set_ylabel("ROC AUC (LGG vs HGG)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize="small")
    return figure


def plot_roc_curves(ratios, grades, *, higher_class="HGG"):
    """ROC curves of each method's ratio for grading.

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
    """
    is_high = np.asarray(grades) == higher_class
    colors = _method_colors([m for m in ratios.columns if m != TRUTH])
    figure = Figure(figsize=(4.5, 4.5), layout="constrained")
    ax = figure.subplots()
    for method in ratios.columns:
        fpr, tpr, _ = roc_curve(is_high, ratios[method])
        area = np.trapezoid(tpr, fpr)
        # Straight segments: the ROC of tied scores is the diagonal between points.
        ax.plot(fpr, tpr, color=colors[method],
                linestyle=":" if method == TRUTH else "-", label=f"{method} (AUC {area:.2f})")
    ax.plot([0, 1], [0, 1], color="0.8", linewidth=0.8)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel(f"sensitivity ({higher_class})")
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
