"""Markdown tables of the grading study, formatted like the paper's Table 1."""

import numpy as np
import pandas as pd

from .evaluation import TRUTH

__all__ = ["error_table", "noise_auc_table", "table1"]


def _with_ci(value, low, high, scale=1.0, digits=2):
    return f"{scale * value:.{digits}f} ({scale * low:.{digits}f}-{scale * high:.{digits}f})"


def table1(table):
    """The paper's Table 1 from :func:`~skperfusion.study.evaluation.grading_table`.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of ``grading_table`` (with or without times).

    Returns
    -------
    formatted : pandas.DataFrame of str
        AUC, cut-off, sensitivity and specificity (%) with their intervals in
        parentheses, accuracy (%), Mann-Whitney U p-value and, when timed,
        inference time per patient in seconds, mean (min-max).
    """
    formatted = pd.DataFrame(index=table.index)
    formatted["AUC"] = [_with_ci(*r) for r in table[["auc", "auc_low", "auc_high"]].values]
    formatted["Cut-off"] = [_with_ci(*r) for r in
                            table[["cutoff", "cutoff_low", "cutoff_high"]].values]
    for name in ("sensitivity", "specificity"):
        formatted[f"{name.capitalize()} (%)"] = [
            _with_ci(*r, scale=100, digits=1)
            for r in table[[name, f"{name}_low", f"{name}_high"]].values]
    formatted["Accuracy (%)"] = [f"{100 * v:.1f}" for v in table["accuracy"]]
    formatted["Mann-Whitney p"] = [f"{v:.2g}" for v in table["mannwhitney_p"]]
    if "time_mean" in table:
        formatted["Inference time (s)"] = [
            "n/a" if np.isnan(m) else f"{m:.3g} ({lo:.3g}-{hi:.3g})"
            for m, lo, hi in table[["time_mean", "time_min", "time_max"]].values]
    return formatted


def noise_auc_table(noise):
    """AUC (95% CI) per SNR and method from ``noise_robustness``.

    Parameters
    ----------
    noise : pandas.DataFrame
        Output of :func:`~skperfusion.study.evaluation.noise_robustness`.

    Returns
    -------
    formatted : pandas.DataFrame of str
        One row per SNR (as given), one column per method, the true-ratio
        AUC (the ceiling) last.
    """
    cells = noise.assign(cell=[_with_ci(*r) for r in
                               noise[["auc", "auc_low", "auc_high"]].values])
    formatted = cells.pivot(index="snr", columns="method", values="cell")
    methods = [m for m in dict.fromkeys(noise["method"]) if m != TRUTH]
    formatted = formatted[methods + ([TRUTH] if TRUTH in formatted else [])]
    formatted = formatted.loc[list(dict.fromkeys(noise["snr"]))]
    formatted.index.name = "SNR"
    formatted.columns.name = None
    return formatted


def error_table(errors):
    """Voxel-wise error table (median relative errors, %) of the maps.

    Parameters
    ----------
    errors : pandas.DataFrame
        Rows with ``snr``, ``method`` and the columns of
        :func:`~skperfusion.study.evaluation.map_errors` (``CBF``, ``MTT``
        and the NAWM-normalised ``rCBF``).

    Returns
    -------
    formatted : pandas.DataFrame of str
        Signed median ("bias") and median absolute relative error per map,
        and the percentage of failed (non-finite) voxels.
    """
    rows = errors[errors["method"] != TRUTH]
    formatted = pd.DataFrame({"SNR": rows["snr"].astype(str), "Method": rows["method"]})
    for prefix in ("CBF", "rCBF", "MTT"):
        if f"{prefix}_bias_pct" in rows:
            formatted[f"{prefix} bias (%)"] = rows[f"{prefix}_bias_pct"].map("{:+.1f}".format)
            formatted[f"{prefix} |error| (%)"] = rows[f"{prefix}_abs_error_pct"].map(
                "{:.1f}".format)
    failed = rows[[c for c in rows if c.endswith("_failed_pct")]].max(axis=1)
    formatted["failed voxels (%)"] = failed.map("{:.2f}".format)
    return formatted.reset_index(drop=True)
