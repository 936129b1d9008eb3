"""The whole grading study on a cohort: split, train, map, evaluate, report.

:func:`run_study` reproduces the experiment of Fayolle et al. 2025 (§2.3, §3)
and goes beyond it (cross-validated grading, DeLong's paired test, noise
robustness over several noise draws, errors of every map against ground
truth). :func:`compute_study` computes the tables; :func:`write_study`
renders the report, CSV tables and PNG figures into one folder.
"""

import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from .. import __version__
from .._io import atomic_write, write_csv
from ..deconvolution import available_deconvolvers, get_deconvolver, make_deconvolver
from ..exam import ExamToCurves, time_grid
from ..exam_estimators import ExamMaps, PerfusionMapper, ROIRatio, exam_grades, shared_curves
from . import figures
from .comparison import delong_table
from .cv import cross_validated_grading, summarize_cv
from .evaluation import TRUTH, grading_table, map_error_table, noise_robustness
from .report import render_report

__all__ = ["OUTPUT_FILES", "StudyResults", "compute_study", "run_study", "write_study"]

_TABLES = ("table1", "table1_curves", "table1_cv", "cv_folds", "delong", "noise_robustness",
           "map_errors", "ratios")
_FIGURES = ("fig3_maps.png", "fig4_ratio_boxplots.png", "roc_curves.png",
            "fig5_auc_vs_snr.png")
OUTPUT_FILES = ("report.md", *(f"{name}.csv" for name in _TABLES), *_FIGURES)
"""Every file :func:`run_study` writes into its folder (the CLI refuses existing ones)."""


@dataclass
class StudyResults:
    """What :func:`compute_study` found, ready to be rendered.

    Parameters
    ----------
    tables : dict of str to pandas.DataFrame
        The tables written as ``<name>.csv`` (see :func:`run_study`).
    settings : dict of str to str
        The study's settings, for the report.
    example : dict of str to ExamMaps
        Maps of one HGG test exam by method, for Fig. 3.
    parameter : str
        The map whose tumour/NAWM ratio grades the patients.
    has_truth : bool
        Whether the cohort has ground truth (simulated).
    grades : ndarray of str, default=None
        The grade (``"LGG"`` or ``"HGG"``) of every test exam, in the order
        of the rows of ``tables["ratios"]`` (for the figures).
    """

    tables: dict
    settings: dict
    example: dict
    parameter: str = "CBF"
    has_truth: bool = False
    grades: np.ndarray = field(default=None, repr=False)


def _deconvolvers(methods, method_params, random_state):
    """New deconvolvers by display label, from registry names and their parameters."""
    deconvolvers = {}
    for name in methods:
        spec = get_deconvolver(name)
        estimator = make_deconvolver(spec.name, **method_params.get(spec.name, {}))
        if ("random_state" in estimator.get_params()
                and "random_state" not in method_params.get(spec.name, {})):
            estimator.set_params(random_state=random_state)
        deconvolvers[spec.label] = estimator
    return deconvolvers


def _with_epoch_bar(deconvolver, label, progress):
    """The deconvolver, reporting its training epochs on one bar when it takes callbacks."""
    if not progress or "callbacks" not in deconvolver.get_params():
        return deconvolver
    from ._progress import EpochBar

    return deconvolver.set_params(callbacks=[EpochBar(f"training {label}")])


def _grid_step(curves, grid):
    """The exam-to-curves step ``curves`` (None: the defaults) on the study's grid."""
    step = ExamToCurves() if curves is None else clone(curves)
    return step.set_params(tr=grid[0], n_times=grid[1])


def _map_exams(mappers, curves, progress, desc):
    """Maps of every exam's curves (computed once, shared) by every method."""
    maps = {label: [] for label in mappers}
    for item in tqdm(curves, desc=desc, unit="exam", disable=not progress):
        for label, mapper in mappers.items():
            maps[label] += mapper.transform([item])
    return maps


def _ratios(maps_by_method, parameter):
    """Ratios, deconvolution times and exam-to-curves times (patients × methods)."""
    ratio = ROIRatio(parameter)
    subjects = [item.exam.subject_id for item in next(iter(maps_by_method.values()))]
    ratios = pd.DataFrame({name: ratio.transform(maps).ravel()
                           for name, maps in maps_by_method.items()}, index=subjects)
    times, curve_times = (pd.DataFrame({name: [getattr(item, attribute) for item in maps]
                                        for name, maps in maps_by_method.items()
                                        if name != TRUTH}, index=subjects)
                          for attribute in ("seconds", "curve_seconds"))
    ratios.index.name = times.index.name = curve_times.index.name = "participant_id"
    return ratios, times, curve_times


def _compared_curves(mappers, test, compare_curves, grid, y, options):
    """Table 1 of the fitted deconvolvers on the curves of other exam-to-curves steps."""
    tables = []
    exams = [item.exam for item in test]
    for name, step in compare_curves.items():
        curves = shared_curves(exams, {name: _grid_step(step, grid)},
                               progress=f"converting the test exams ({name})"
                               if options["progress"] else None)[name]
        maps = _map_exams(mappers, curves, options["progress"],
                          f"mapping the test exams ({name})")
        ratios, _, _ = _ratios(maps, options["parameter"])
        tables.append(grading_table(ratios, y, n_boot=options["n_boot"],
                                    random_state=options["random_state"]).assign(curves=name))
    if not tables:
        return pd.DataFrame()
    return pd.concat(tables).reset_index().set_index(["curves", "method"])


def _cross_validation(curves, deconvolvers, trainable, grid, cv_method_params, options):
    """Folds and summary of the repeated stratified K-fold grading, on the shared curves."""
    tuned = {label: (estimator.set_params(**cv_method_params[label])
                     if label in cv_method_params else estimator)
             for label, estimator in deconvolvers.items()}
    mappers = {label: PerfusionMapper(estimator, curves=options["curves"], tr=grid[0],
                                      n_times=grid[1],
                                      max_train_voxels=options["max_train_voxels"],
                                      random_state=options["random_state"])
               for label, estimator in tuned.items()}
    folds = cross_validated_grading(
        curves, mappers, trainable=trainable, n_splits=options["n_splits"],
        n_repeats=options["n_repeats"], trainable_repeats=options["trainable_repeats"],
        parameter=options["parameter"], random_state=options["random_state"],
        n_jobs=options["n_workers"], progress=options["progress"])
    summary = summarize_cv(folds, exam_grades(curves))
    subjects = np.array([item.exam.subject_id for item in curves], dtype=object)
    flat = folds.explode(["test", "ratio", "predicted"]).rename(columns={"ratio": "test_ratio"})
    flat.insert(3, "participant_id", subjects[flat.pop("test").to_numpy(dtype=int)])
    return summary, flat.reset_index(drop=True)


def compute_study(exams, *, methods=None, method_params=None, cv_method_params=None,
                  compare_curves=None, test_size=0.4, max_train_voxels=200_000, parameter="CBF",
                  snrs=(50, 40, 30, 20, 10), n_draws=10, noise_kind="gaussian", n_splits=5,
                  n_repeats=5, trainable_repeats=1, n_boot=2000, random_state=0,
                  n_jobs=None, n_workers=-1, progress=True, source=None, curves=None):
    """Compute every table of the grading study; see :func:`run_study` for the parameters.

    Returns
    -------
    results : StudyResults
    """
    started = datetime.now(UTC)
    grades = exam_grades(exams)
    if np.unique(grades).size < 2:
        raise ValueError(f"The cohort has only {grades[0]} patients; grading needs both LGG "
                         "and HGG.")
    methods = available_deconvolvers() if methods is None else tuple(methods)
    method_params = {get_deconvolver(k).name: v for k, v in (method_params or {}).items()}
    deconvolvers = _deconvolvers(methods, method_params, random_state)
    trainable = {get_deconvolver(n).label for n in methods if get_deconvolver(n).trainable}
    grid = time_grid(exams)
    # The curves of every exam, computed once and shared by every method, split and fold.
    cohort = shared_curves(exams, {"main": _grid_step(curves, grid)}, n_jobs=n_jobs,
                           progress="converting the exams" if progress else None)["main"]
    train, test = train_test_split(cohort, test_size=test_size, stratify=grades,
                                   random_state=random_state)
    mappers = {label: PerfusionMapper(_with_epoch_bar(estimator, label, progress
                                                      and label in trainable),
                                      curves=curves, tr=grid[0], n_times=grid[1],
                                      max_train_voxels=max_train_voxels, n_jobs=n_jobs,
                                      random_state=random_state).fit(train)
               for label, estimator in deconvolvers.items()}
    maps = _map_exams(mappers, test, progress, "mapping the test exams")
    has_truth = all(item.exam.ground_truth for item in test)
    y_test = exam_grades(test)
    truth = [ExamMaps(item.exam, item.exam.ground_truth) for item in test]
    ratios, times, curve_times = _ratios(maps | ({TRUTH: truth} if has_truth else {}),
                                         parameter)
    tables = {"ratios": ratios.assign(grade=y_test),
              "table1": grading_table(ratios, y_test, times=times, curve_times=curve_times,
                                      n_boot=n_boot, random_state=random_state),
              "delong": delong_table(ratios, y_test)}
    options = {"max_train_voxels": max_train_voxels, "random_state": random_state,
               "n_splits": n_splits, "n_repeats": n_repeats,
               "trainable_repeats": trainable_repeats, "parameter": parameter,
               "n_jobs": n_jobs, "n_workers": n_workers, "progress": progress, "curves": curves,
               "n_boot": n_boot}
    tables["table1_curves"] = _compared_curves(mappers, test, compare_curves or {},
                                               grid, y_test, options)
    cv_params = {get_deconvolver(k).label: v for k, v in (cv_method_params or {}).items()}
    tables["table1_cv"], tables["cv_folds"] = _cross_validation(
        cohort, _deconvolvers(methods, method_params, random_state), trainable, grid,
        cv_params, options)
    tables["noise_robustness"], noisy_errors = noise_robustness(
        test, mappers, snrs, n_draws=n_draws, parameter=parameter, kind=noise_kind,
        n_boot=n_boot, random_state=random_state, n_jobs=n_workers, progress=progress)
    tables["map_errors"] = (pd.concat([map_error_table(maps), noisy_errors], ignore_index=True)
                            if has_truth else pd.DataFrame())
    example = next(i for i, item in enumerate(test) if item.exam.grade == "HGG")
    settings = _settings(exams, train, test, deconvolvers, mappers, cv_params, options | {
        "test_size": test_size, "n_boot": n_boot, "snrs": snrs, "n_draws": n_draws,
        "noise_kind": noise_kind, "source": source, "started": started, "grid": grid,
        "trainable": trainable})
    return StudyResults(tables, settings, {label: items[example] for label, items in
                                           maps.items()}, parameter, has_truth, y_test)


def _describe(estimator):
    """The parameters of an estimator that differ from its defaults."""
    defaults = type(estimator)().get_params(deep=False)
    changed = {k: v for k, v in estimator.get_params(deep=False).items()
               if k not in ("callbacks", "verbose", "tr") and repr(v) != repr(defaults.get(k))}
    return ", ".join(f"{k}={v!r}" for k, v in changed.items()) or "defaults"


def _settings(exams, train, test, deconvolvers, mappers, cv_params, o):
    """The settings section of the report: what is needed to rerun the study."""
    grades = exam_grades(exams)
    trained = ", ".join(f"{label} on {mappers[label].n_train_voxels_} voxels"
                        for label in mappers if label in o["trainable"]) or "none"
    cv_trainable = (f"; trainable methods ({', '.join(sorted(o['trainable']))}) retrained on "
                    f"every training fold of the first {o['trainable_repeats']} repeat(s)"
                    if o["trainable"] else "")
    return {
        "cohort": o["source"] or f"{len(exams)} exams given in memory",
        "patients": f"{len(exams)} ({(grades == 'LGG').sum()} LGG, {(grades == 'HGG').sum()} HGG)",
        "split": f"train {len(train)} / test {len(test)} (stratified by grade, "
                 f"test_size={o['test_size']})",
        "seed": o["random_state"],
        "time grid": f"TR {o['grid'][0]:.4g} s x {o['grid'][1]} frames (the cohort's smallest "
                     "TR and shortest acquisition; every exam resampled onto it)",
        "methods": "; ".join(f"{label} ({_describe(est)})" for label, est in deconvolvers.items()),
        "trained on the training exams": trained,
        "cross-validation": f"{o['n_repeats']} x {o['n_splits']}-fold stratified by grade over "
                            f"all {len(exams)} patients{cv_trainable}"
                            + "".join(f"; {label} in the folds with {params}"
                                      for label, params in cv_params.items()),
        "graded parameter": f"tumour/NAWM {o['parameter']} ratio, HGG above the cut-off",
        "bootstrap": f"{o['n_boot']} stratified resamples of the test patients, percentile "
                     "95% CI",
        "noise": f"{o['noise_kind']}, baseline SNR {', '.join(str(s) for s in o['snrs'])}, "
                 f"{o['n_draws']} draws each, added to the acquired signal, AIF recomputed "
                 "from the degraded signal",
        "software": f"skperfusion {__version__}, scikit-learn {sklearn.__version__}, Python "
                    f"{platform.python_version()}",
        "started": o["started"].strftime("%Y-%m-%d %H:%M:%S UTC"),
        "wall time": f"{(datetime.now(UTC) - o['started']).total_seconds():.0f} s (before "
                     "writing)",
    }


def write_study(results, out_dir):
    """Write the report, the CSV tables and the figures of a study, all or nothing.

    Parameters
    ----------
    results : StudyResults
        Output of :func:`compute_study`.
    out_dir : str or path-like
        Output folder (created).
    """
    tables = results.tables
    y = results.grades
    plots = dict(zip(_FIGURES, (
        figures.plot_map_comparison(results.example),
        figures.plot_ratio_boxplots(tables["ratios"].drop(columns="grade"), y,
                                    tables["table1"]["cutoff"], parameter=results.parameter),
        figures.plot_roc_curves(tables["ratios"].drop(columns="grade"), y),
        figures.plot_auc_vs_snr(tables["noise_robustness"]),
    ), strict=True))
    report = render_report(results.settings, tables, results.has_truth, _FIGURES)
    indexed = ("table1", "table1_curves", "table1_cv", "ratios")
    writers = {f"{name}.csv": (lambda temp, t=tables[name], index=name in indexed:
                               write_csv(t, temp, index=index)) for name in _TABLES}
    writers.update({name: (lambda temp, f=figure: f.savefig(temp, dpi=120))
                    for name, figure in plots.items()})
    writers["report.md"] = lambda temp: temp.write_text(report, encoding="utf-8")
    atomic_write(writers, out_dir)


def run_study(exams, out_dir, *, methods=None, method_params=None, cv_method_params=None,
              compare_curves=None, test_size=0.4, max_train_voxels=200_000, parameter="CBF",
              snrs=(50, 40, 30, 20, 10), n_draws=10, noise_kind="gaussian", n_splits=5,
              n_repeats=5, trainable_repeats=1, n_boot=2000, random_state=0, n_jobs=None,
              n_workers=-1, progress=True, source=None, curves=None):
    """Run the grading study and write its report, tables and figures.

    1. Patients are split, stratified by grade, into a training set (used
       only to train the trainable methods, e.g. the PHAE) and a test set,
       as in the paper (39 / 25 patients there).
    2. Maps of the test exams with every method, on one time grid.
    3. Table 1 on the test patients: tumour/NAWM ratio AUC, Youden cut-off,
       sensitivity, specificity (bootstrap 95% intervals), accuracy,
       Mann-Whitney U p-value, inference time per patient; with ground truth
       the true ratios as a reference row. DeLong's test for every pair of
       methods on the same test patients.
    4. Cross-validated Table 1: repeated stratified K-fold over all
       patients, trainable methods and the cut-off fitted on the training
       folds only, so sensitivity, specificity and accuracy are out of
       sample (:func:`~skperfusion.study.cv.cross_validated_grading`).
    5. Noise robustness (Fig. 5): AUC per method at each SNR of added noise
       over ``n_draws`` noise draws, next to the true-ratio AUC.
    6. With ground truth, voxel-wise CBF, rCBF, CBV, MTT and Tmax errors
       per region, on the acquired exams and at each SNR.
    7. Figures, CSV tables and ``report.md``, written atomically together.

    Parameters
    ----------
    exams : list of Exam
        The cohort, with grades and tumour/NAWM masks.
    out_dir : str or path-like
        Output folder (created).
    methods : sequence of str or None, default=None
        Registry names of the deconvolvers
        (:func:`~skperfusion.deconvolution.available_deconvolvers`); None
        uses every registered one.
    method_params : dict of str to dict or None, default=None
        Constructor parameters by registry name, e.g. ``{"phae":
        {"max_epochs": 20}}``; a method's ``random_state`` defaults to the
        study's.
    cv_method_params : dict of str to dict or None, default=None
        Parameters changed for the cross-validation only, by registry name
        (e.g. fewer training epochs for a method retrained on every fold).
    compare_curves : dict of str to ExamToCurves or None, default=None
        Other exam-to-curves steps under which Table 1 is repeated with the
        same fitted deconvolvers (not retrained), e.g. ``{"no leakage
        correction": ExamToCurves()}`` when ``curves`` corrects leakage.
    test_size : float, default=0.4
        Fraction of patients in the test set.
    max_train_voxels : int or None, default=200_000
        Voxels drawn from the training exams to train the trainable methods.
    parameter : str, default="CBF"
        Map whose tumour/NAWM ratio grades the patients.
    snrs : sequence of float, default=(50, 40, 30, 20, 10)
        Baseline SNRs of the noise robustness experiment.
    n_draws : int, default=10
        Noise draws per SNR.
    noise_kind : {"gaussian", "rician"}, default="gaussian"
        Added noise model.
    n_splits, n_repeats : int, default=5
        Folds and repeats of the cross-validation.
    trainable_repeats : int or None, default=1
        Repeats of the cross-validation run for the trainable methods (each
        costs ``n_splits`` trainings); None runs all ``n_repeats``.
    n_boot : int, default=2000
        Bootstrap resamples for the confidence intervals.
    random_state : int, default=0
        Seed of the split, folds, voxel draw, training, noise and bootstrap.
    n_jobs : int or None, default=None
        Exams processed in parallel (joblib).
    n_workers : int or None, default=-1
        Cross-validation folds of the trainable methods and noise draws
        processed in parallel (joblib processes; -1: one per CPU core), the
        dominant costs of the study on a CPU. The results do not depend on
        it.
    progress : bool, default=True
        Show one progress bar per phase.
    source : str or None, default=None
        Description of the cohort for the report (e.g. its folder).
    curves : ExamToCurves or None, default=None
        The exam-to-curves step of every method (AIF mask or automatic
        selection, VOF scaling, leakage correction); None uses
        :class:`~skperfusion.exam.ExamToCurves` defaults.

    Returns
    -------
    tables : dict of str to pandas.DataFrame
        ``"table1"``, ``"table1_curves"`` (Table 1 under ``compare_curves``,
        indexed by step name and method; empty without), ``"table1_cv"`` (cross-validated, see
        :func:`~skperfusion.study.cv.summarize_cv`), ``"cv_folds"`` (one row
        per method, fold and test patient), ``"delong"``,
        ``"noise_robustness"``, ``"map_errors"`` (empty without ground truth)
        and ``"ratios"`` (test patients × methods), as written to
        ``<name>.csv``.
    """
    results = compute_study(
        exams, methods=methods, method_params=method_params, cv_method_params=cv_method_params,
        compare_curves=compare_curves, test_size=test_size, max_train_voxels=max_train_voxels,
        parameter=parameter, snrs=snrs,
        n_draws=n_draws, noise_kind=noise_kind, n_splits=n_splits, n_repeats=n_repeats,
        trainable_repeats=trainable_repeats, n_boot=n_boot, random_state=random_state,
        n_jobs=n_jobs, n_workers=n_workers, progress=progress, source=source, curves=curves)
    write_study(results, out_dir)
    return results.tables
