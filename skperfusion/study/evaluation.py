"""Diagnostic performance, noise robustness and map accuracy of deconvolvers.

The statistics of Fayolle et al. 2025 (§2.3, §3, Table 1 and Fig. 5), as
functions returning pandas DataFrames:

- :func:`grading_metrics` / :func:`grading_table`: ROC AUC, Youden cut-off,
  sensitivity and specificity with bootstrap confidence intervals over
  patients, accuracy, Mann-Whitney U p-value, inference time per patient;
- :func:`noise_robustness`: the same AUC after degrading the DSC signals to
  given SNRs, with the AIF recomputed from the degraded signal, and the
  voxel-wise map errors against ground truth when it is known;
- :func:`map_errors`: voxel-wise CBF/MTT errors against ground truth.

The bootstrap resamples patients with replacement *within each grade*
(stratified, as pROC does by default), so every resample has both grades;
intervals are percentile intervals.
"""

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu
from sklearn.metrics import roc_auc_score
from sklearn.utils import check_random_state
from tqdm.auto import tqdm

from ..datasets.noise import add_noise
from ..exam_estimators import ExamMaps, ROIRatio, _finite_mean, exam_grades
from ..grading import youden_cutoff
from ..preprocessing import detect_baseline_frames

__all__ = [
    "TRUTH",
    "auc_ci",
    "degrade_exam",
    "grading_metrics",
    "grading_table",
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


def grading_table(ratios, y, *, times=None, higher_class="HGG", n_boot=2000, confidence=0.95,
                  random_state=None):
    """Table 1 of the paper: one row of :func:`grading_metrics` per method.

    Parameters
    ----------
    ratios : pandas.DataFrame of shape (n_patients, n_methods)
        Tumour/NAWM ratios, one column per method.
    y : array_like of shape (n_patients,)
        Grades of the patients, in the row order of ``ratios``.
    times : pandas.DataFrame of shape (n_patients, n_methods) or None, default=None
        Inference time per patient in seconds, columns named as in
        ``ratios`` (a method may be missing, e.g. ground truth).
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
        (seconds per patient; NaN for methods without times).
    """
    # One seed for every method: the same resamples, a paired comparison.
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    rows = {method: grading_metrics(ratios[method].to_numpy(), y, higher_class=higher_class,
                                    n_boot=n_boot, confidence=confidence, random_state=seed)
            for method in ratios.columns}
    table = pd.DataFrame(rows).T
    if times is not None:
        stats = times.agg(["mean", "min", "max"]).T.add_prefix("time_")
        table = table.join(stats)
    table.index.name = "method"
    return table


def map_errors(maps, parameters=("CBF", "MTT"), *, normalize_by=None):
    """Voxel-wise relative error of perfusion maps against ground truth.

    Parameters
    ----------
    maps : list of ExamMaps
        Maps of exams with ``ground_truth`` (simulated cohorts).
    parameters : sequence of str, default=("CBF", "MTT")
        Maps to evaluate.
    normalize_by : str or None, default=None
        Exam mask (e.g. ``"nawm"``) by whose mean both the estimate and the
        truth are divided first, per exam: the error of relative maps such
        as rCBF, free of the global scale errors (AIF partial volume,
        arterial vs tissue relaxivity) that no deconvolver can undo.

    Returns
    -------
    errors : pandas.Series
        For each parameter ``p``: ``p_bias_pct``, the median of
        ``(estimate - truth) / truth`` in percent, ``p_abs_error_pct``, the
        median of its absolute value, both pooled over the voxels of every
        exam's mapped mask with a positive true value, and
        ``p_failed_pct``, the percentage of those voxels whose estimate is
        NaN or infinite (left out of the medians).

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
        relative = []
        for item in maps:
            estimate = item.maps[parameter]
            truth = item.exam.ground_truth[parameter]
            scored = item.exam.mask(item.mask) & np.isfinite(truth) & (truth > 0)
            if normalize_by is not None:
                reference = item.exam.mask(normalize_by)
                estimate = estimate / _finite_mean(estimate[reference])
                truth = truth / _finite_mean(truth[reference])
            relative.append(estimate[scored] / truth[scored] - 1.0)
        relative = np.concatenate(relative)
        finite = np.isfinite(relative)
        errors[f"{parameter}_bias_pct"] = 100 * float(np.median(relative[finite]))
        errors[f"{parameter}_abs_error_pct"] = 100 * float(np.median(np.abs(relative[finite])))
        errors[f"{parameter}_failed_pct"] = 100 * (1 - finite.mean())
    return pd.Series(errors, dtype=float)


def degrade_exam(exam, snr, *, kind="gaussian", random_state=None):
    """Copy of an exam with noise added to its DSC signal at a baseline SNR.

    Noise (sd = mean baseline / ``snr`` per voxel, :func:`add_noise`) is
    added to the brain and arterial voxels, the ones the study reads; the
    AIF, recomputed from the signal by :meth:`Exam.curves`, is degraded with
    them. The baseline frames are those detected on the exam's mean arterial
    signal (:func:`skperfusion.preprocessing.detect_baseline_frames`), after
    the non-steady-state frames.

    Parameters
    ----------
    exam : Exam
        The exam.
    snr : float
        Baseline SNR of the added noise (> 0, dimensionless).
    kind : {"gaussian", "rician"}, default="gaussian"
        Noise model; the paper adds Gaussian noise.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the noise.

    Returns
    -------
    degraded : Exam
        Same exam with the noisier signal (float64).
    """
    n_baseline = int(detect_baseline_frames(exam.aif_signal()[None, exam.n_skip:])[0])
    voxels = exam.mask("brain") | exam.mask("aif")
    signal = exam.signal.astype(np.float64)
    signal[voxels] = add_noise(signal[voxels], snr, n_baseline=n_baseline, n_skip=exam.n_skip,
                               kind=kind, random_state=random_state)
    return exam.with_signal(signal)


def noise_robustness(exams, mappers, snrs=(50, 40, 30, 20, 10), *, parameter="CBF",
                     higher_class="HGG", kind="gaussian", error_parameters=("CBF", "MTT"),
                     normalized_parameters=("CBF",), n_boot=1000, confidence=0.95,
                     random_state=None, progress=False):
    """Grading AUC, and map errors, of each method on noise-degraded exams (Fig. 5).

    At each SNR every exam is degraded once (:func:`degrade_exam`, the AIF
    recomputed from the degraded signal) and the same degraded exams are
    mapped by every method, so methods are compared on the same noise.

    Parameters
    ----------
    exams : list of Exam
        Test exams with grades and ``tumor``/``nawm`` masks.
    mappers : dict of str to PerfusionMapper
        Fitted mappers by method name.
    snrs : sequence of float, default=(50, 40, 30, 20, 10)
        Baseline SNRs of the added noise (dimensionless).
    parameter : str, default="CBF"
        Map whose tumour/NAWM ratio grades the exams.
    higher_class : str, default="HGG"
        Grade expected to have the higher ratios.
    kind : {"gaussian", "rician"}, default="gaussian"
        Noise model.
    error_parameters : sequence of str, default=("CBF", "MTT")
        Maps compared with ground truth (:func:`map_errors`) when every exam
        has it.
    normalized_parameters : sequence of str, default=("CBF",)
        Maps compared with ground truth after normalisation by their NAWM
        mean (columns prefixed ``r``, e.g. ``rCBF_abs_error_pct``).
    n_boot : int, default=1000
        Bootstrap resamples of the AUC interval (the same resamples for
        every method and SNR).
    confidence : float, default=0.95
        Coverage of the AUC interval.
    random_state : int or None, default=None
        Seed of the noise and of the bootstrap.
    progress : bool, default=False
        Show a progress bar.

    Returns
    -------
    table : pandas.DataFrame
        One row per SNR and method: ``snr``, ``method``, ``auc``,
        ``auc_low``, ``auc_high`` and, with ground truth, the columns of
        :func:`map_errors`; plus per SNR a :data:`TRUTH` row with the AUC of
        the true ratios (the ceiling any method can reach on these
        patients; no noise involved).
    """
    y = exam_grades(exams)
    rng = np.random.default_rng(random_state)
    noise_seeds = rng.integers(2**63, size=(len(snrs), len(exams)))
    boot_seed = int(rng.integers(2**31))
    ratio = ROIRatio(parameter)
    has_truth = all(exam.ground_truth and parameter in exam.ground_truth for exam in exams)
    if has_truth:
        truth = ratio.transform([ExamMaps(exam, exam.ground_truth) for exam in exams]).ravel()
        truth_auc = auc_ci(truth, y, higher_class=higher_class, n_boot=n_boot,
                           confidence=confidence, random_state=boot_seed)
    rows = []
    with tqdm(total=len(snrs) * len(mappers), desc="noise robustness", unit="map set",
              disable=not progress) as bar:
        for snr, seeds in zip(snrs, noise_seeds, strict=True):
            degraded = [degrade_exam(exam, snr, kind=kind, random_state=int(seed))
                        for exam, seed in zip(exams, seeds, strict=True)]
            for method, mapper in mappers.items():
                maps = mapper.transform(degraded)
                row = dict(zip(("auc", "auc_low", "auc_high"), auc_ci(
                    ratio.transform(maps).ravel(), y, higher_class=higher_class,
                    n_boot=n_boot, confidence=confidence, random_state=boot_seed), strict=True))
                if has_truth:
                    row.update(map_errors(maps, error_parameters))
                    row.update(map_errors(maps, normalized_parameters, normalize_by="nawm")
                               .add_prefix("r"))
                rows.append({"snr": snr, "method": method, **row})
                bar.update()
            if has_truth:
                rows.append({"snr": snr, "method": TRUTH,
                             **dict(zip(("auc", "auc_low", "auc_high"), truth_auc, strict=True))})
    return pd.DataFrame(rows)
