"""Markdown tables of the grading study, formatted like the paper's Table 1."""

import json
from functools import partial

import numpy as np
import pandas as pd

from .comparison import MIN_DELONG_PER_CLASS
from .evaluation import TRUTH

__all__ = ["cv_table", "delong_pairs", "error_table", "noise_auc_table", "plural",
           "render_report", "study_json", "summary", "table1"]


def plural(count, noun):
    """``count`` and ``noun``, the noun in the plural unless the count is one.

    Parameters
    ----------
    count : int
    noun : str
        Singular noun with a regular plural (``+ "s"``).

    Returns
    -------
    text : str

    Examples
    --------
    >>> from skperfusion.study.report import plural
    >>> plural(1, "draw"), plural(3, "epoch")
    ('1 draw', '3 epochs')
    """
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _markdown(frame, index=True):
    """A table as markdown, cells as written (a bias keeps its "+" sign)."""
    return frame.to_markdown(index=index, disable_numparse=True)


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
        inference time per patient in seconds, mean (min-max over the patients).
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
        formatted["Inference time (s), mean (min-max)"] = [
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


def _number(pattern, value):
    return "n/a" if np.isnan(value) else pattern.format(value)


def error_table(errors):
    """Voxel-wise error table of the maps: bias and absolute error per map.

    Parameters
    ----------
    errors : pandas.DataFrame
        Rows of :func:`~skperfusion.study.evaluation.map_error_table`
        (``snr``, ``method``, ``region`` and the error columns).

    Returns
    -------
    formatted : pandas.DataFrame of str
        Signed median ("bias") and median absolute error of CBF, rCBF, CBV
        and MTT (relative, %) and Tmax (s); ``n/a`` for a map the method
        does not estimate.
    """
    rows = errors[errors["method"] != TRUTH]
    formatted = pd.DataFrame({"SNR": rows["snr"].astype(str), "Method": rows["method"],
                              "Region": rows["region"]})
    for prefix in ("CBF", "rCBF", "CBV", "MTT", "Tmax"):
        unit, pattern = ("s", "{:+.2f}") if prefix == "Tmax" else ("pct", "{:+.1f}")
        shown = "s" if prefix == "Tmax" else "%"
        if f"{prefix}_bias_{unit}" not in rows:
            continue
        bias, absolute = rows[f"{prefix}_bias_{unit}"], rows[f"{prefix}_abs_error_{unit}"]
        formatted[f"{prefix} bias ({shown})"] = bias.map(partial(_number, pattern))
        formatted[f"{prefix} abs. error ({shown})"] = absolute.map(
            partial(_number, pattern.replace("+", "")))
    return formatted.reset_index(drop=True)


def cv_table(table):
    """The cross-validated Table 1 from :func:`~skperfusion.study.cv.summarize_cv`.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of ``summarize_cv``.

    Returns
    -------
    formatted : pandas.DataFrame of str
        Repeats, AUC, sensitivity, specificity and accuracy (%), each the
        mean over repeats with the 2.5-97.5 % range over repeats (the value
        alone for a method run in one repeat), and the training folds'
        cut-offs, mean (min-max).
    """
    formatted = pd.DataFrame(index=table.index)
    formatted["Repeats"] = table["n_repeats"].astype(int).astype(str)
    repeated = table["n_repeats"].to_numpy() > 1
    for name, scale, digits in (("auc", 1, 2), ("sensitivity", 100, 1),
                                ("specificity", 100, 1), ("accuracy", 100, 1)):
        column = "AUC" if name == "auc" else f"{name.capitalize()} (%)"
        formatted[column] = [
            _with_ci(*r, scale=scale, digits=digits) if many else f"{scale * r[0]:.{digits}f}"
            for r, many in zip(table[[name, f"{name}_low", f"{name}_high"]].values, repeated,
                               strict=True)]
    formatted["Cut-off, mean (min-max)"] = [
        _with_ci(*r) for r in table[["cutoff", "cutoff_min", "cutoff_max"]].values]
    return formatted


def delong_pairs(table):
    """The paired comparison table from :func:`~skperfusion.study.comparison.auc_comparison_table`.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of ``auc_comparison_table`` (or ``delong_table``).

    Returns
    -------
    formatted : pandas.DataFrame of str
        One row per pair: the two AUCs, their difference (with its standard
        error where the test gives one), the two-sided p-value and the test.
    """
    return pd.DataFrame({
        "Comparison": table["method_a"] + " vs " + table["method_b"],
        "AUC": [f"{a:.2f} vs {b:.2f}" for a, b in table[["auc_a", "auc_b"]].values],
        "Difference (SE)": [f"{d:+.3f}" + ("" if np.isnan(se) else f" ({se:.3f})")
                            for d, se in table[["difference", "se"]].values],
        "p": [f"{p:.2g}" for p in table["p"]],
        "Test": table.get("test", pd.Series("DeLong", index=table.index)),
    })


def _grading_section(tables, has_truth, figure_names):
    lines = ["## Table 1 — diagnostic performance of the CBF ratio on the test set", "",
             _markdown(table1(tables["table1"])), "",
             "AUC, cut-off, sensitivity and specificity intervals: 95% stratified bootstrap "
             "over the test patients. Cut-off, sensitivity, specificity and accuracy are those "
             "of the Youden-optimal cut-off on the test patients themselves, as in the paper "
             "(apparent, not cross-validated: see the cross-validated table below). Inference "
             "time per patient, mean and range (min-max over the test patients): "
             "concentration conversion, resampling onto the grid and deconvolution of every "
             "brain voxel, on this machine; training time not included.", ""]
    if has_truth:
        lines += [f"The *{TRUTH}* row grades with the simulator's true CBF ratios: the "
                  "ceiling any method can reach on these patients.", ""]
    if not tables["table1_curves"].empty:
        frame = tables["table1_curves"].copy()
        frame.index = [f"{method} ({step})" for step, method in frame.index]
        compared = table1(frame)
        lines += ["### Table 1 with other exam-to-curves steps", "",
                  _markdown(compared.drop(columns=[c for c in compared
                                                   if c.startswith("Inference")])), "",
                  "The same fitted methods (not retrained) on the test exams converted by "
                  "another exam-to-curves step (e.g. without leakage correction).", ""]
    lines += [f"![Fig. 4]({figure_names[1]})", "", f"![ROC curves]({figure_names[2]})", ""]
    return lines + _comparison_section(tables["auc_comparison"], tables["ratios"]["grade"])


def _comparison_section(comparison, grades):
    counts = grades.value_counts()
    lines = ["## Paired comparison of the AUCs on the test set", ""]
    if not len(comparison):
        return [*lines, "One method only: no pair to compare.", ""]
    lines += [_markdown(delong_pairs(comparison), index=False), ""]
    if set(comparison["test"]) == {"DeLong"}:
        return [*lines, "Two-sided p-values of DeLong's test for correlated ROC curves (the "
                "methods grade the same patients; Sun & Xu's fast algorithm), not corrected "
                "for multiple comparisons.", ""]
    floor = 2 / 2 ** len(grades)
    return [*lines, f"With {counts.get('LGG', 0)} LGG and {counts.get('HGG', 0)} HGG test "
            f"patients (fewer than {MIN_DELONG_PER_CLASS} of a grade), DeLong's asymptotic "
            "test is out of its range (its p-values would go below what these patients can "
            "show): two-sided p-values of the paired permutation test of Venkatraman and "
            "Begg (1996) instead, the two methods' ranks of a patient swapped at random"
            + (f" (all {2 ** len(grades)} swaps enumerated; no p-value can be below "
               f"{floor:.2g})" if "exact" in comparison["test"].iloc[0] else
               " (10,000 random swaps)") + "; not corrected for multiple comparisons.", ""]


def _cv_section(tables):
    folds = tables["cv_folds"]
    n_patients = folds["participant_id"].nunique()
    return ["## Cross-validated grading", "",
            _markdown(cv_table(tables["table1_cv"])), "",
            f"Repeated stratified K-fold over all {n_patients} patients: in each fold the "
            "trainable methods are trained, and the Youden cut-off is chosen, on the training "
            "folds only; sensitivity, specificity and accuracy are those of the pooled "
            "out-of-fold predictions (each patient graded once per repeat by a cut-off that "
            "never saw it), the AUC is the mean of the test folds' AUCs. Values are means over "
            "the repeats, in parentheses the 2.5-97.5 % range over the repeats: the "
            "variability due to the partition into folds, not a confidence interval over "
            "patients (see the bootstrap intervals of Table 1).", ""]


def _noise_section(tables, figure_names):
    noise = tables["noise_robustness"]
    n_draws = int(noise.loc[noise["method"] != TRUTH, "n_draws"].max())
    return ["## Noise robustness — AUC by baseline SNR of the added noise", "",
            _markdown(noise_auc_table(noise)), "",
            f"Each SNR: {plural(n_draws, 'independent noise draw')} of every test exam, the "
            "same for every method; the AUC is the mean over the draws, in parentheses the 95% "
            "interval of the AUCs of the same stratified bootstrap resamples pooled over the "
            "draws (noise and patient sampling). Noise is added to the acquired signal, so "
            "the effective SNR is slightly below the nominal one.", "",
            f"![Fig. 5]({figure_names[3]})", ""]


def _errors_section(tables):
    errors = error_table(tables["map_errors"])
    acquired = errors[errors["SNR"] == "acquired"].drop(columns="SNR")
    noisy = errors[(errors["SNR"] != "acquired") & (errors["Region"] == "brain")]
    return ["## Voxel-wise map errors against ground truth", "",
            "### Acquired exams, per region", "", _markdown(acquired, index=False), "",
            "### With added noise, whole brain (every region in map_errors.csv)", "",
            _markdown(noisy.drop(columns="Region"), index=False), "",
            "Median signed (bias) and absolute errors over the voxels of the test exams: "
            "relative errors (%) for CBF, CBV, MTT and rCBF (CBF divided by each exam's NAWM "
            "mean) over the voxels with a positive true value, differences in seconds for "
            "Tmax; with noise, means over the draws. Absolute CBF and CBV carry global scale "
            "errors that no deconvolver can undo (arterial partial volume, different arterial "
            "and tissue relaxivities in the simulator); rCBF and MTT do not. The true Tmax is "
            "the residue's arrival delay, dispersion excluded: a dispersed bolus peaks later, "
            "so part of a positive Tmax bias is dispersion, not error of the method.", "",
            *_same_cbv_note(tables["map_errors"])]


def _same_cbv_note(errors):
    """Why the CBV error is the same for every method, when it is."""
    rows = errors[errors["method"] != TRUTH]
    if "CBV_bias_pct" not in rows or rows["method"].nunique() < 2:
        return []
    spread = rows.groupby(["snr", "region"])["CBV_bias_pct"].agg(lambda v: np.ptp(v))
    if not np.allclose(spread.fillna(0), 0, atol=1e-6):
        return []
    return ["The CBV error is the same for every method: each computes CBV as the ratio of "
            "the areas under the tissue and arterial curves (eq. 2, brain density and "
            "haematocrit corrected), where no deconvolution enters; the methods differ in "
            "CBF and in MTT = CBV/CBF.", ""]


def _auc_list(table, digits=2):
    return ", ".join(f"{method} {value:.{digits}f}" for method, value in table["auc"].items()
                     if method != TRUTH)


def summary(settings, tables, has_truth):
    """The summary that opens the report: n, what is apparent, the ceiling, the differences.

    Parameters
    ----------
    settings : dict of str to str
        The study's settings (``"patients"`` read).
    tables : dict of str to pandas.DataFrame
        The study's tables.
    has_truth : bool
        Whether the cohort has ground truth (the ceiling).

    Returns
    -------
    lines : list of str
        Markdown lines: a bullet list, then the caveats.
    """
    grades = tables["ratios"]["grade"]
    counts = grades.value_counts()
    n_lgg, n_hgg = int(counts.get("LGG", 0)), int(counts.get("HGG", 0))
    table1_ = tables["table1"]
    lines = ["## Summary", "",
             f"- **Patients**: {settings.get('patients', 'n/a')}; test set "
             f"{plural(n_lgg + n_hgg, 'patient')} ({n_lgg} LGG, {n_hgg} HGG).",
             f"- **Test AUC** (Table 1, apparent: cut-offs chosen on the test patients "
             f"themselves): {_auc_list(table1_)}.",
             f"- **Cross-validated AUC** (out of sample, over all patients): "
             f"{_auc_list(tables['table1_cv'])}."]
    if has_truth and TRUTH in table1_.index:
        lines.append(f"- **Ceiling**: the simulator's true CBF ratios reach AUC "
                     f"{table1_.loc[TRUTH, 'auc']:.2f} on these test patients; no method can "
                     "do better there.")
    comparison = tables["auc_comparison"]
    if len(comparison):
        names = {"DeLong": "DeLong's test", "permutation (exact)": "exact permutation test",
                 "permutation (Monte Carlo)": "permutation test"}
        tests = " / ".join(names.get(test, test) for test in dict.fromkeys(comparison["test"]))
        significant = comparison[comparison["p"] < 0.05]
        truth = (significant["method_a"] == TRUTH) | (significant["method_b"] == TRUTH)
        lines.append("- **Differences between methods** (" + tests + ", p < 0.05, "
                     "uncorrected): " + ("; ".join(
                         f"{row.method_a} vs {row.method_b} (AUC {row.auc_a:.2f} vs "
                         f"{row.auc_b:.2f}, p = {row.p:.2g})"
                         for row in significant[~truth].itertuples()) + "."
                         if (~truth).any() else "none is significant."))
        if truth.any():
            lines.append("- **Below the ceiling** (same test): " + "; ".join(
                f"{row.method_b if row.method_a == TRUTH else row.method_a} (AUC "
                f"{min(row.auc_a, row.auc_b):.2f}, p = {row.p:.2g})"
                for row in significant[truth].itertuples()) + ".")
    caveats = []
    if min(n_lgg, n_hgg) < MIN_DELONG_PER_CLASS:
        caveats.append(f"with {n_lgg} LGG and {n_hgg} HGG test patients each patient moves "
                       f"sensitivity by {100 / max(n_hgg, 1):.0f} and specificity by "
                       f"{100 / max(n_lgg, 1):.0f} percentage points, and the AUC intervals "
                       "are wide; DeLong's asymptotic test is replaced by a paired "
                       "permutation test")
    caveats.append("Table 1's cut-offs, sensitivities and specificities are fitted on the "
                   "patients they are measured on (as in the paper): read the cross-validated "
                   "table for out-of-sample values")
    if not tables["table1_curves"].empty:
        caveats.append("the maps are leakage-corrected; Table 1 is repeated without the "
                       "correction below")
    lines += ["", "Caveats: " + "; ".join(caveats) + ".", ""]
    return lines


def study_json(settings, tables):
    """Every table of a study and its settings as one JSON document.

    Parameters
    ----------
    settings : dict of str to str
        The settings section.
    tables : dict of str to pandas.DataFrame
        The study's tables.

    Returns
    -------
    text : str
        ``{"settings": {...}, "tables": {name: [row, ...]}}``, each row a
        record with the table's index columns first; NaN as null.
    """
    records = {}
    for name, table in tables.items():
        named = any(level is not None for level in table.index.names)
        frame = table.reset_index() if named else table
        records[name] = json.loads(frame.to_json(orient="records"))
    return json.dumps({"settings": {k: str(v) for k, v in settings.items()},
                       "tables": records}, indent=1) + "\n"


def render_report(settings, tables, has_truth, figure_names):
    """The markdown report of a study.

    Parameters
    ----------
    settings : dict of str to str
        The settings section, one bullet each.
    tables : dict of str to pandas.DataFrame
        The study's tables (see :func:`skperfusion.study.run.run_study`).
    has_truth : bool
        Whether the cohort has ground truth (map errors, truth rows).
    figure_names : sequence of 4 str
        File names of Figs. 3, 4, the ROC curves and Fig. 5.

    Returns
    -------
    report : str
        Markdown: the summary with its caveats (:func:`summary`), the
        settings, then the sections in the paper's order (maps, grading,
        noise) followed by the analyses beyond the paper.
    """
    lines = ["# Glioma grading study (Fayolle et al. 2025, §2.3 and §3)", ""]
    lines += summary(settings, tables, has_truth)
    lines += ["## Settings", ""]
    lines += [f"- **{key}**: {value}" for key, value in settings.items()]
    lines += ["", "## Maps", "", f"![Fig. 3]({figure_names[0]})", ""]
    lines += _grading_section(tables, has_truth, figure_names)
    lines += _cv_section(tables)
    lines += _noise_section(tables, figure_names)
    if has_truth:
        lines += _errors_section(tables)
    return "\n".join(lines)
