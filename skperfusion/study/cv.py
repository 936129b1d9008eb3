"""Cross-validated grading: out-of-sample cut-offs, sensitivity and specificity.

The paper's Table 1 chooses the Youden cut-off on the test patients
themselves, so its sensitivity, specificity and accuracy are apparent. Here
the exam-level pipeline (:class:`~skperfusion.exam_estimators.PerfusionMapper`
→ :class:`~skperfusion.exam_estimators.ROIRatio` →
:class:`~skperfusion.grading.CBFRatioGrader`) is fitted on the training folds
of a repeated stratified K-fold over patients and evaluated on the held-out
fold: the deconvolver is trained, and the cut-off chosen, without the test
fold's exams or labels.

A deconvolver that learns nothing from the training exams (oSVD, Tikhonov)
gives the same maps whatever the fold, so its maps are computed once and
only ``ROIRatio → CBFRatioGrader`` is refitted per fold; a trainable one (the
PHAE) is retrained on every training fold.
"""

from itertools import islice

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.pipeline import Pipeline
from tqdm.auto import tqdm

from .._warnings import recorded, replayed
from ..exam_estimators import ROIRatio, exam_grades
from ..grading import CBFRatioGrader

__all__ = ["cross_validated_grading", "summarize_cv"]


_BATCHES = 8
"""Batches of exams each fixed method's cross-validation maps are computed in."""


def _grading_steps(parameter, higher_class):
    return [("ratio", ROIRatio(parameter)), ("grade", CBFRatioGrader(higher_class=higher_class))]


def _fold(method, pipeline, X, y, train, test, higher_class):
    """Fit ``pipeline`` on the training fold; ratios, predictions and metrics on the test fold."""
    pipeline.fit([X[i] for i in train], y[train])
    held_out = [X[i] for i in test]
    ratios = pipeline[:-1].transform(held_out).ravel()
    predicted = pipeline[-1].predict(ratios[:, None])
    is_high = y[test] == higher_class
    auc = roc_auc_score(is_high, ratios) if 0 < is_high.sum() < is_high.size else np.nan
    return {"method": method, "auc": auc, "cutoff": pipeline[-1].cutoff_,
            "n_test": len(test), "test": np.asarray(test), "ratio": ratios,
            "predicted": predicted}


def cross_validated_grading(exams, mappers, *, trainable=(), n_splits=5, n_repeats=5,
                            trainable_repeats=None, cv=None, parameter="CBF",
                            higher_class="HGG", random_state=None, n_jobs=None,
                            progress=False):
    """Grade every method by repeated stratified K-fold cross-validation over patients.

    Parameters
    ----------
    exams : list of Exam or ExamCurves
        The whole cohort, with grades and ``tumor``/``nawm`` masks, or its
        curves (computed once, shared by every method and fold).
    mappers : dict of str to PerfusionMapper
        Unfitted mappers by method name. Give them a fixed grid (``tr`` and
        ``n_times``) so that every fold maps on the same time grid (that of
        the curves, when curves are given).
    trainable : collection of str, default=()
        Methods whose deconvolver learns from the training exams: retrained
        on every training fold. The others are mapped once (fitting them is
        a validation only).
    n_splits : int, default=5
        Folds per repeat.
    n_repeats : int, default=5
        Repeats of the K-fold with different partitions.
    trainable_repeats : int or None, default=None
        Repeats run for the trainable methods (the first ones of the same
        partitions); None runs all ``n_repeats``. Each costs ``n_splits``
        trainings.
    cv : iterable of (train, test) index arrays or None, default=None
        Explicit folds, grouped into repeats of ``n_splits`` consecutive
        folds; None uses :class:`~sklearn.model_selection.RepeatedStratifiedKFold`
        stratified by grade.
    parameter : str, default="CBF"
        Map whose tumour/NAWM ratio grades the patients.
    higher_class : str, default="HGG"
        Grade above the cut-off.
    random_state : int or None, default=None
        Seed of the partitions.
    n_jobs : int or None, default=None
        Workers (joblib) of the trainable methods' folds and, in the same
        pool, of the other methods' maps; the results do not depend on it.
    progress : bool, default=False
        Show a progress bar counting the folds of the trainable methods.

    Returns
    -------
    folds : pandas.DataFrame
        One row per method and fold: ``method``, ``repeat``, ``fold``,
        ``n_test``, ``auc`` on the test fold (NaN when it holds one grade),
        the training folds' Youden ``cutoff``, and per test patient (lists)
        ``test`` (indices into ``exams``), ``ratio`` and ``predicted``.
    """
    y = exam_grades(exams)
    if cv is None:
        cv = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats,
                                     random_state=random_state).split(np.zeros(len(y)), y)
    splits = [(np.asarray(train), np.asarray(test)) for train, test in cv]
    n_trainable = len(splits) if trainable_repeats is None else trainable_repeats * n_splits
    folds = [(method, k) for method in mappers if method in trainable
             for k in range(min(n_trainable, len(splits)))]
    # The fixed methods are fitted here (a validation, or a fit on the whole cohort); their
    # maps, a batch of exams at a time, go in the same pool as the trainings, after them,
    # so that a worker left without a fold (5 folds on 2 workers) maps meanwhile.
    fixed = {method: clone(mapper).fit(exams) for method, mapper in mappers.items()
             if method not in trainable}
    batches = [(method, batch) for method in fixed
               for batch in np.array_split(np.arange(len(exams)), min(len(exams), _BATCHES))]
    tasks = [delayed(recorded(_fold))(method, Pipeline([
        ("maps", clone(mappers[method])), *_grading_steps(parameter, higher_class)]),
        exams, y, *splits[k], higher_class) for method, k in folds]
    tasks += [delayed(recorded(fixed[method].transform))([exams[i] for i in batch])
              for method, batch in batches]
    results = replayed(Parallel(n_jobs=n_jobs, return_as="generator")(tasks))
    rows = []
    for (_, k), row in tqdm(zip(folds, islice(results, len(folds)), strict=True),
                            total=len(folds), desc="cross-validation, trainable methods",
                            unit="fold", disable=not progress or not folds):
        rows.append(row | {"index": k})
    maps = {method: [] for method in fixed}
    for (method, _), exam_maps in zip(batches, results, strict=True):
        maps[method] += exam_maps
    rows = [_fold(method, Pipeline(_grading_steps(parameter, higher_class)), maps[method], y,
                  train, test, higher_class) | {"index": k}
            for method in fixed for k, (train, test) in enumerate(splits)] + rows
    folds = pd.DataFrame(rows)
    index = folds.pop("index")
    folds.insert(1, "repeat", index // n_splits)
    folds.insert(2, "fold", index % n_splits)
    return folds


def summarize_cv(folds, y, *, higher_class="HGG", confidence=0.95):
    """Cross-validated Table 1: per method, metrics over the repeats.

    Per repeat, the AUC is the mean of the test folds' AUCs, and
    sensitivity, specificity and accuracy are those of the pooled
    out-of-fold predictions (each patient graded once, by the cut-off of the
    folds that did not contain it).

    Parameters
    ----------
    folds : pandas.DataFrame
        Output of :func:`cross_validated_grading`.
    y : array_like of shape (n_patients,)
        Grades of the cohort, indexed as ``folds["test"]``.
    higher_class : str, default="HGG"
        The positive grade.
    confidence : float, default=0.95
        Coverage of the interval over repeats.

    Returns
    -------
    table : pandas.DataFrame
        Indexed by method: ``n_repeats``; ``auc``, ``sensitivity``,
        ``specificity``, ``accuracy`` (means over repeats) each with
        ``_low``/``_high``, the percentile interval of the per-repeat values
        (the spread due to the partition into folds, not a confidence
        interval over patients); ``cutoff`` (mean over folds) with
        ``cutoff_min`` and ``cutoff_max``.
    """
    y = np.asarray(y)
    alpha = (1 - confidence) / 2
    rows = {}
    for method, runs in folds.groupby("method", sort=False):
        per_repeat = []
        for _, run in runs.groupby("repeat"):
            test = np.concatenate(run["test"].to_list())
            truth = y[test] == higher_class
            called = np.concatenate(run["predicted"].to_list()) == higher_class
            per_repeat.append({"auc": np.nanmean(run["auc"].to_numpy(dtype=float)),
                               "sensitivity": called[truth].mean(),
                               "specificity": (~called[~truth]).mean(),
                               "accuracy": (called == truth).mean()})
        per_repeat = pd.DataFrame(per_repeat)
        row = {"n_repeats": len(per_repeat)}
        for name in per_repeat:
            row[name] = per_repeat[name].mean()
            row[f"{name}_low"], row[f"{name}_high"] = per_repeat[name].quantile(
                [alpha, 1 - alpha]).to_numpy()
        row.update(cutoff=runs["cutoff"].mean(), cutoff_min=runs["cutoff"].min(),
                   cutoff_max=runs["cutoff"].max())
        rows[method] = row
    table = pd.DataFrame(rows).T
    table.index.name = "method"
    return table
