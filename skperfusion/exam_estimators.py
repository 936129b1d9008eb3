"""Exam-level estimators: the paper's grading study as one scikit-learn pipeline.

``X`` is a list of :class:`~skperfusion.exam.Exam` (one sample = one
patient), so that cross-validation splits by patient::

    Pipeline([("maps", PerfusionMapper()),       # exams -> perfusion maps
              ("ratio", ROIRatio("CBF")),        # maps + ROIs -> tumour/NAWM ratio
              ("grade", CBFRatioGrader())])      # ratio -> LGG/HGG

and ``GridSearchCV(pipe, {"maps__deconvolver": [...]}, scoring="roc_auc")``
compares deconvolvers. Cohort work runs over exams with joblib (``n_jobs``),
so it runs unchanged on a cluster through joblib's dask or ray backends.

Several methods on the same exams share one exam-to-curves step:
:func:`shared_curves` computes each exam's
:class:`~skperfusion.exam.ExamCurves` once per step configuration and grid,
and :class:`PerfusionMapper` takes them in place of the exams.
"""

import time
import warnings
from dataclasses import dataclass
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from joblib import Parallel, delayed
from joblib import hash as joblib_hash
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.frozen import FrozenEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ._warnings import recorded, replayed, warn
from .deconvolution import PERFUSION_MAPS, BaseDeconvolver, OSVDDeconvolver
from .exam import GRADES, Exam, ExamAIF, ExamCurves, ExamToCurves, time_grid
from .preprocessing import DegenerateVoxelWarning

__all__ = ["ExamMaps", "PerfusionMapper", "ROIRatio", "exam_grades", "normalized_maps",
           "shared_curves"]

_ROIS = ("tumor", "nawm")


@dataclass(frozen=True)
class ExamMaps:
    """Perfusion maps of one exam, as produced by :class:`PerfusionMapper`.

    Parameters
    ----------
    exam : Exam
        The exam the maps were computed from (masks, grade, ground truth).
    maps : dict of str to ndarray of shape (X, Y, Z)
        Maps by name, e.g. ``"CBF"`` (ml/100g/min), ``"CBV"`` (ml/100g),
        ``"MTT"`` and ``"Tmax"`` (s); NaN outside the mapped voxels.
    seconds : float, default=nan
        Wall-clock time of the deconvolution of this exam's curves (the
        paper's inference time), in seconds; NaN for maps not computed here
        (e.g. ground truth).
    mask : str, default="brain"
        The exam mask whose voxels were mapped.
    aif : ExamAIF or None, default=None
        The AIF the maps were computed with (curve, arterial voxels, any
        venous scaling); None for maps not computed here.
    curve_seconds : float, default=nan
        Wall-clock time of the exam-to-curves step (AIF, conversion,
        leakage correction, resampling) of this exam, in seconds; the same
        for every method mapping the same :class:`~skperfusion.exam.ExamCurves`.
    """

    exam: Exam
    maps: dict
    seconds: float = float("nan")
    mask: str = "brain"
    aif: ExamAIF | None = None
    curve_seconds: float = float("nan")


def _check_exams(X, estimator, item_type=Exam, what="exams"):
    """Return ``X`` as a non-empty list of ``item_type``, with a clear error otherwise."""
    name = type(estimator).__name__
    types = item_type if isinstance(item_type, tuple) else (item_type,)
    expected = " or ".join(kind.__name__ for kind in types)
    if isinstance(X, types) or not hasattr(X, "__len__") or isinstance(X, np.ndarray):
        raise TypeError(f"{name} expects a list of {expected} ({what}); got "
                        f"{type(X).__name__}.")
    items = list(X)
    if not items:
        raise ValueError(f"{name} got an empty list of {what}.")
    wrong = sorted({type(item).__name__ for item in items if not isinstance(item, types)})
    if wrong:
        raise TypeError(f"{name} expects a list of {expected} ({what}); got "
                        f"elements of type {wrong}.")
    return items


def _exam_of(item):
    """The exam of an Exam or of its ExamCurves."""
    return item.exam if isinstance(item, ExamCurves) else item


def shared_curves(exams, steps, *, mask="brain", n_jobs=None, progress=None):
    """Curves of every exam under each exam-to-curves step, each distinct step run once.

    Methods compared on the same exams share their curves: steps with equal
    parameters (configuration and grid, e.g. the ``curves_`` of mappers
    fitted on the same grid) give the same list of
    :class:`~skperfusion.exam.ExamCurves`, computed once per exam.

    Parameters
    ----------
    exams : list of Exam
        The exams.
    steps : dict of str to ExamToCurves
        Exam-to-curves steps by name, e.g. the ``curves_`` of fitted
        :class:`PerfusionMapper` by method.
    mask : str, default="brain"
        Exam mask whose voxels are converted.
    n_jobs : int or None, default=None
        Exams converted in parallel (joblib).
    progress : str or None, default=None
        Description of a progress bar counting the exams converted; None
        shows none.

    Returns
    -------
    curves : dict of str to list of ExamCurves
        Per step name, the curves of every exam in order; steps with equal
        parameters share the same list.

    Examples
    --------
    >>> from skperfusion.datasets import simulate_exam
    >>> from skperfusion.exam import ExamToCurves
    >>> from skperfusion.exam_estimators import shared_curves
    >>> exams = [simulate_exam(shape=(8, 8, 1), random_state=k) for k in range(2)]
    >>> curves = shared_curves(exams, {"oSVD": ExamToCurves(), "PHAE": ExamToCurves()})
    >>> curves["oSVD"] is curves["PHAE"], len(curves["oSVD"])
    (True, 2)
    """
    computed, shared = {}, {}
    for name, step in steps.items():
        key = joblib_hash(step.get_params(deep=False))
        if key not in computed:
            jobs = replayed(Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(recorded(step.transform))(exam, mask) for exam in exams))
            computed[key] = list(tqdm(jobs, total=len(exams), desc=progress, unit="exam",
                                      disable=progress is None))
        shared[name] = computed[key]
    return shared


def exam_grades(exams):
    """Grade labels of a list of exams, the ``y`` of a grading pipeline.

    Parameters
    ----------
    exams : list of Exam or ExamCurves
        Exams with a ``grade``, or their curves.

    Returns
    -------
    grades : ndarray of str of shape (n_exams,)
        ``"LGG"`` or ``"HGG"`` per exam.

    Raises
    ------
    ValueError
        If an exam has no grade, naming the subjects.
    """
    exams = [_exam_of(item) for item in exams]
    missing = [exam.subject_id for exam in exams if exam.grade not in GRADES]
    if missing:
        raise ValueError(f"subject(s) {missing} have no grade; grading needs one of {GRADES} "
                         "per exam (the grade column of participants.tsv).")
    return np.asarray([exam.grade for exam in exams])


def _finite_mean(values):
    """Mean of the finite values; NaN when there is none."""
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else np.nan


def normalized_maps(exam_maps):
    """rCBF and rCBV: CBF and CBV divided by their mean over the NAWM mask.

    What clinicians read: relative values do not depend on the AIF's
    absolute scale (arterial partial volume, relaxivities).

    Parameters
    ----------
    exam_maps : ExamMaps
        Maps with ``"CBF"`` and ``"CBV"``.

    Returns
    -------
    maps : dict of str to ndarray of shape (X, Y, Z)
        ``{"rCBF": ..., "rCBV": ...}``, dimensionless; empty when the exam
        has no ``nawm`` mask. A map whose NAWM mean (of finite voxels) is
        not positive is all NaN, with a warning.
    """
    exam = exam_maps.exam
    if "nawm" not in exam.masks:
        return {}
    relative = {}
    for name in ("CBF", "CBV"):
        volume = exam_maps.maps[name]
        reference = _finite_mean(volume[exam.masks["nawm"]])
        if not reference > 0:
            warn(f"the NAWM mean of {name} is {reference:.4g}; r{name} is undefined (NaN).",
                 subject=exam.subject_id)
            relative[f"r{name}"] = np.full(volume.shape, np.nan)
        else:
            relative[f"r{name}"] = volume / reference
    return relative


_STATELESS_FIT_VOXELS = 256


def _is_stateless(deconvolver):
    """Whether ``fit`` learns nothing from the curves (oSVD, Tikhonov: it only validates)."""
    return (isinstance(deconvolver, BaseDeconvolver)
            and type(deconvolver)._fit_curves is BaseDeconvolver._fit_curves)


def _training_curves(item, voxels, mask, step):
    """Grid curves of the chosen voxels (row indices into ``mask``) of one exam or its curves."""
    if isinstance(item, ExamCurves):
        return item.X[voxels]
    selected = item.mask(mask)
    subset = np.zeros(selected.size, dtype=bool)
    subset[np.flatnonzero(selected)[voxels]] = True
    # Block by block: the leakage correction of 200,000 voxels at once needs GBs.
    return np.concatenate([curves.X for _, curves in
                           step.transform_chunks(item, subset.reshape(selected.shape))])


def _check_curves(items, tr, n_times, mask):
    """Refuse curves that are not on the mapper's grid or not of the mapper's mask."""
    for curves in items:
        if not isinstance(curves, ExamCurves):
            continue
        exam = curves.exam
        if not (np.isclose(curves.tr, tr) and curves.n_times == n_times):
            raise ValueError(f"subject {exam.subject_id}: curves on a grid of {curves.n_times} "
                             f"frames x {curves.tr:.4g} s; the mapper's is {n_times} x "
                             f"{tr:.4g} s (compute them with the fitted mapper's curves_).")
        if not np.array_equal(curves.voxels, exam.mask(mask)):
            raise ValueError(f"subject {exam.subject_id}: the curves are not those of the "
                             f"{mask!r} mask the mapper maps.")


def _map_exam(deconvolver, item, mask, step, names):
    """Maps of one exam (or of its precomputed curves), the AIF and the seconds spent.

    An exam goes through the exam-to-curves step and the deconvolver a block
    at a time (:meth:`~skperfusion.exam.ExamToCurves.transform_chunks`), so
    that peak memory is that of a block of curves, not of the exam's.
    Conversion and deconvolution are timed apart.
    """
    values = np.full((int(_exam_of(item).mask(mask).sum()), len(names)), np.nan)
    k2, deconvolution, conversion = None, 0.0, 0.0
    if isinstance(item, ExamCurves):
        blocks = [(slice(None), item)]
    elif hasattr(step, "transform_chunks"):
        blocks = step.transform_chunks(item, mask)
    else:
        blocks = [(slice(None), step.transform(item, mask))]
    for rows, curves in blocks:
        conversion += curves.seconds
        start = time.perf_counter()
        # Degenerate voxels have NaN curves: their maps are NaN, the others computed.
        finite = np.isfinite(curves.X).all(axis=(1, 2))
        if finite.all():
            values[rows] = deconvolver.transform(curves.X)
        elif finite.any():
            block = values[rows]
            block[finite] = deconvolver.transform(curves.X[finite])
        deconvolution += time.perf_counter() - start
        if curves.k2 is not None:
            k2 = np.full(len(values), np.nan) if k2 is None else k2
            k2[rows] = curves.k2
    volume = curves.to_volume(values)
    maps = {name: volume[..., k] for k, name in enumerate(names)}
    if k2 is not None:
        maps["K2"] = curves.to_volume(k2)
    return ExamMaps(_exam_of(item), maps, deconvolution, mask, curves.aif, conversion)


def _warn_padded(items, tr, n_times):
    """Warn for each exam that ends before the grid does (its curves are zero-padded).

    Zeros past the last frame stand for a tail the exam did not acquire: with
    a grid much longer than the exam (a model trained on 60 frames x 1.5 s
    mapping a 20-frame exam) CBF came out 83.6 instead of oSVD's 32.1.
    """
    grid = (n_times - 1) * tr
    for exam in items:
        if not isinstance(exam, Exam):
            continue
        frames = exam.n_times - exam.n_skip
        span = (frames - 1) * exam.tr
        if grid > span + tr:  # more than one grid point past the last frame
            warn(f"the mapping grid ({n_times} frames x {tr:.3g} s, {grid:.3g} s) is longer "
                 f"than the exam ({frames} frames x {exam.tr:.3g} s, {span:.3g} s); the "
                 f"{n_times - 1 - int(np.floor(span / tr + 1e-6))} grid points past its end "
                 "are zero, which "
                 "biases the maps. Use a model trained on this protocol's grid (skperfusion "
                 f"train --tr {exam.tr:g} --n-times {frames}) or a method that takes the "
                 "exam's own grid (oSVD, Tikhonov).", UserWarning, subject=exam.subject_id)


class PerfusionMapper(TransformerMixin, BaseEstimator):
    """Perfusion maps of whole exams with any voxel-level deconvolver.

    ``fit`` trains a clone of ``deconvolver`` on the training exams' voxels
    (a validation only for the stateless oSVD and Tikhonov; the
    self-supervised training of the PHAE), ``transform`` maps every exam.

    Every exam goes through one exam-to-curves step,
    :class:`~skperfusion.exam.ExamToCurves` (``curves``: AIF, AIF scaling,
    signal to concentration for one or several echoes, leakage correction,
    resampling). One deconvolver works on one time grid: every exam's
    curves are put on the grid chosen in ``fit`` (linear interpolation, an
    identity for exams already on it), so that multi-protocol cohorts (and
    the simulator's) can be pooled and every method sees the same curves.

    ``fit`` and ``transform`` take exams, or their curves computed once
    and shared by several mappers (:class:`~skperfusion.exam.ExamCurves`
    from ``curves_.transform(exam, mask)`` or :func:`shared_curves`): these
    are mapped as they are, so they must be on the mapper's grid and of its
    ``mask``.

    Parameters
    ----------
    deconvolver : estimator or None, default=None
        Voxel-level deconvolver (``fit``/``transform`` on curves ``X`` of
        shape ``(n, 2, T)``, see :func:`skperfusion.pair_curves`); None uses
        ``OSVDDeconvolver()``. Its ``tr`` is set to the grid's. A
        :class:`sklearn.frozen.FrozenEstimator` (e.g. a loaded, trained
        PHAE) is used as it is: ``fit`` then only sets the grid, which must
        be the one it was trained on (give ``tr`` and ``n_times``).
    curves : ExamToCurves or None, default=None
        The exam-to-curves step (its parameters ``aif``, ``aif_scaling``,
        ``leakage`` choose the AIF and corrections); None uses
        ``ExamToCurves()`` (the ``aif`` mask, no scaling, no leakage
        correction). Its grid (``tr``, ``n_times``) is replaced by the
        mapper's.
    tr : float or None, default=None
        Sampling interval of the grid in seconds; None takes the smallest
        TR of the training exams (their TR when they share one).
    n_times : int or None, default=None
        Frames of the grid; None takes the most frames that every training
        exam covers after its non-steady-state frames (their frame count
        when they share TR and length), or the grid of the training curves.
        Shorter exams are zero beyond their end
        (:func:`~skperfusion.exam.resample_curves`), with a warning at
        ``transform`` when that is more than one grid point.
    mask : str, default="brain"
        Exam mask whose voxels are mapped (and used for training).
    max_train_voxels : int or None, default=200_000
        Voxels drawn uniformly at random from the pooled training exams to
        train the deconvolver (bounds memory and CPU time; the PHAE of the
        paper saw every voxel of 39 patients). None uses all of them. A
        deconvolver whose ``fit`` learns from a sample of its curves
        (``max_fit_samples``, :class:`~skperfusion.deconvolution.ParametricDeconvolver`)
        gets at most that many, drawn with its own ``random_state``, the
        sample its ``fit`` would draw from all of them.
    n_jobs : int or None, default=None
        Exams processed in parallel with joblib (``None`` = 1 unless in a
        :func:`joblib.parallel_config` context).
    random_state : int, RandomState instance or None, default=None
        Seed of the training-voxel draw.

    Attributes
    ----------
    deconvolver_ : estimator
        The fitted clone of ``deconvolver`` (``deconvolver`` itself when frozen).
    curves_ : ExamToCurves
        The exam-to-curves step on the mapper's grid.
    tr_ : float
        Sampling interval of the grid, in seconds.
    n_times_ : int
        Frames of the grid.
    n_train_voxels_ : int
        Voxels the deconvolver was trained on (0 when frozen; at most 256 for
        a stateless one such as oSVD or Tikhonov, whose ``fit`` only validates).
    feature_names_out_ : ndarray of str
        Names of the maps, from the deconvolver.

    See Also
    --------
    ROIRatio : Tumour/NAWM ratio of a map, the next pipeline step.

    Notes
    -----
    ``transform`` returns a list of :class:`ExamMaps` (per-exam volumes),
    not a table; ``set_output`` is accepted for the sake of
    :meth:`sklearn.pipeline.Pipeline.set_output` and does not change it.
    The time reported per exam is split: ``ExamMaps.seconds`` is the
    deconvolution (the paper's inference time), ``ExamMaps.curve_seconds``
    the exam-to-curves step (shared by the methods mapping the same curves).

    Examples
    --------
    >>> from sklearn.pipeline import Pipeline
    >>> from skperfusion import CBFRatioGrader
    >>> from skperfusion.exam_estimators import PerfusionMapper, ROIRatio
    >>> pipe = Pipeline([("maps", PerfusionMapper()), ("ratio", ROIRatio()),
    ...                  ("grade", CBFRatioGrader(higher_class="HGG"))])
    >>> sorted(pipe.get_params())[:3]
    ['grade', 'grade__feature', 'grade__higher_class']
    """

    _parameter_constraints: ClassVar[dict] = {
        "deconvolver": [None, HasMethods(["fit", "transform"])],
        "tr": [None, Interval(Real, 0, None, closed="neither")],
        "n_times": [None, Interval(Integral, 2, None, closed="left")],
        "curves": [None, HasMethods(["transform", "set_params"])],
        "mask": [str],
        "max_train_voxels": [None, Interval(Integral, 1, None, closed="left")],
        "n_jobs": [None, Integral],
        "random_state": ["random_state"],
    }

    def __init__(self, deconvolver=None, *, curves=None, tr=None, n_times=None,
                 mask="brain", max_train_voxels=200_000, n_jobs=None, random_state=None):
        self.deconvolver = deconvolver
        self.curves = curves
        self.tr = tr
        self.n_times = n_times
        self.mask = mask
        self.max_train_voxels = max_train_voxels
        self.n_jobs = n_jobs
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Train the deconvolver on voxels drawn from the training exams.

        Degenerate voxels (a non-positive signal, hence NaN curves) are left
        out of the training, without a warning; mapping an exam warns about
        them.

        Parameters
        ----------
        X : list of Exam or ExamCurves
            Training exams, or their curves on the mapper's grid.
        y : array_like or None, default=None
            Ignored (grades are not needed to compute maps).

        Returns
        -------
        self : object
            Fitted mapper.
        """
        items = _check_exams(X, self, (Exam, ExamCurves), "exams or their curves")
        frozen = isinstance(self.deconvolver, FrozenEstimator)
        given = next(((item.tr, item.n_times) for item in items
                      if isinstance(item, ExamCurves)), None)
        if frozen:
            tr, n_times = float(self.deconvolver.tr), int(self.deconvolver.n_times_)
        elif given is not None:
            tr, n_times = given
        else:
            tr, n_times = time_grid(items, self.tr)
        self.tr_ = tr if self.tr is None else float(self.tr)
        self.n_times_ = n_times if self.n_times is None else int(self.n_times)
        _check_curves(items, self.tr_, self.n_times_, self.mask)
        self.curves_ = clone(self.curves if self.curves is not None else ExamToCurves())
        self.curves_.set_params(tr=self.tr_, n_times=self.n_times_)
        if frozen:
            self.deconvolver_ = self.deconvolver
            self.n_train_voxels_ = 0
        else:
            self.deconvolver_, self.n_train_voxels_ = self._train(items)
        self.feature_names_out_ = np.asarray(self.deconvolver_.get_feature_names_out(),
                                             dtype=object)
        return self

    def _train(self, items):
        """Fit a clone of the deconvolver on voxels drawn from the exams (or their curves)."""
        deconvolver = OSVDDeconvolver() if self.deconvolver is None else clone(self.deconvolver)
        counts = np.array([int(_exam_of(item).mask(self.mask).sum()) for item in items])
        total = int(counts.sum())
        n_draw = total if self.max_train_voxels is None else min(self.max_train_voxels, total)
        random_state = self.random_state
        if _is_stateless(deconvolver):
            # Its fit only validates the curves: converting a few voxels is enough
            # (converting 200,000 cost a quarter of `skperfusion maps` with oSVD).
            n_draw = min(n_draw, _STATELESS_FIT_VOXELS)
        elif getattr(deconvolver, "max_fit_samples", None) is not None:
            # Its fit learns from that many curves, drawn with its random_state:
            # the same draw here converts only those (the parametric fit's).
            if n_draw > deconvolver.max_fit_samples:
                n_draw, random_state = deconvolver.max_fit_samples, deconvolver.random_state
        drawn = np.sort(check_random_state(random_state).choice(total, n_draw, replace=False))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        per_exam = [voxels - start for voxels, start in
                    zip(np.split(drawn, np.searchsorted(drawn, starts[1:])), starts, strict=True)]
        with warnings.catch_warnings():
            # Degenerate voxels (NaN curves) are left out of the training; the maps
            # of an exam warn about them.
            warnings.simplefilter("ignore", DegenerateVoxelWarning)
            curves = np.concatenate(Parallel(n_jobs=self.n_jobs)(
                delayed(_training_curves)(item, voxels, self.mask, self.curves_)
                for item, voxels in zip(items, per_exam, strict=True) if voxels.size
            ))
        curves = curves[np.isfinite(curves).all(axis=(1, 2))]
        if "tr" in deconvolver.get_params():
            deconvolver.set_params(tr=self.tr_)
        return deconvolver.fit(curves), len(curves)

    def transform(self, X):
        """Compute the perfusion maps of every exam.

        Parameters
        ----------
        X : list of Exam or ExamCurves
            Exams to map, or their curves on the mapper's grid (mapped as
            they are, without converting the exams again).

        Returns
        -------
        maps : list of ExamMaps
            One per exam, in order; volumes NaN outside ``mask``.
        """
        check_is_fitted(self)
        items = _check_exams(X, self, (Exam, ExamCurves), "exams or their curves")
        _check_curves(items, self.tr_, self.n_times_, self.mask)
        _warn_padded(items, self.tr_, self.n_times_)
        return list(replayed(Parallel(n_jobs=self.n_jobs)(
            delayed(recorded(_map_exam))(self.deconvolver_, item, self.mask, self.curves_,
                                         self.feature_names_out_)
            for item in items
        )))

    def set_output(self, *, transform=None):
        """Accept an output configuration; maps are volumes, not tables.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"} or None, default=None
            Ignored: the per-exam maps have no tabular form. Present so that
            ``Pipeline.set_output`` configures the steps that produce tables.

        Returns
        -------
        self : object
            The mapper, unchanged.
        """
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.target_tags.required = False
        return tags


class ROIRatio(TransformerMixin, BaseEstimator):
    """Tumour/NAWM ratio of a perfusion map, one number per exam.

    The mean of the map over the ``tumor`` mask divided by its mean over the
    contralateral normal-appearing white matter ``nawm`` mask (Fayolle et
    al. 2025, §2.3); voxels with NaN values (outside the mapped mask,
    failed fits) are left out of the means.

    Parameters
    ----------
    parameter : {"CBF", "CBV", "MTT", "Tmax"}, default="CBF"
        The map whose ratio is taken.

    See Also
    --------
    PerfusionMapper : Produces the maps.
    skperfusion.CBFRatioGrader : Grades from the ratio.

    Notes
    -----
    Stateless: ``fit`` only validates the parameter. The output is
    dimensionless, one column named ``"<parameter>_ratio"`` (a DataFrame
    column under ``set_output(transform="pandas")``).

    Examples
    --------
    >>> from skperfusion.exam_estimators import ROIRatio
    >>> ROIRatio("CBV").get_feature_names_out().tolist()
    ['CBV_ratio']
    """

    _parameter_constraints: ClassVar[dict] = {"parameter": [StrOptions(set(PERFUSION_MAPS))]}

    def __init__(self, parameter="CBF"):
        self.parameter = parameter

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate the parameter and the input; nothing is learned.

        Parameters
        ----------
        X : list of ExamMaps
            Maps of the training exams.
        y : array_like or None, default=None
            Ignored.

        Returns
        -------
        self : object
            The transformer.
        """
        _check_exams(X, self, ExamMaps, "exam maps, from PerfusionMapper")
        return self

    def transform(self, X):
        """Tumour/NAWM ratio of ``parameter`` for each exam.

        Parameters
        ----------
        X : list of ExamMaps
            Maps with the exams' ``tumor`` and ``nawm`` masks.

        Returns
        -------
        ratios : ndarray of shape (n_exams, 1)
            Dimensionless ratios.

        Raises
        ------
        ValueError
            Naming the subjects, if an exam lacks a ROI or the map, or a ratio
            is not a finite positive-denominator number (a ROI with no valid
            voxel, a non-positive NAWM mean).
        """
        items = _check_exams(X, self, ExamMaps, "exam maps, from PerfusionMapper")
        missing = [item.exam.subject_id for item in items
                   if any(roi not in item.exam.masks for roi in _ROIS)]
        if missing:
            raise ValueError(f"subject(s) {missing} lack a tumor or nawm mask; the "
                             f"{self.parameter} ratio needs both ROIs.")
        no_map = [item.exam.subject_id for item in items if self.parameter not in item.maps]
        if no_map:
            raise ValueError(f"subject(s) {no_map} have no {self.parameter} map.")
        means = np.array([[_finite_mean(item.maps[self.parameter][item.exam.masks[roi]])
                           for roi in _ROIS] for item in items])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = means[:, 0] / means[:, 1]
        bad = ~np.isfinite(ratios) | ~(means[:, 1] > 0)
        if bad.any():
            detail = {items[i].exam.subject_id: f"tumor mean {means[i, 0]:.4g}, nawm mean "
                      f"{means[i, 1]:.4g}" for i in np.flatnonzero(bad)}
            raise ValueError(f"Undefined {self.parameter} ratio (NaN, or a non-positive NAWM "
                             f"mean) for subject(s) {detail}.")
        return ratios[:, None]

    def get_feature_names_out(self, input_features=None):
        """Name of the output column.

        Parameters
        ----------
        input_features : array_like of str or None, default=None
            Ignored.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``["<parameter>_ratio"]``.
        """
        return np.asarray([f"{self.parameter}_ratio"], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        tags.target_tags.required = False
        return tags
