"""The whole grading study on a cohort: split, train, map, evaluate, report.

:func:`run_study` reproduces the experiment of Fayolle et al. 2025 (§2.3, §3)
and writes ``report.md``, CSV tables and PNG figures into one folder.
"""

import platform
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from .. import __version__
from .._io import atomic_write, write_csv
from ..deconvolution import OSVDDeconvolver, PHAEDeconvolver, TikhonovDeconvolver
from ..exam_estimators import ExamMaps, PerfusionMapper, ROIRatio, exam_grades
from . import figures
from .evaluation import TRUTH, grading_table, map_errors, noise_robustness
from .report import error_table, noise_auc_table, table1

__all__ = ["OUTPUT_FILES", "run_study"]

_TABLES = ("table1", "noise_robustness", "map_errors", "ratios")
_FIGURES = ("fig3_maps.png", "fig4_ratio_boxplots.png", "fig5_auc_vs_snr.png",
            "roc_curves.png")
OUTPUT_FILES = ("report.md", *(f"{name}.csv" for name in _TABLES), *_FIGURES)
"""Every file :func:`run_study` writes into its folder (the CLI refuses existing ones)."""


def _ratios(maps_by_method, parameter):
    """Ratios (patients × methods) and inference times of mapped exams."""
    ratio = ROIRatio(parameter)
    subjects = [item.exam.subject_id for item in next(iter(maps_by_method.values()))]
    ratios = pd.DataFrame({name: ratio.transform(maps).ravel()
                           for name, maps in maps_by_method.items()}, index=subjects)
    times = pd.DataFrame({name: [item.seconds for item in maps]
                          for name, maps in maps_by_method.items() if name != TRUTH},
                         index=subjects)
    ratios.index.name = times.index.name = "participant_id"
    return ratios, times


def run_study(exams, out_dir, *, test_size=0.4, phae_params=None, max_train_voxels=200_000,
              parameter="CBF", snrs=(50, 40, 30, 20, 10), noise_kind="gaussian", n_boot=2000,
              random_state=0, n_jobs=None, progress=True, source=None):
    """Run the grading study and write its report, tables and figures.

    1. Patients are split, stratified by grade, into a training set (used
       only to train the PHAE; it is a validation for oSVD and Tikhonov) and
       a test set, as in the paper (39 / 25 patients there).
    2. Maps of the test exams with oSVD, Tikhonov and the trained PHAE, on
       one time grid (:class:`~skperfusion.exam_estimators.PerfusionMapper`).
    3. Table 1 on the test patients: tumour/NAWM ratio AUC, Youden cut-off,
       sensitivity, specificity (bootstrap 95% intervals), accuracy,
       Mann-Whitney U p-value, inference time per patient; with ground truth
       (simulated cohorts) the true ratios as a reference row.
    4. Noise robustness (Fig. 5): AUC per method at each SNR of added
       noise, next to the true-ratio AUC; voxel-wise CBF, rCBF and MTT
       errors against ground truth when known.
    5. Figures (maps, ratio boxplots with cut-offs, AUC vs SNR, ROC
       curves), CSV tables and ``report.md``, all written atomically
       together at the end.

    Parameters
    ----------
    exams : list of Exam
        The cohort, with grades and tumour/NAWM masks.
    out_dir : str or path-like
        Output folder (created).
    test_size : float, default=0.4
        Fraction of patients in the test set.
    phae_params : dict or None, default=None
        Parameters of :class:`~skperfusion.PHAEDeconvolver` (paper defaults
        when None).
    max_train_voxels : int or None, default=200_000
        Voxels drawn from the training exams to train the PHAE.
    parameter : str, default="CBF"
        Map whose tumour/NAWM ratio grades the patients.
    snrs : sequence of float, default=(50, 40, 30, 20, 10)
        Baseline SNRs of the noise robustness experiment.
    noise_kind : {"gaussian", "rician"}, default="gaussian"
        Added noise model.
    n_boot : int, default=2000
        Bootstrap resamples for the confidence intervals.
    random_state : int, default=0
        Seed of the split, voxel draw, PHAE, noise and bootstrap.
    n_jobs : int or None, default=None
        Exams mapped in parallel (joblib).
    progress : bool, default=True
        Show progress bars.
    source : str or None, default=None
        Description of the cohort for the report (e.g. its folder).

    Returns
    -------
    tables : dict of str to pandas.DataFrame
        ``"table1"``, ``"noise_robustness"``, ``"map_errors"`` (empty without
        ground truth) and ``"ratios"`` (test patients × methods), as written
        to ``<name>.csv``.
    """
    started = datetime.now(UTC)
    grades = exam_grades(exams)
    if np.unique(grades).size < 2:
        raise ValueError(f"The cohort has only {grades[0]} patients; grading needs both LGG "
                         "and HGG.")
    train, test = train_test_split(exams, test_size=test_size, stratify=grades,
                                   random_state=random_state)
    y_test = exam_grades(test)
    phae = PHAEDeconvolver(**{"random_state": random_state, **(phae_params or {})})
    methods = {"oSVD": OSVDDeconvolver(), "Tikhonov": TikhonovDeconvolver(), "PHAE": phae}
    mappers = {}
    for name, deconvolver in tqdm(methods.items(), desc="fitting on the training exams",
                                  disable=not progress):
        mappers[name] = PerfusionMapper(deconvolver, max_train_voxels=max_train_voxels,
                                        n_jobs=n_jobs, random_state=random_state).fit(train)
    maps = {name: mapper.transform(test) for name, mapper in
            tqdm(mappers.items(), desc="mapping the test exams", disable=not progress)}
    has_truth = all(exam.ground_truth for exam in test)
    if has_truth:
        maps[TRUTH] = [ExamMaps(exam, exam.ground_truth) for exam in test]
    ratios, times = _ratios(maps, parameter)
    tables = {"ratios": ratios.assign(grade=y_test)}
    tables["table1"] = grading_table(ratios, y_test, times=times, n_boot=n_boot,
                                     random_state=random_state)
    tables["noise_robustness"] = noise_robustness(
        test, mappers, snrs, parameter=parameter, kind=noise_kind, n_boot=n_boot,
        random_state=random_state, progress=progress)
    if has_truth:
        acquired = pd.DataFrame([
            {"snr": "acquired", "method": name,
             **map_errors(items), **map_errors(items, ("CBF",), normalize_by="nawm")
             .add_prefix("r")}
            for name, items in maps.items() if name != TRUTH])
        noisy = tables["noise_robustness"].drop(columns=["auc", "auc_low", "auc_high"])
        tables["map_errors"] = pd.concat([acquired, noisy[noisy["method"] != TRUTH]],
                                         ignore_index=True)
    else:
        tables["map_errors"] = pd.DataFrame()

    example = next(i for i, exam in enumerate(test) if exam.grade == "HGG")
    plots = dict(zip(_FIGURES, (
        figures.plot_map_comparison(
            {name: items[example] for name, items in maps.items() if name != TRUTH}),
        figures.plot_ratio_boxplots(
            ratios, y_test, tables["table1"]["cutoff"], parameter=parameter),
        figures.plot_auc_vs_snr(tables["noise_robustness"]),
        figures.plot_roc_curves(ratios, y_test),
    ), strict=True))
    grid = mappers["PHAE"]
    params = phae.get_params()
    settings = {
        "cohort": source or f"{len(exams)} exams given in memory",
        "patients": f"{len(exams)} ({(grades == 'LGG').sum()} LGG, {(grades == 'HGG').sum()} HGG)",
        "split": f"train {len(train)} / test {len(test)} (stratified by grade, "
                 f"test_size={test_size})",
        "seed": random_state,
        "time grid": f"TR {grid.tr_:.4g} s x {grid.n_times_} frames (smallest training TR, "
                     "shortest training acquisition; every exam resampled onto it)",
        "PHAE": (f"{params.get('module__width', 'the default number of')} feature maps, "
                 f"{params['max_epochs']} epochs of "
                 f"{params['max_train_voxels'] or 'all'} voxels, batch {params['batch_size']}, "
                 f"Adam lr {params['lr']:g}, {params['residue']} residue, "
                 f"device {params['device']}"),
        "PHAE training voxels": f"{grid.n_train_voxels_} drawn from the training exams",
        "graded parameter": f"tumour/NAWM {parameter} ratio, HGG above the cut-off",
        "bootstrap": f"{n_boot} stratified resamples of the test patients, percentile 95% CI",
        "noise": f"{noise_kind}, baseline SNR {', '.join(str(s) for s in snrs)}, added to "
                 "the acquired signal, AIF recomputed from the degraded signal",
        "software": f"skperfusion {__version__}, scikit-learn {sklearn.__version__}, "
                    f"torch {torch.__version__}, Python {platform.python_version()}",
        "started": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "wall time": f"{(datetime.now(UTC) - started).total_seconds():.0f} s (before writing)",
    }
    report = _report(settings, tables, has_truth)
    writers = {f"{name}.csv": (lambda temp, t=tables[name], index=name in ("table1", "ratios"):
                               write_csv(t, temp, index=index)) for name in _TABLES}
    writers.update({name: (lambda temp, f=figure: f.savefig(temp, dpi=120))
                    for name, figure in plots.items()})
    writers["report.md"] = lambda temp: temp.write_text(report, encoding="utf-8")
    atomic_write(writers, out_dir)
    return tables


def _report(settings, tables, has_truth):
    """The markdown report."""
    lines = ["# Glioma grading study (Fayolle et al. 2025, §2.3 and §3)", "",
             "## Settings", ""]
    lines += [f"- **{key}**: {value}" for key, value in settings.items()]
    lines += ["", "## Table 1 — diagnostic performance of the CBF ratio on the test set", "",
              table1(tables["table1"]).to_markdown(), "",
              "Intervals: 95% stratified bootstrap over patients. Cut-off, sensitivity, "
              "specificity and accuracy are those of the Youden-optimal cut-off on the test "
              "patients themselves, as in the paper (apparent, not cross-validated). "
              "Inference time per patient: concentration conversion, resampling onto the "
              "grid and deconvolution of every brain voxel, on this machine.", ""]
    if has_truth:
        lines += [f"The *{TRUTH}* row grades with the simulator's true CBF ratios: the "
                  "ceiling any method can reach on these patients.", ""]
    lines += ["![Fig. 4](fig4_ratio_boxplots.png)", "", "![ROC curves](roc_curves.png)", "",
              "## Noise robustness — AUC (95% CI) by baseline SNR of the added noise", "",
              noise_auc_table(tables["noise_robustness"]).to_markdown(), "",
              "Noise is added to the acquired signal, so the effective SNR is slightly below "
              "the nominal one.", "", "![Fig. 5](fig5_auc_vs_snr.png)", ""]
    if has_truth:
        lines += ["## Voxel-wise map errors against ground truth", "",
                  error_table(tables["map_errors"]).to_markdown(index=False), "",
                  "Median signed (bias) and absolute relative errors over the brain voxels "
                  "of the test exams with a positive true value. Absolute CBF carries the "
                  "global scale errors that no deconvolver can undo (arterial partial volume, "
                  "different arterial and tissue relaxivities in the simulator); rCBF, "
                  "normalised by each exam's NAWM mean, and MTT do not.", ""]
    lines += ["## Maps", "", "![Fig. 3](fig3_maps.png)", ""]
    return "\n".join(lines)
