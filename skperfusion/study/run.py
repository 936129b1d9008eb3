"""The whole grading study on a cohort: split, train, map, evaluate, report.

:func:`run_study` reproduces the experiment of Fayolle et al. 2025 (§2.3, §3)
and goes beyond it (cross-validated grading, a paired test of the AUCs, noise
robustness over several noise draws, errors of every map against ground
truth). Its settings are one validated :class:`StudyConfig`;
:func:`compute_study` computes the tables stage by stage, as the paper's
methods read (exam to curves → split → fit → map → Table 1 → cross-validation
→ noise → map errors); :func:`write_study` renders the report, CSV tables
and PNG figures into one folder.
"""

import dataclasses
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from .._io import atomic_write, write_csv
from .._warnings import recorded, replayed
from ..datasets.noise import NOISE_KINDS
from ..deconvolution import (
    PERFUSION_MAPS,
    available_deconvolvers,
    get_deconvolver,
    make_deconvolver,
)
from ..derivatives import software_versions
from ..exam import ExamToCurves, time_grid
from ..exam_estimators import ExamMaps, PerfusionMapper, ROIRatio, exam_grades, shared_curves
from . import figures
from .comparison import auc_comparison_table
from .cv import cross_validated_grading, summarize_cv
from .evaluation import TRUTH, grading_table, map_error_table, noise_robustness
from .feasibility import check_study_design
from .report import plural, render_report, study_json

__all__ = ["OUTPUT_FILES", "StudyConfig", "StudyResults", "compute_study", "run_study",
           "write_study"]

_TABLES = ("table1", "table1_curves", "table1_cv", "cv_folds", "auc_comparison", "noise_robustness",
           "map_errors", "ratios")
_FIGURES = ("fig3_maps.png", "fig4_ratio_boxplots.png", "roc_curves.png",
            "fig5_auc_vs_snr.png")
OUTPUT_FILES = ("report.md", "study.json", *(f"{name}.csv" for name in _TABLES), *_FIGURES)
"""Every file :func:`run_study` writes into its folder (the CLI refuses existing ones)."""


@dataclass(frozen=True)
class StudyConfig:
    """The settings of the grading study, validated when created.

    Parameters
    ----------
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
    curves : ExamToCurves or None, default=None
        The exam-to-curves step of every method (AIF mask or automatic
        selection, AIF scaling, relaxivity, leakage correction); None uses
        :class:`~skperfusion.exam.ExamToCurves` defaults. Its grid is the
        study's.
    compare_curves : dict of str to ExamToCurves or None, default=None
        Other exam-to-curves steps under which Table 1 is repeated with the
        same fitted deconvolvers (not retrained), e.g. ``{"no leakage
        correction": ExamToCurves()}`` when ``curves`` corrects leakage.
    test_size : float, default=0.4
        Fraction of patients in the test set, in (0, 1).
    max_train_voxels : int or None, default=200_000
        Voxels drawn from the training exams to train the trainable methods.
    parameter : {"CBF", "CBV", "MTT", "Tmax"}, default="CBF"
        Map whose tumour/NAWM ratio grades the patients.
    snrs : sequence of float, default=(50, 40, 30, 20, 10)
        Baseline SNRs of the noise robustness experiment (> 0, dimensionless).
    n_draws : int, default=10
        Noise draws per SNR.
    noise : {"gaussian", "rician"}, default="gaussian"
        Added noise model.
    n_splits : int, default=5
        Folds of the cross-validation (>= 2).
    n_repeats : int, default=5
        Repeats of the cross-validation.
    trainable_repeats : int or None, default=1
        Repeats of the cross-validation run for the trainable methods (each
        costs ``n_splits`` trainings); None runs all ``n_repeats``.
    n_boot : int, default=2000
        Bootstrap resamples for the confidence intervals.
    random_state : int, default=0
        Seed of the split, folds, voxel draw, training, noise and bootstrap.
    n_jobs : int or None, default=-1
        Parallel joblib workers of each stage's independent units: the
        exams converted to curves, the cross-validation folds of the
        trainable methods, the noise draws (-1: one per CPU core; None: one
        unless in a :func:`joblib.parallel_config` context). The results do
        not depend on it.
    progress : bool, default=True
        Show one progress bar per stage.
    source : str or None, default=None
        Description of the cohort for the report (e.g. its folder).
    command : str or None, default=None
        The command line that ran the study, for the report.

    Raises
    ------
    ValueError
        Naming the setting, for a value out of its range or an unknown
        method.

    Examples
    --------
    >>> from skperfusion.study.run import StudyConfig
    >>> config = StudyConfig(methods=("osvd", "tikhonov"), n_draws=3)
    >>> config.methods, config.n_draws, config.n_jobs
    (('osvd', 'tikhonov'), 3, -1)
    >>> StudyConfig(test_size=1.5)
    Traceback (most recent call last):
    ...
    ValueError: StudyConfig: test_size must be a number in (0, 1); got 1.5.
    """

    methods: tuple | None = None
    method_params: dict | None = None
    cv_method_params: dict | None = None
    curves: object = None
    compare_curves: dict | None = None
    test_size: float = 0.4
    max_train_voxels: int | None = 200_000
    parameter: str = "CBF"
    snrs: tuple = (50, 40, 30, 20, 10)
    n_draws: int = 10
    noise: str = "gaussian"
    n_splits: int = 5
    n_repeats: int = 5
    trainable_repeats: int | None = 1
    n_boot: int = 2000
    random_state: int = 0
    n_jobs: int | None = -1
    progress: bool = True
    source: str | None = None
    command: str | None = None

    def __post_init__(self):
        methods = available_deconvolvers() if self.methods is None else self.methods
        self._require("methods", not isinstance(methods, str) and len(methods) > 0,
                      "a non-empty sequence of registry names")
        self._set("methods", tuple(get_deconvolver(name).name for name in methods))
        for name in ("method_params", "cv_method_params", "compare_curves"):
            value = {} if getattr(self, name) is None else getattr(self, name)
            self._require(name, isinstance(value, dict), "a dict")
            if name != "compare_curves":
                self._require(name, all(isinstance(v, dict) for v in value.values()),
                              "a dict of registry name to a dict of parameters")
                value = {get_deconvolver(key).name: dict(v) for key, v in value.items()}
            self._set(name, dict(value))
        self._require("test_size", _is_real(self.test_size) and 0 < self.test_size < 1,
                      "a number in (0, 1)")
        for name, minimum in (("n_draws", 1), ("n_splits", 2), ("n_repeats", 1),
                              ("n_boot", 1)):
            self._require(name, _is_int(getattr(self, name), minimum),
                          f"an integer >= {minimum}")
        for name in ("max_train_voxels", "trainable_repeats"):
            value = getattr(self, name)
            self._require(name, value is None or _is_int(value, 1), "None or an integer >= 1")
        self._require("parameter", self.parameter in PERFUSION_MAPS,
                      f"one of {PERFUSION_MAPS}")
        self._require("noise", self.noise in NOISE_KINDS, f"one of {NOISE_KINDS}")
        self._require("snrs", not isinstance(self.snrs, str) and len(self.snrs) > 0 and all(
            _is_real(snr) and snr > 0 for snr in self.snrs), "a non-empty sequence of SNRs > 0")
        self._set("snrs", tuple(self.snrs))
        self._require("random_state", _is_int(self.random_state, None), "an integer seed")
        self._require("n_jobs", self.n_jobs is None or (_is_int(self.n_jobs, None)
                                                        and self.n_jobs != 0),
                      "None or a non-zero integer")
        steps = {"curves": [] if self.curves is None else [self.curves],
                 "compare_curves": list(self.compare_curves.values())}
        for name, given in steps.items():
            self._require(name, all(hasattr(step, method) for step in given
                                    for method in ("transform", "set_params")),
                          "exam-to-curves steps (ExamToCurves)")

    def _set(self, name, value):
        object.__setattr__(self, name, value)

    def _require(self, name, condition, expected):
        if not condition:
            raise ValueError(f"StudyConfig: {name} must be {expected}; got "
                             f"{getattr(self, name)!r}.")

    @property
    def labels(self):
        """Display labels of the methods, by registry name."""
        return {name: get_deconvolver(name).label for name in self.methods}

    @property
    def trainable(self):
        """Labels of the methods that learn from the training exams."""
        return {get_deconvolver(name).label for name in self.methods
                if get_deconvolver(name).trainable}


def _is_int(value, minimum):
    return (isinstance(value, Integral) and not isinstance(value, bool)
            and (minimum is None or value >= minimum))


def _is_real(value):
    return isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)


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
    config : StudyConfig or None, default=None
        The settings the study ran with.
    """

    tables: dict
    settings: dict
    example: dict
    parameter: str = "CBF"
    has_truth: bool = False
    grades: np.ndarray = field(default=None, repr=False)
    config: StudyConfig | None = field(default=None, repr=False)


def _deconvolvers(config, *, cross_validation=False):
    """New deconvolvers by display label, from the registry names and their parameters."""
    deconvolvers = {}
    for name, label in config.labels.items():
        params = config.method_params.get(name, {})
        if cross_validation:
            params = {**params, **config.cv_method_params.get(name, {})}
        estimator = make_deconvolver(name, **params)
        if "random_state" in estimator.get_params() and "random_state" not in params:
            estimator.set_params(random_state=config.random_state)
        deconvolvers[label] = estimator
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


def _exam_curves(exams, step, grid, config, what):
    """Stage 0, exam to curves: every exam converted once, shared by every method."""
    return shared_curves(exams, {what: _grid_step(step, grid)}, n_jobs=config.n_jobs,
                         progress=f"converting {what}" if config.progress else None)[what]


def _fit(train, grid, config):
    """Stage 2, fit: one mapper per method, trained on the training exams' curves."""
    trainable = config.trainable
    return {label: PerfusionMapper(_with_epoch_bar(estimator, label,
                                                   config.progress and label in trainable),
                                   curves=config.curves, tr=grid[0], n_times=grid[1],
                                   max_train_voxels=config.max_train_voxels,
                                   random_state=config.random_state).fit(train)
            for label, estimator in _deconvolvers(config).items()}


def _map_exams(mappers, curves, progress, desc):
    """Stage 3, map: every exam's curves (computed once, shared) by every method.

    Each exam is mapped on its own (its deconvolution timed alone); the
    warnings of all of them come once each, counted, after the loop.
    """
    (maps,) = replayed([recorded(_map_each)(mappers, curves, progress, desc)])
    return maps


def _map_each(mappers, curves, progress, desc):
    """The maps of :func:`_map_exams`, exam by exam."""
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


def _table1(maps, test, config):
    """Stage 4, Table 1: ratios, grading metrics with both times, the paired AUC test."""
    exams = [item.exam for item in test]
    truth = ({TRUTH: [ExamMaps(exam, exam.ground_truth) for exam in exams]}
             if all(exam.ground_truth for exam in exams) else {})
    y = exam_grades(exams)
    ratios, times, curve_times = _ratios(maps | truth, config.parameter)
    return {"ratios": ratios.assign(grade=y),
            "table1": grading_table(ratios, y, times=times, curve_times=curve_times,
                                    n_boot=config.n_boot, random_state=config.random_state),
            "auc_comparison": auc_comparison_table(ratios, y,
                                                   random_state=config.random_state)}


def _compared_curves(mappers, test, grid, config):
    """Table 1 of the fitted deconvolvers on the curves of other exam-to-curves steps."""
    tables = []
    exams = [item.exam for item in test]
    for name, step in config.compare_curves.items():
        curves = _exam_curves(exams, step, grid, config, f"the test exams ({name})")
        maps = _map_exams(mappers, curves, config.progress, f"mapping the test exams ({name})")
        ratios, _, _ = _ratios(maps, config.parameter)
        tables.append(grading_table(ratios, exam_grades(exams), n_boot=config.n_boot,
                                    random_state=config.random_state).assign(curves=name))
    if not tables:
        return pd.DataFrame()
    return pd.concat(tables).reset_index().set_index(["curves", "method"])


def _cross_validation(cohort, grid, config):
    """Stage 5, cross-validation: folds and summary of the repeated stratified K-fold."""
    mappers = {label: PerfusionMapper(estimator, curves=config.curves, tr=grid[0],
                                      n_times=grid[1], max_train_voxels=config.max_train_voxels,
                                      random_state=config.random_state)
               for label, estimator in _deconvolvers(config, cross_validation=True).items()}
    folds = cross_validated_grading(
        cohort, mappers, trainable=config.trainable, n_splits=config.n_splits,
        n_repeats=config.n_repeats, trainable_repeats=config.trainable_repeats,
        parameter=config.parameter, random_state=config.random_state, n_jobs=config.n_jobs,
        progress=config.progress)
    summary = summarize_cv(folds, exam_grades(cohort))
    subjects = np.array([item.exam.subject_id for item in cohort], dtype=object)
    flat = folds.explode(["test", "ratio", "predicted"]).rename(columns={"ratio": "test_ratio"})
    flat.insert(3, "participant_id", subjects[flat.pop("test").to_numpy(dtype=int)])
    return summary, flat.reset_index(drop=True)


def _noise(test, mappers, config):
    """Stage 6, noise robustness: AUC per SNR and the noisy maps' errors."""
    return noise_robustness(test, mappers, config.snrs, n_draws=config.n_draws,
                            parameter=config.parameter, noise=config.noise,
                            n_boot=config.n_boot, random_state=config.random_state,
                            n_jobs=config.n_jobs, progress=config.progress)


def compute_study(exams, config=None, **settings):
    """Compute every table of the grading study; see :func:`run_study`.

    The stages read as the paper's methods: the exams to curves (once per
    exam, shared by every method, split and fold), split, fit, map, Table 1
    (and the paired AUC test), the other exam-to-curves steps, cross-validation, noise
    robustness, map errors.

    Parameters
    ----------
    exams : list of Exam
        The cohort, with grades and tumour/NAWM masks.
    config : StudyConfig or None, default=None
        The settings; None uses the defaults.
    **settings
        :class:`StudyConfig` fields that override ``config``'s.

    Returns
    -------
    results : StudyResults
    """
    config = StudyConfig(**settings) if config is None else dataclasses.replace(config,
                                                                                **settings)
    started = datetime.now(UTC)
    grades = exam_grades(exams)
    check_study_design(grades, test_size=config.test_size, n_splits=config.n_splits,
                       snrs=config.snrs, n_draws=config.n_draws,
                       random_state=config.random_state)
    grid = time_grid(exams)
    cohort = _exam_curves(exams, config.curves, grid, config, "the exams")
    train, test = train_test_split(cohort, test_size=config.test_size, stratify=grades,
                                   random_state=config.random_state)
    mappers = _fit(train, grid, config)
    maps = _map_exams(mappers, test, config.progress, "mapping the test exams")
    tables = _table1(maps, test, config)
    tables["table1_curves"] = _compared_curves(mappers, test, grid, config)
    tables["table1_cv"], tables["cv_folds"] = _cross_validation(cohort, grid, config)
    tables["noise_robustness"], noisy_errors = _noise(test, mappers, config)
    has_truth = TRUTH in tables["ratios"]
    tables["map_errors"] = (pd.concat([map_error_table(maps), noisy_errors], ignore_index=True)
                            if has_truth else pd.DataFrame())
    example = next(i for i, item in enumerate(test) if item.exam.grade == "HGG")
    settings = _settings(exams, (len(train), len(test)), mappers, grid, config, started)
    return StudyResults(tables, settings, {label: items[example] for label, items in
                                           maps.items()}, config.parameter, has_truth,
                        exam_grades(test), config)


def _describe(estimator, skip=("callbacks", "verbose", "tr")):
    """The parameters of an estimator that differ from its defaults."""
    defaults = type(estimator)().get_params(deep=False)
    changed = {k: v for k, v in estimator.get_params(deep=False).items()
               if k not in skip and repr(v) != repr(defaults.get(k))}
    return ", ".join(f"{k}={v!r}" for k, v in changed.items()) or "defaults"


def _curve_settings(config):
    """The exam-to-curves settings, for the report: the main step and the compared ones."""
    def describe(step):
        params = (step or ExamToCurves()).get_params(deep=False)
        return ", ".join(f"{k}={v!r}" for k, v in params.items() if k not in ("tr", "n_times"))

    compared = "".join(f"; Table 1 repeated with {name}: {describe(step)}"
                       for name, step in config.compare_curves.items())
    return (f"{describe(config.curves)} (each exam converted once, its curves shared by every "
            f"method, split and fold){compared}")


def _settings(exams, sizes, mappers, grid, config, started):
    """The settings section of the report: what is needed to rerun the study."""
    grades = exam_grades(exams)
    trainable = config.trainable
    trained = ", ".join(f"{label} on {mappers[label].n_train_voxels_} voxels"
                        for label in mappers if label in trainable) or "none"
    repeats = {None: "every repeat", 1: "the first repeat"}.get(
        config.trainable_repeats, f"the first {config.trainable_repeats} repeats")
    cv_trainable = (f"; trainable methods ({', '.join(sorted(trainable))}) retrained on "
                    f"every training fold of {repeats}" if trainable else "")
    cv_params = "".join(f"; {config.labels[name]} in the folds with {params}"
                        for name, params in config.cv_method_params.items()
                        if name in config.labels)
    return {
        "cohort": config.source or f"{len(exams)} exams given in memory",
        "patients": f"{len(exams)} ({(grades == 'LGG').sum()} LGG, {(grades == 'HGG').sum()} HGG)",
        "split": f"train {sizes[0]} / test {sizes[1]} (stratified by grade, "
                 f"test_size={config.test_size})",
        "seed": config.random_state,
        "time grid": f"TR {grid[0]:.4g} s x {grid[1]} frames (the cohort's smallest "
                     "TR and shortest acquisition; every exam resampled onto it)",
        "exam to curves": _curve_settings(config),
        "methods": "; ".join(f"{label} ({_describe(mapper.deconvolver_)})"
                             for label, mapper in mappers.items()),
        "trained on the training exams": trained,
        "cross-validation": f"{config.n_repeats} x {config.n_splits}-fold stratified by grade "
                            f"over all {len(exams)} patients{cv_trainable}{cv_params}",
        "graded parameter": f"tumour/NAWM {config.parameter} ratio, HGG above the cut-off",
        "bootstrap": f"{config.n_boot} stratified resamples of the test patients, percentile "
                     "95% CI",
        "noise": f"{config.noise}, baseline SNR "
                 f"{', '.join(str(s) for s in config.snrs)}, "
                 f"{plural(config.n_draws, 'draw')} each, added to the acquired signal, AIF "
                 "recomputed from the degraded signal",
        "command": config.command or "Python API (no command line)",
        "software": ", ".join(f"{name} {version}" for name, version in
                              software_versions().items())
                    + f", Python {platform.python_version()}",
        "started": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "wall time": f"{(datetime.now(UTC) - started).total_seconds():.0f} s (before "
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
        figures.plot_map_comparison(results.example,
                                    curves=_leakage_title(results.config.curves)),
        figures.plot_ratio_boxplots(tables["ratios"].drop(columns="grade"), y,
                                    tables["table1"]["cutoff"], parameter=results.parameter),
        figures.plot_roc_curves(tables["ratios"].drop(columns="grade"), y),
        figures.plot_auc_vs_snr(tables["noise_robustness"], acquired=tables["table1"]),
    ), strict=True))
    report = render_report(results.settings, tables, results.has_truth, _FIGURES)
    indexed = ("table1", "table1_curves", "table1_cv", "ratios")
    writers = {f"{name}.csv": (lambda temp, t=tables[name], index=name in indexed:
                               write_csv(t, temp, index=index)) for name in _TABLES}
    writers.update({name: (lambda temp, f=figure: f.savefig(temp, dpi=120))
                    for name, figure in plots.items()})
    writers["report.md"] = lambda temp: temp.write_text(report, encoding="utf-8")
    summary = study_json(results.settings, tables)
    writers["study.json"] = lambda temp: temp.write_text(summary, encoding="utf-8")
    atomic_write(writers, out_dir)


def _leakage_title(curves):
    """Whether the maps are leakage-corrected, for Fig. 3's title."""
    leakage = (curves or ExamToCurves()).leakage
    return "no leakage correction" if leakage == "none" else f"leakage-corrected ({leakage})"


def run_study(exams, out_dir, config=None, **settings):
    """Run the grading study and write its report, tables and figures.

    0. Every exam goes through the exam-to-curves step once (``curves``: AIF,
       conversion, relaxivity, leakage correction, resampling onto the
       cohort's time grid); its curves are shared by every method, split and
       fold.
    1. Patients are split, stratified by grade, into a training set (used
       only to train the trainable methods, e.g. the PHAE) and a test set,
       as in the paper (39 / 25 patients there).
    2. Maps of the test exams with every method, on one time grid.
    3. Table 1 on the test patients: tumour/NAWM ratio AUC, Youden cut-off,
       sensitivity, specificity (bootstrap 95% intervals), accuracy,
       Mann-Whitney U p-value, inference (deconvolution) time and
       exam-to-curves time per patient; with ground truth the true ratios as
       a reference row. A paired test for every pair of methods on the same
       test patients: DeLong's from 20 patients of each grade, the exact
       permutation test below (:func:`~skperfusion.study.comparison.auc_comparison_table`).
    4. Cross-validated Table 1: repeated stratified K-fold over all
       patients, trainable methods and the cut-off fitted on the training
       folds only, so sensitivity, specificity and accuracy are out of
       sample (:func:`~skperfusion.study.cv.cross_validated_grading`).
    5. Noise robustness (Fig. 5): AUC per method at each SNR of added noise
       over ``n_draws`` noise draws, next to the true-ratio AUC; each noisy
       exam converted once for every method.
    6. With ground truth, voxel-wise CBF, rCBF, CBV, MTT and Tmax errors
       per region, on the acquired exams and at each SNR.
    7. Figures, CSV tables, ``report.md`` and ``study.json`` (the settings
       and every table), written atomically together.

    Parameters
    ----------
    exams : list of Exam
        The cohort, with grades and tumour/NAWM masks.
    out_dir : str or path-like
        Output folder (created).
    config : StudyConfig or None, default=None
        The settings; None uses the defaults.
    **settings
        :class:`StudyConfig` fields that override ``config``'s, e.g.
        ``methods=("osvd", "phae")``.

    Returns
    -------
    tables : dict of str to pandas.DataFrame
        ``"table1"``, ``"table1_curves"`` (Table 1 under ``compare_curves``,
        indexed by step name and method; empty without), ``"table1_cv"`` (cross-validated, see
        :func:`~skperfusion.study.cv.summarize_cv`), ``"cv_folds"`` (one row
        per method, fold and test patient), ``"auc_comparison"``,
        ``"noise_robustness"``, ``"map_errors"`` (empty without ground truth)
        and ``"ratios"`` (test patients × methods), as written to
        ``<name>.csv``.
    """
    results = compute_study(exams, config, **settings)
    write_study(results, out_dir)
    return results.tables
