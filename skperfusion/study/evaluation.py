"""Diagnostic performance, noise robustness and map accuracy of deconvolvers.

The statistics of Fayolle et al. 2025 (§2.3, §3, Table 1 and Fig. 5), as
functions returning pandas DataFrames:

- :func:`grading_metrics` / :func:`grading_table`: ROC AUC, Youden cut-off,
  sensitivity and specificity with bootstrap confidence intervals over
  patients, accuracy, Mann-Whitney U p-value, inference time per patient;
- :func:`noise_robustness`: the same AUC after degrading the DSC signals to
  given SNRs over several noise draws, with the AIF recomputed from the
  degraded signal, and the voxel-wise map errors against ground truth when
  it is known;
- :func:`map_errors` / :func:`map_error_table`: voxel-wise CBF, rCBF, CBV,
  MTT and Tmax errors against ground truth, per region.

The bootstrap resamples patients with replacement *within each grade*
(stratified, as pROC does by default), so every resample has both grades;
intervals are percentile intervals.
"""

import dataclasses

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.stats import mannwhitneyu
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.utils import check_random_state
from tqdm.auto import tqdm

from .._warnings import recorded, replayed
from ..datasets.noise import add_noise
from ..deconvolution import PERFUSION_MAPS
from ..exam import ExamCurves
from ..exam_estimators import ExamMaps, ROIRatio, _finite_mean, exam_grades, shared_curves
from ..grading import youden_cutoff
from ..preprocessing import detect_baseline_frames

__all__ = [
    "ERROR_REGIONS",
    "TRUTH",
    "auc_ci",
    "degrade_exam",
    "grading_metrics",
    "grading_table",
    "map_error_table",
    "map_errors",
    "noise_robustness",
]

TRUTH = "ground truth"
"""Method name of the ratios and maps computed from the simulator's ground truth."""


def _split_groups(scores, y, higher_class):
    scores = np.asarray(scores, dtype=float)
    y = np.asarray(y)
    if scores.ndim != 1 or scores.shape != y.shape:
        raise ValueError(f"scores and y must be 1-D of the same length; got shapes "
                         f"{scores.shape} and {y.shape}.")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf; every patient needs a finite ratio.")
    labels = np.unique(y)
    if labels.size != 2 or higher_class not in labels:
        raise ValueError(f"y must hold exactly two classes including higher_class="
                         f"{higher_class!r}; got {labels.tolist()}.")
    is_high = y == higher_class
    return scores[is_high], scores[~is_high]


def _bootstrap_counts(rng, n_boot, n_high, n_low):
    """How often each patient is drawn, per stratified resample."""
    return (rng.multinomial(n_high, np.full(n_high, 1.0 / n_high), size=n_boot),
            rng.multinomial(n_low, np.full(n_low, 1.0 / n_low), size=n_boot))


def _weighted_auc(high, low, counts_high, counts_low):
    """AUC of every resample from the pairwise kernel (Mann-Whitney form)."""
    kernel = (high[:, None] > low[None, :]) + 0.5 * (high[:, None] == low[None, :])
    return np.einsum("bi,ij,bj->b", counts_high, kernel, counts_low) / (high.size * low.size)


def _interval(values, confidence):
    alpha = (1.0 - confidence) / 2.0
    return tuple(float(v) for v in np.quantile(values, [alpha, 1.0 - alpha]))


def auc_ci(scores, y, *, higher_class="HGG", n_boot=2000, confidence=0.95, random_state=None):
    """ROC AUC of a score with a stratified bootstrap confidence interval.

    Parameters
    ----------
    scores : array_like of shape (n_patients,)
        Finite scores, e.g. tumour/NAWM CBF ratios (dimensionless).
    y : array_like of shape (n_patients,)
        Two class labels.
    higher_class : label, default="HGG"
        The class expected to score higher (the positive class of the ROC).
    n_boot : int, default=2000
        Bootstrap resamples of the patients.
    confidence : float, default=0.95
        Coverage of the percentile interval.
    random_state : int, RandomState instance or None, default=None
        Seed of the resampling.

    Returns
    -------
    auc, low, high : float
        AUC (equal to :func:`sklearn.metrics.roc_auc_score`) and its interval.
    """
    high, low = _split_groups(scores, y, higher_class)
    counts = _bootstrap_counts(check_random_state(random_state), n_boot, high.size, low.size)
    auc = roc_auc_score(np.r_[np.ones(high.size), np.zeros(low.size)], np.r_[high, low])
    return (float(auc), *_interval(_weighted_auc(high, low, *counts), confidence))


def grading_metrics(scores, y, *, higher_class="HGG", n_boot=2000, confidence=0.95,
                    random_state=None):
    """Diagnostic performance of a ratio for grading, as in the paper's Table 1.

    The cut-off is chosen by Youden's method on the given patients
    (:func:`skperfusion.grading.youden_cutoff`; ratio above it →
    ``higher_class``), and so are sensitivity, specificity and accuracy, as
    in the paper. Each bootstrap resample re-derives its own cut-off, whose
    spread gives the intervals of the cut-off, sensitivity and specificity.

    Parameters
    ----------
    scores : array_like of shape (n_patients,)
        Finite ratios (dimensionless).
    y : array_like of shape (n_patients,)
        Two class labels, e.g. ``"LGG"``/``"HGG"``.
    higher_class : label, default="HGG"
        The class expected to have the higher ratios.
    n_boot : int, default=2000
        Stratified bootstrap resamples of the patients.
    confidence : float, default=0.95
        Coverage of the percentile intervals.
    random_state : int, RandomState instance or None, default=None
        Seed of the resampling; the same seed gives the same resamples for
        every method (a paired comparison).

    Returns
    -------
    metrics : pandas.Series
        ``n_high``, ``n_low``; ``auc``, ``cutoff`` (ratio units),
        ``sensitivity``, ``specificity`` (fractions), each with ``_low`` and
        ``_high`` interval bounds; ``accuracy`` (fraction) and
        ``mannwhitney_p`` (two-sided Mann-Whitney U test).
    """
    high, low = _split_groups(scores, y, higher_class)
    counts_high, counts_low = _bootstrap_counts(check_random_state(random_state), n_boot,
                                                high.size, low.size)
    auc = roc_auc_score(np.r_[np.ones(high.size), np.zeros(low.size)], np.r_[high, low])
    is_high = np.r_[np.ones(high.size, bool), np.zeros(low.size, bool)]
    cutoff, sensitivity, specificity = youden_cutoff(np.r_[high, low], is_high)
    # Youden's rule is a search over the resample's own values: one call per
    # resample (patients, not voxels: a few thousand short calls).
    boot = np.array([
        youden_cutoff(np.r_[np.repeat(high, ch), np.repeat(low, cl)],
                      np.r_[np.ones(high.size, bool), np.zeros(low.size, bool)])
        for ch, cl in zip(counts_high, counts_low, strict=True)
    ])
    metrics = {"n_high": high.size, "n_low": low.size, "auc": auc}
    metrics["auc_low"], metrics["auc_high"] = _interval(
        _weighted_auc(high, low, counts_high, counts_low), confidence)
    for k, (name, value) in enumerate((("cutoff", cutoff), ("sensitivity", sensitivity),
                                       ("specificity", specificity))):
        metrics[name] = value
        metrics[f"{name}_low"], metrics[f"{name}_high"] = _interval(boot[:, k], confidence)
    metrics["accuracy"] = (sensitivity * high.size + specificity * low.size) / is_high.size
    metrics["mannwhitney_p"] = float(mannwhitneyu(high, low, alternative="two-sided").pvalue)
    return pd.Series(metrics, dtype=float)


def grading_table(ratios, y, *, times=None, curve_times=None, higher_class="HGG", n_boot=2000,
                  confidence=0.95, random_state=None):
    """Table 1 of the paper: one row of :func:`grading_metrics` per method.

    Parameters
    ----------
    ratios : pandas.DataFrame of shape (n_patients, n_methods)
        Tumour/NAWM ratios, one column per method.
    y : array_like of shape (n_patients,)
        Grades of the patients, in the row order of ``ratios``.
    times : pandas.DataFrame of shape (n_patients, n_methods) or None, default=None
        Inference (deconvolution) time per patient in seconds, columns named
        as in ``ratios`` (a method may be missing, e.g. ground truth).
    curve_times : pandas.DataFrame of shape (n_patients, n_methods) or None, default=None
        Exam-to-curves time per patient in seconds (AIF, conversion,
        leakage correction, resampling), columns as in ``times``.
    higher_class : label, default="HGG"
        The class expected to have the higher ratios.
    n_boot : int, default=2000
        Bootstrap resamples.
    confidence : float, default=0.95
        Coverage of the intervals.
    random_state : int, RandomState instance or None, default=None
        Seed of the resampling; the same resamples are used for every method.

    Returns
    -------
    table : pandas.DataFrame
        Indexed by method, with the columns of :func:`grading_metrics` and,
        when ``times`` is given, ``time_mean``, ``time_min``, ``time_max``
        (seconds per patient; NaN for methods without times), and with
        ``curve_times`` the same statistics prefixed ``curves_time_``.
    """
    # One seed for every method: the same resamples, a paired comparison.
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    rows = {method: grading_metrics(ratios[method].to_numpy(), y, higher_class=higher_class,
                                    n_boot=n_boot, confidence=confidence, random_state=seed)
            for method in ratios.columns}
    table = pd.DataFrame(rows).T
    for prefix, seconds in (("time_", times), ("curves_time_", curve_times)):
        if seconds is not None:
            table = table.join(seconds.agg(["mean", "min", "max"]).T.add_prefix(prefix))
    table.index.name = "method"
    return table


_ABSOLUTE_ERRORS = ("Tmax",)
"""Maps whose errors are differences in seconds (a delay's truth can be 0 or negative)."""

ERROR_REGIONS = ("brain", "tumor", "nawm")
"""Exam masks over which map errors are reported: all mapped tissue, tumour, NAWM."""


def map_errors(maps, parameters=PERFUSION_MAPS, *, normalize_by=None,
               region=None):
    """Voxel-wise error of perfusion maps against ground truth.

    Parameters
    ----------
    maps : list of ExamMaps
        Maps of exams with ``ground_truth`` (simulated cohorts).
    parameters : sequence of str, default=PERFUSION_MAPS
        Maps to evaluate (default: ``("CBF", "CBV", "MTT", "Tmax")``). Tmax
        errors are differences in seconds, the others relative errors in
        percent.
    normalize_by : str or None, default=None
        Exam mask (e.g. ``"nawm"``) by whose mean both the estimate and the
        truth are divided first, per exam: the error of relative maps such
        as rCBF, free of the global scale errors (AIF partial volume,
        arterial vs tissue relaxivity) that no deconvolver can undo.
    region : str or None, default=None
        Exam mask the errors are restricted to (e.g. ``"tumor"``); None uses
        every mapped voxel.

    Returns
    -------
    errors : pandas.Series
        For a relative parameter ``p``: ``p_bias_pct``, the median of
        ``(estimate - truth) / truth`` in percent, and ``p_abs_error_pct``,
        the median of its absolute value, over the voxels with a positive
        true value; for Tmax ``Tmax_bias_s`` and ``Tmax_abs_error_s``, the
        median of ``estimate - truth`` and of its absolute value in seconds,
        over the voxels with a finite true value. Also ``p_failed_pct``, the
        percentage of those voxels whose estimate is NaN or infinite (left
        out of the medians; 100 with NaN medians for a method that does not
        estimate ``p``). All pooled over the exams.

    Raises
    ------
    ValueError
        If an exam has no ground truth for a parameter.
    """
    no_truth = [m.exam.subject_id for m in maps
                if not m.exam.ground_truth or any(p not in m.exam.ground_truth
                                                  for p in parameters)]
    if no_truth:
        raise ValueError(f"subject(s) {no_truth} have no ground truth for {list(parameters)}; "
                         "map errors need a simulated cohort.")
    errors = {}
    for parameter in parameters:
        absolute = parameter in _ABSOLUTE_ERRORS
        deviations = np.concatenate([_deviations(item, parameter, absolute, normalize_by, region)
                                     for item in maps])
        finite = np.isfinite(deviations)
        scale, unit = (1.0, "s") if absolute else (100.0, "pct")
        kept = deviations[finite]
        errors[f"{parameter}_bias_{unit}"] = scale * np.median(kept) if kept.size else np.nan
        errors[f"{parameter}_abs_error_{unit}"] = (scale * np.median(np.abs(kept))
                                                   if kept.size else np.nan)
        errors[f"{parameter}_failed_pct"] = 100 * (1 - finite.mean()) if finite.size else np.nan
    return pd.Series(errors, dtype=float)


def _deviations(item, parameter, absolute, normalize_by, region):
    """Estimate - truth (absolute) or estimate / truth - 1 over the scored voxels of one exam."""
    estimate = item.maps[parameter]
    truth = item.exam.ground_truth[parameter]
    scored = item.exam.mask(item.mask) & np.isfinite(truth)
    if region is not None:
        scored &= item.exam.mask(region)
    if not absolute:
        scored &= truth > 0
    if normalize_by is not None:
        reference = item.exam.mask(normalize_by)
        estimate = estimate / _finite_mean(estimate[reference])
        truth = truth / _finite_mean(truth[reference])
    if absolute:
        return estimate[scored] - truth[scored]
    return estimate[scored] / truth[scored] - 1.0


def map_error_table(maps_by_method, *, regions=ERROR_REGIONS, snr="acquired"):
    """Map errors of several methods per region, CBF, CBV, MTT, Tmax and rCBF.

    Parameters
    ----------
    maps_by_method : dict of str to list of ExamMaps
        Maps of the same exams (with ground truth) by method name.
    regions : sequence of str, default=("brain", "tumor", "nawm")
        Exam masks over which the errors are computed, one row each.
    snr : str or float, default="acquired"
        Value of the ``snr`` column.

    Returns
    -------
    table : pandas.DataFrame
        One row per method and region: ``snr``, ``method``, ``region`` and
        the columns of :func:`map_errors` for CBF, CBV, MTT and Tmax, and for
        CBF normalised by each exam's NAWM mean (prefixed ``r``: ``rCBF_...``).
    """
    rows = []
    for method, maps in maps_by_method.items():
        for region in regions:
            rows.append({"snr": snr, "method": method, "region": region,
                         **map_errors(maps, region=region),
                         **map_errors(maps, ("CBF",), normalize_by="nawm", region=region)
                         .add_prefix("r")})
    return pd.DataFrame(rows)


def degrade_exam(exam, snr, *, arterial=None, noise="gaussian", random_state=None):
    """Copy of an exam with noise added to its DSC signal at a baseline SNR.

    Noise (sd = mean baseline / ``snr`` per voxel, :func:`add_noise`) is
    added to the brain, arterial and venous voxels, the ones the study
    reads; the AIF, recomputed from the signal by the mappers'
    :class:`~skperfusion.exam.ExamToCurves`, is degraded with them. The
    arterial voxels become the degraded exam's ``aif`` mask: the AIF
    *curve* is recomputed from the noisy signal, the *choice* of voxels is
    not re-run (at SNR 10 the automatic selection took the venous sinus
    for an artery in 4 of 12 draws on simulated exams, which would mix AIF
    selection failures into the methods' noise robustness). The baseline
    frames are those detected on the mean signal of the arterial voxels
    (:func:`skperfusion.preprocessing.detect_baseline_frames`), after the
    non-steady-state frames.

    Parameters
    ----------
    exam : Exam
        The exam.
    snr : float
        Baseline SNR of the added noise (> 0, dimensionless).
    arterial : ndarray of bool, shape (X, Y, Z) or None, default=None
        The arterial voxels, e.g. those selected automatically on the clean
        exam (``ExamCurves.aif.voxels``); None uses the exam's ``aif`` mask.
    noise : {"gaussian", "rician"}, default="gaussian"
        Noise model; the paper adds Gaussian noise.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the noise.

    Returns
    -------
    degraded : Exam
        Same exam with the noisier signal (float64) and ``arterial`` as its
        ``aif`` mask.

    Raises
    ------
    ValueError
        Naming the subject, if ``arterial`` is None and the exam has no
        ``aif`` mask.
    """
    arterial = exam.mask("aif" if arterial is None else arterial)
    n_baseline = int(detect_baseline_frames(
        exam.signal[arterial].mean(axis=0)[None, exam.n_skip:])[0])
    voxels = exam.mask("brain") | arterial | exam.masks.get("vof", False)
    signal = exam.signal.astype(np.float64)
    signal[voxels] = add_noise(signal[voxels], snr, n_baseline=n_baseline, n_skip=exam.n_skip,
                               noise=noise, random_state=random_state)
    return dataclasses.replace(exam.with_signal(signal), masks={**exam.masks, "aif": arterial})


def _clean_arteries(items, mappers):
    """The clean exams and the arterial voxels their noisy copies keep.

    The ``aif`` mask where the exam has one; otherwise the voxels of the
    automatic selection on the clean exam: those of given curves, or of the
    first mapper's exam-to-curves step (the clean exam converted once).
    """
    step = next(iter(mappers.values())).curves_
    pairs = []
    for item in items:
        exam = item.exam if isinstance(item, ExamCurves) else item
        if "aif" in exam.masks:
            pairs.append((exam, exam.masks["aif"]))
        else:
            curves = item if isinstance(item, ExamCurves) else step.transform(exam)
            pairs.append((exam, curves.aif.voxels))
    return [exam for exam, _ in pairs], [voxels for _, voxels in pairs]


def noise_robustness(exams, mappers, snrs=(50, 40, 30, 20, 10), *, n_draws=10,
                     parameter="CBF", higher_class="HGG", noise="gaussian",
                     error_regions=ERROR_REGIONS, n_boot=1000, confidence=0.95,
                     random_state=None, n_jobs=None, progress=False):
    """Grading AUC, and map errors, of each method on noise-degraded exams (Fig. 5).

    At each SNR the exams are degraded ``n_draws`` times with independent
    noise (:func:`degrade_exam`, the AIF recomputed from the degraded
    signal), and the same degraded exams are mapped by every method, so
    methods are compared on the same noise; each degraded exam is converted
    once per distinct exam-to-curves step (:func:`shared_curves
    <skperfusion.exam_estimators.shared_curves>`), not once per method. The AUC is the mean over the
    draws; its interval pools, over the draws, the AUCs of the same
    stratified bootstrap resamples of the patients, so it covers both the
    noise and the sampling of the patients.

    Parameters
    ----------
    exams : list of Exam or ExamCurves
        Test exams with grades and ``tumor``/``nawm`` masks, or their clean
        curves (whose arterial voxels the noisy copies keep when an exam has
        no ``aif`` mask).
    mappers : dict of str to PerfusionMapper
        Fitted mappers by method name; an automatic AIF selection is not
        re-run on the noisy exams (see :func:`degrade_exam`).
    snrs : sequence of float, default=(50, 40, 30, 20, 10)
        Baseline SNRs of the added noise (dimensionless).
    n_draws : int, default=10
        Noise realisations per SNR.
    parameter : str, default="CBF"
        Map whose tumour/NAWM ratio grades the exams.
    higher_class : str, default="HGG"
        Grade expected to have the higher ratios.
    noise : {"gaussian", "rician"}, default="gaussian"
        Noise model.
    error_regions : sequence of str, default=("brain", "tumor", "nawm")
        Regions of the map errors (:func:`map_error_table`), computed when
        every exam has ground truth; empty for none.
    n_boot : int, default=1000
        Bootstrap resamples of the AUC interval (the same resamples for
        every method, SNR and draw).
    confidence : float, default=0.95
        Coverage of the AUC interval.
    random_state : int or None, default=None
        Seed of the noise and of the bootstrap.
    n_jobs : int or None, default=None
        Noise draws processed in parallel (joblib); the results do not
        depend on it.
    progress : bool, default=False
        Show a progress bar counting noise draws.

    Returns
    -------
    auc : pandas.DataFrame
        One row per SNR and method: ``snr``, ``method``, ``auc`` (mean over
        draws), ``auc_low``, ``auc_high`` (interval over draws × bootstrap),
        ``auc_draw_sd`` (standard deviation of the AUC over the draws) and
        ``n_draws``; plus per SNR a :data:`TRUTH` row with the AUC of the
        true ratios and its bootstrap interval (the ceiling any method can
        reach on these patients; no noise involved).
    errors : pandas.DataFrame
        The rows of :func:`map_error_table` per SNR, method and region, each
        value the mean over the draws of the per-draw medians; empty
        without ground truth.
    """
    exams, arteries = _clean_arteries(exams, mappers)
    y = exam_grades(exams)
    rng = np.random.default_rng(random_state)
    noise_seeds = rng.integers(2**63, size=(len(snrs), n_draws, len(exams)))
    is_high = y == higher_class
    counts = _bootstrap_counts(np.random.RandomState(int(rng.integers(2**31))), n_boot,
                               int(is_high.sum()), int((~is_high).sum()))
    ratio = ROIRatio(parameter)
    has_truth = all(exam.ground_truth and parameter in exam.ground_truth for exam in exams)
    regions = error_regions if has_truth else ()
    tasks = [(snr, seeds) for snr, draws in zip(snrs, noise_seeds, strict=True) for seeds in draws]
    draws = replayed(Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(recorded(_noise_draw))(exams, arteries, mappers, snr, seeds, noise, ratio,
                                       higher_class, counts, regions) for snr, seeds in tasks))
    results = list(tqdm(draws, total=len(tasks), desc="noise robustness", unit="noise draw",
                        disable=not progress))
    rows, error_rows = [], []
    for k, snr in enumerate(snrs):
        per_snr = results[k * n_draws:(k + 1) * n_draws]
        rows += [_noise_row(snr, method, [aucs[method] for aucs, _ in per_snr], confidence)
                 for method in mappers]
        if regions:
            error_rows.append(pd.concat([errors for _, errors in per_snr]).groupby(
                ["snr", "method", "region"], sort=False).mean().reset_index())
        if has_truth:
            truth = ratio.transform([ExamMaps(exam, exam.ground_truth) for exam in exams])
            rows.append(_noise_row(snr, TRUTH, [_auc_and_resamples(
                truth.ravel(), y, higher_class, counts)], confidence, n_draws=0))
    return pd.DataFrame(rows), (pd.concat(error_rows, ignore_index=True) if error_rows
                                else pd.DataFrame())


def _read_aif_mask(step):
    """The exam-to-curves step reading the ``aif`` mask where it selected arteries itself.

    The degraded exams carry the clean exam's arteries as their ``aif`` mask
    (:func:`degrade_exam`): the selection is not re-run on the noise.
    """
    return clone(step).set_params(aif="mask") if step.get_params()["aif"] == "auto" else step


def _noise_draw(exams, arteries, mappers, snr, seeds, noise, ratio, higher_class, counts,
                regions):
    """One noise draw at one SNR: AUC and resampled AUCs per method, and the map errors.

    Each degraded exam is converted once per distinct exam-to-curves step of
    the mappers, reading its ``aif`` mask (the clean exam's arteries).
    """
    y = exam_grades(exams)
    degraded = [degrade_exam(exam, snr, arterial=voxels, noise=noise, random_state=int(seed))
                for exam, voxels, seed in zip(exams, arteries, seeds, strict=True)]
    curves = {}
    for mask in dict.fromkeys(mapper.mask for mapper in mappers.values()):
        curves |= shared_curves(degraded, {
            method: _read_aif_mask(mapper.curves_) for method, mapper in mappers.items()
            if mapper.mask == mask}, mask=mask)
    maps = {method: mapper.transform(curves[method]) for method, mapper in mappers.items()}
    aucs = {method: _auc_and_resamples(ratio.transform(items).ravel(), y, higher_class, counts)
            for method, items in maps.items()}
    return aucs, (map_error_table(maps, regions=regions, snr=snr) if regions else None)


def _auc_and_resamples(scores, y, higher_class, counts):
    """AUC of the scores and of each bootstrap resample given by ``counts``."""
    high, low = _split_groups(scores, y, higher_class)
    auc = roc_auc_score(np.r_[np.ones(high.size), np.zeros(low.size)], np.r_[high, low])
    return auc, _weighted_auc(high, low, *counts)


def _noise_row(snr, method, draws, confidence, n_draws=None):
    """Summary row of one method at one SNR from its per-draw AUCs and resamples."""
    aucs = np.array([auc for auc, _ in draws])
    low, high = _interval(np.concatenate([boot for _, boot in draws]), confidence)
    return {"snr": snr, "method": method, "auc": float(aucs.mean()), "auc_low": low,
            "auc_high": high, "auc_draw_sd": float(aucs.std(ddof=1)) if aucs.size > 1 else 0.0,
            "n_draws": len(draws) if n_draws is None else n_draws}
