"""From exam to curves: the one step shared by maps, training and the study.

:class:`ExamToCurves` applies named stages, each with one policy, in order:

========================  ==============================================================
stage                     function
========================  ==============================================================
AIF                       ``_aif_stage``: the ``aif`` mask or automatic selection
                          (``aif``), venous-output scaling (``aif_scaling``); returns
                          the :class:`ExamAIF`
degenerate voxels         ``_degenerate_voxels``: a non-positive kept signal sample
                          (no logarithm); their curves are NaN
conversion                ``_convert``: signal to ``ΔR2*`` (one echo: eq. 1; several:
                          ``ΔR2*`` that cancels T1 effects), then relaxivity
                          (``relaxivity``: 1/s kept, or concentrations in mM)
leakage                   ``_leakage_stage``: corrected curves, ``K2`` and ``kep`` in
                          one call (``leakage``)
resampling                ``_resample_stage``: onto the grid of :func:`time_grid`
========================  ==============================================================

Its result, :class:`ExamCurves`, carries the voxel matrix ``X`` of shape
``(n_voxels, 2, n_times)`` that every deconvolver takes, computed once per
exam and shared by every method (``PerfusionMapper`` takes it in place of the
exam); :meth:`ExamToCurves.transform_chunks` gives the same curves a block of
voxels at a time (bounded memory).
"""

import os
import time
import warnings
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions, validate_params

from .._options import AIF_SCALINGS, AIF_STRATEGIES, LEAKAGE_METHODS, RELAXIVITY_MODELS
from .._warnings import warn
from ..aif import read_aif_table, select_aif, select_venous_voxels, vof_scale, voxel_concentrations
from ..physics.relaxivity import blood_concentration, tissue_concentration
from ..preprocessing import (
    ConcentrationTransformer,
    DegenerateVoxelWarning,
    MultiEchoTransformer,
)
from .model import scatter_values

__all__ = ["ExamAIF", "ExamCurves", "ExamToCurves", "resample_curves", "time_grid"]

CHUNK_VOXELS = 32_768
"""Voxels converted at a time by :meth:`ExamToCurves.transform_chunks`
(``2 · 32,768 · T`` values per block: 31 MB in float32 at 120 frames)."""


@validate_params(
    {"X": ["array-like"], "tr": [Interval(Real, 0, None, closed="neither")],
     "new_tr": [Interval(Real, 0, None, closed="neither")],
     "n_times": [Interval(Integral, 1, None, closed="left")]},
    prefer_skip_nested_validation=True,
)
def resample_curves(X, tr, new_tr, n_times):
    """Linearly resample curves onto another uniform time grid.

    Times past the last acquired sample are zero, so a shorter series can be
    put on a longer grid (a longer one is cut). Zero, rather than holding
    the last value, keeps the areas ``∫C`` and ``∫Ca`` of the acquired window
    and hence CBV (eq. 2) unchanged up to the last half interval, and is the
    zero padding the block-circulant deconvolution applies anyway; holding
    would stretch the post-bolus plateau, noise included, into extra area.

    Parameters
    ----------
    X : array_like of shape (..., n_frames)
        Curves sampled at ``t_i = i · tr``.
    tr : float
        Current sampling interval in seconds (> 0).
    new_tr : float
        New sampling interval in seconds (> 0).
    n_times : int
        Number of output samples, at ``t_k = k · new_tr``.

    Returns
    -------
    resampled : ndarray of shape (..., n_times)
        Same dtype as ``X`` when floating.
    """
    X = np.asarray(X)
    position = np.arange(int(n_times)) * (new_tr / tr)
    acquired = position <= X.shape[-1] - 1
    position = np.where(acquired, position, 0.0)
    lower = np.floor(position).astype(int)
    upper = np.minimum(lower + 1, X.shape[-1] - 1)
    weight = (position - lower).astype(X.dtype if X.dtype.kind == "f" else float)
    return np.where(acquired, X[..., lower] * (1 - weight) + X[..., upper] * weight, 0)


def time_grid(exams, tr=None):
    """The time grid that every exam covers after its non-steady-state frames.

    Parameters
    ----------
    exams : sequence of Exam
        The exams (one for an exam's own grid).
    tr : float or None, default=None
        Sampling interval of the grid in seconds; None takes the smallest TR
        of the exams.

    Returns
    -------
    tr : float
        Sampling interval in seconds.
    n_times : int
        Frames ``t_k = k · tr`` that fit in the shortest kept acquisition,
        ``(n_times - n_skip - 1) · TR`` seconds.

    Examples
    --------
    >>> from skperfusion.datasets import simulate_exam
    >>> from skperfusion.exam import time_grid
    >>> exam = simulate_exam(shape=(8, 8, 1), random_state=0)
    >>> time_grid([exam]) == (exam.tr, exam.n_times - exam.n_skip)
    True
    """
    tr = min(exam.tr for exam in exams) if tr is None else float(tr)
    duration = min((exam.n_times - exam.n_skip - 1) * exam.tr for exam in exams)
    # The tolerance keeps rounding from dropping the last frame of an exact fit.
    return tr, int(np.floor(duration / tr + 1e-6)) + 1


@dataclass(frozen=True)
class ExamAIF:
    """The arterial input function an exam was processed with.

    Parameters
    ----------
    curve : ndarray of shape (n_times,)
        AIF on the output grid (after any scaling), in ``unit``.
    tr : float
        Sampling interval of ``curve`` in seconds; ``curve[k]`` is at
        ``k · tr`` after the first kept frame.
    voxels : ndarray of bool, shape (X, Y, Z)
        The arterial voxels whose mean signal is the AIF.
    candidates : ndarray of bool, shape (X, Y, Z) or None, default=None
        Candidate voxels of an automatic selection (None for a mask).
    candidate_curves : ndarray of shape (n_candidates, n_times) or None, default=None
        Curves of the candidates on the grid of ``curve``, in ``unit``.
    scale : float, default=1.0
        Factor the AIF was multiplied by (venous-output scaling), dimensionless.
    venous_voxels : ndarray of bool, shape (X, Y, Z) or None, default=None
        The voxels of the venous output function, with ``aif_scaling="vof"``.
    unit : {"1/s", "mM"}, default="1/s"
        Unit of ``curve``: ``ΔR2*`` in 1/s, or blood concentration in mM
        with ``relaxivity="van_osch"``.
    quality : AIFQuality or None, default=None
        Plausibility figures of an automatic selection
        (:class:`skperfusion.aif.AIFQuality`: voxels, peak over the tissue's,
        arrival before the tissue, saturated and recovered voxels, score).
    saturated_samples : ndarray of bool, shape (n_frames,) or None, default=None
        Kept frames of the exam at which a chosen arterial voxel saturated
        (automatic selection), whose first pass was recovered.
    source : str, default="mask"
        ``"mask"``, ``"auto"`` or the path of the AIF table the curve was read from.
    """

    curve: np.ndarray = field(repr=False)
    tr: float
    voxels: np.ndarray = field(repr=False)
    candidates: np.ndarray | None = field(default=None, repr=False)
    candidate_curves: np.ndarray | None = field(default=None, repr=False)
    scale: float = 1.0
    venous_voxels: np.ndarray | None = field(default=None, repr=False)
    unit: str = "1/s"
    quality: object = None
    saturated_samples: np.ndarray | None = field(default=None, repr=False)
    source: str = "mask"

    @property
    def times(self):
        """Sample times of ``curve`` in seconds, ``k · tr``."""
        return np.arange(self.curve.size) * self.tr


@dataclass(frozen=True)
class ExamCurves:
    """Curves of one exam on one time grid, the result of :meth:`ExamToCurves.transform`.

    Computed once per exam, exam-to-curves configuration and grid, and
    shared by every method: :class:`~skperfusion.exam_estimators.PerfusionMapper`
    takes a list of them in place of the exams.

    Parameters
    ----------
    X : ndarray of shape (n_voxels, 2, n_times)
        Tissue (channel 0) and AIF (channel 1) curves, ``ΔR2*`` in 1/s or,
        with ``relaxivity="van_osch"``, concentrations in mM; voxels in C
        order of ``voxels``; the dtype of the exam's signal (float32 stays
        float32). NaN rows for degenerate voxels.
    voxels : ndarray of bool, shape (X, Y, Z)
        The voxels of ``X``.
    aif : ExamAIF
        The AIF and the arterial voxels it came from.
    k2 : ndarray of shape (n_voxels,) or None, default=None
        Leakage rate constant ``K2`` (1/s) per voxel, when leakage was corrected.
    kep : ndarray of shape (n_voxels,) or None, default=None
        Efflux rate constant ``kep`` (1/s) per voxel, with
        ``leakage="bidirectional"``.
    exam : Exam or None, default=None
        The exam the curves come from (its masks, grade and ground truth).
    seconds : float, default=nan
        Wall-clock time of the exam-to-curves step (AIF, conversion,
        leakage, resampling), in seconds.
    qc : dict, default={}
        Quality-control diagnostics of the step, by name.
    """

    X: np.ndarray = field(repr=False)
    voxels: np.ndarray = field(repr=False)
    aif: ExamAIF
    k2: np.ndarray | None = field(default=None, repr=False)
    kep: np.ndarray | None = field(default=None, repr=False)
    exam: object = field(default=None, repr=False)
    seconds: float = float("nan")
    qc: dict = field(default_factory=dict, repr=False)

    @property
    def tr(self):
        """Sampling interval of the curves in seconds."""
        return self.aif.tr

    @property
    def n_times(self):
        """Frames of the curves' grid."""
        return self.X.shape[-1]

    def to_volume(self, values):
        """Scatter one value (or ``k`` values) per voxel back into the image grid.

        The inverse of the voxel selection: row ``i`` of ``values`` goes to
        the ``i``-th voxel of ``voxels`` in C order.

        Parameters
        ----------
        values : array_like of shape (n_voxels,) or (n_voxels, k)
            Values per voxel of ``voxels``, e.g. a deconvolver's maps of ``X``.

        Returns
        -------
        volume : ndarray of shape (X, Y, Z) or (X, Y, Z, k)
            Float volume, NaN outside ``voxels``.
        """
        return scatter_values(values, self.voxels, getattr(self.exam, "subject_id", "exam"))


class ExamToCurves(BaseEstimator):
    """One exam to the voxel curves ``X`` every deconvolver takes.

    Steps, in order:

    1. **AIF voxels**: the exam's ``aif`` mask (``aif="mask"``), or
       automatic selection of arterial voxels (``aif="auto"``).
    2. **Signal to ΔR2*** of the tissue voxels and the mean arterial
       signal, with ``transformer`` or, by default, the conversion chosen
       from the exam: :class:`~skperfusion.preprocessing.ConcentrationTransformer`
       (``-ln(S/S0)/TE``, eq. 1) for one echo,
       :class:`~skperfusion.preprocessing.MultiEchoTransformer`
       (``ΔR2*`` free of T1 effects) for several.
    3. **Relaxivity** (``relaxivity``): ``ΔR2*`` kept (relative
       concentrations, 1/s), or converted to concentrations in mM, tissue
       with the linear and AIF/VOF with the quadratic blood relaxivity.
    4. **AIF scaling** (``aif_scaling``), then **leakage correction**
       (``leakage``) of the concentration curves.
    5. **Resampling** onto ``t_k = k · tr``, ``k < n_times`` with
       :func:`resample_curves`, when a grid is given.

    The curves keep the floating dtype of the exam's signal (float32 exams
    give float32 curves).

    Parameters
    ----------
    aif : {"mask", "auto"} or path-like, default="mask"
        Where the AIF comes from: the mean signal of the exam's ``aif``
        mask; automatic selection among the brain voxels
        (:func:`skperfusion.aif.select_aif`, Mouridsen et al. 2006, on the
        longest echo), whose saturated arteries have their first pass
        recovered, the AIF then being their mean recovered curve; or a
        table of the AIF curve (:func:`skperfusion.aif.read_aif_table`:
        ``time_s`` from the first kept frame and ``concentration`` in the
        unit of the curves, e.g. an ``aif.tsv`` written before), read
        onto the exam's frames.
    aif_scaling : {"none", "vof"}, default="none"
        AIF partial-volume scaling: ``"vof"`` multiplies the AIF by
        ``∫VOF / ∫AIF`` (:func:`skperfusion.aif.vof_scale`), the venous
        output function being the mean signal of the ``vof`` mask or, without
        one, of automatically selected late, large-area brain voxels
        (:func:`skperfusion.aif.select_venous_voxels`).
    leakage : {"none", "bsw", "bidirectional"}, default="none"
        Contrast-leakage correction of the concentration curves with
        :class:`skperfusion.preprocessing.LeakageCorrector`; ``K2`` (1/s) per
        voxel comes with the result. The reference curve is fitted once per
        exam on its brain voxels, whatever voxels are asked for; an exam
        without one is left uncorrected (``K2`` NaN, one warning).
    relaxivity : {"none", "van_osch"}, default="none"
        ``"none"``: tissue and AIF are both ``ΔR2*`` (1/s), i.e. the same
        relaxivity is assumed for both; relative maps (rCBF, rCBV, ratios)
        are right, absolute CBF and CBV are not (too high by about
        ``r_t / a``, 5.8, plus the quadratic term at the bolus peak).
        ``"van_osch"``: tissue ``C = ΔR2* / r_t``
        (:func:`skperfusion.physics.tissue_concentration`) and the AIF and
        VOF through the quadratic whole-blood relation of van Osch et al.
        2003 (:func:`skperfusion.physics.blood_concentration`), both in mM,
        so that CBF and CBV are absolute once the AIF is free of partial
        volume (``aif_scaling="vof"``). The constants
        (:data:`~skperfusion.physics.TISSUE_RELAXIVITY`,
        :data:`~skperfusion.physics.BLOOD_RELAXIVITY`) are for 1.5 T
        gradient echo, as in the simulator.
    tr : float or None, default=None
        Sampling interval of the output grid in seconds; None keeps the
        exam's TR.
    n_times : int or None, default=None
        Frames of the output grid; None covers the exam's kept frames.
    transformer : transformer or None, default=None
        Signal-to-concentration transformer for the paired signals (shape
        ``(n, 2, T)`` for one echo, ``(n, 2, E, T)`` for several); None
        chooses it from the exam as above.

    See Also
    --------
    skperfusion.exam_estimators.PerfusionMapper : Maps of exams through this step.

    Examples
    --------
    >>> from skperfusion.datasets import simulate_exam
    >>> from skperfusion.exam import ExamToCurves
    >>> exam = simulate_exam("sub-001", "HGG", shape=(8, 8, 1), random_state=0)
    >>> curves = ExamToCurves().transform(exam)
    >>> curves.X.shape[1], curves.X.shape[0] == exam.masks["brain"].sum()
    (2, np.True_)
    >>> curves.to_volume(curves.X[:, 0].max(axis=1)).shape == exam.shape
    True
    """

    _parameter_constraints: ClassVar[dict] = {
        "aif": [StrOptions(set(AIF_STRATEGIES)), str, os.PathLike],
        "aif_scaling": [StrOptions(set(AIF_SCALINGS))],
        "leakage": [StrOptions(set(LEAKAGE_METHODS))],
        "relaxivity": [StrOptions(set(RELAXIVITY_MODELS))],
        "tr": [None, Interval(Real, 0, None, closed="neither")],
        "n_times": [None, Interval(Integral, 1, None, closed="left")],
        "transformer": [None, HasMethods(["fit_transform"])],
    }

    def __init__(self, aif="mask", aif_scaling="none", leakage="none", *, relaxivity="none",
                 tr=None, n_times=None, transformer=None):
        self.aif = aif
        self.aif_scaling = aif_scaling
        self.leakage = leakage
        self.relaxivity = relaxivity
        self.tr = tr
        self.n_times = n_times
        self.transformer = transformer

    def transform(self, exam, mask="brain"):
        """Curves of one exam's voxels.

        Parameters
        ----------
        exam : Exam
            The exam (one or several echoes).
        mask : str or ndarray of shape (X, Y, Z), default="brain"
            Voxels to extract, by mask name or as a boolean volume.

        Returns
        -------
        curves : ExamCurves
            ``X`` of shape ``(n_voxels, 2, n_times)`` (1/s, or mM with
            ``relaxivity="van_osch"``), the AIF, ``K2`` (and ``kep``) when
            leakage was corrected, the exam and the seconds spent.

        Raises
        ------
        ValueError
            Naming the subject: a flat or non-positive mean arterial signal,
            no ``aif`` mask with ``aif="mask"``, or every selected voxel
            degenerate.

        Warns
        -----
        DegenerateVoxelWarning
            Once, counting the degenerate voxels: a zero or negative signal
            sample after the skipped frames, whose logarithm is undefined.
            Their curves (hence maps) are NaN; the other voxels are
            unaffected.
        LeakageWarning
            At most once, naming the subject, with ``leakage`` set: a
            doubtful leakage reference (few or noise-like non-enhancing
            voxels), or none (no non-enhancing brain voxel, data that cannot
            carry a correction): the exam's curves are then left uncorrected
            and ``K2`` is NaN, rather than failing the exam.
        """
        (_, curves), = self.transform_chunks(exam, mask, chunk_voxels=None)
        return curves

    def transform_chunks(self, exam, mask="brain", chunk_voxels=CHUNK_VOXELS):
        """The curves of :meth:`transform`, a block of voxels at a time.

        The AIF (selection, conversion, venous scaling) is computed once;
        each block is converted, scaled and resampled on its own, so that
        peak memory is that of one block rather than of the whole exam. The
        blocks' curves are those of :meth:`transform`, row for row. The
        leakage corrector is fitted once, on the brain voxels, before the
        first block.

        Parameters
        ----------
        exam : Exam
            The exam, as for :meth:`transform`.
        mask : str or ndarray of shape (X, Y, Z), default="brain"
            The voxels, as for :meth:`transform`; blocks follow their C order.
        chunk_voxels : int or None, default=32768
            Voxels per block (:data:`CHUNK_VOXELS`); None for one block.

        Yields
        ------
        rows : slice
            Rows of the block among the selected voxels (C order of the mask).
        curves : ExamCurves
            The block's curves; ``voxels`` is the whole selection, ``X`` has
            ``rows.stop - rows.start`` rows; ``seconds`` is the block's
            share of the step (the first block also counts the AIF and the
            leakage fit).

        Raises
        ------
        ValueError
            As :meth:`transform`, before the first block.

        Warns
        -----
        DegenerateVoxelWarning
            As :meth:`transform`, once, before the first block.
        """
        self._validate_params()
        started = time.perf_counter()
        selected = exam.mask(mask)
        if not selected.any():
            raise ValueError(f"subject {exam.subject_id}: the selected mask has no voxel.")
        degenerate = _degenerate_voxels(exam, selected)
        reference = _aif_stage(self, exam)
        # One (voxel, time[, echo]) view of the signal; each block is a copy of its rows.
        signal = exam.signal.reshape(-1, *exam.signal.shape[3:])
        index = np.flatnonzero(selected)
        stand_in = signal[index[np.argmin(degenerate)]]
        corrector = _leakage_corrector(self, exam, reference) if self.leakage != "none" else None
        chunk_voxels = len(index) if chunk_voxels is None else chunk_voxels
        for start in range(0, len(index), chunk_voxels):
            rows = slice(start, min(start + chunk_voxels, len(index)))
            tissue, bad = signal[index[rows]], degenerate[rows]
            # A valid voxel stands in for the degenerate ones, whose rows are then NaN.
            tissue[bad] = stand_in
            X = _convert(self, exam, tissue, reference.signal)
            X[bad] = np.nan
            _aif_channel(X, reference)
            X, leakage = _leakage_stage(self, corrector, X)
            X = _resample_stage(self, exam, X)
            seconds = time.perf_counter() - started  # this block, and the first the AIF
            yield rows, ExamCurves(X, selected, reference.aif, **leakage, exam=exam,
                                   seconds=seconds)
            started = time.perf_counter()


def _grid(step, exam):
    """The output grid of ``step`` for an exam: its own unless ``tr``/``n_times`` are set."""
    if step.n_times is not None:
        return (exam.tr if step.tr is None else float(step.tr)), int(step.n_times)
    return time_grid([exam], step.tr)


def _resample_stage(step, exam, curves):
    """Resampling stage: curves of the exam's kept frames onto the step's grid."""
    tr, n_times = _grid(step, exam)
    if (tr, n_times) == (exam.tr, curves.shape[-1]):
        return curves
    return resample_curves(curves, exam.tr, tr, n_times)


def _transformer(step, exam):
    """The signal-to-ΔR2* transformer: the step's, or the one the exam's echoes need."""
    if step.transformer is not None:
        return clone(step.transformer)
    if exam.n_echoes == 1:
        return ConcentrationTransformer(te=exam.te, n_skip=exam.n_skip)
    return MultiEchoTransformer(te=exam.echo_times, n_skip=exam.n_skip)


def _convert(step, exam, signals, aif_signal, *, blood=False):
    """Conversion stage: ΔR2* (or mM) curves of signal rows paired with the arterial signal.

    With ``relaxivity="van_osch"`` the AIF channel is blood and the rows
    are tissue, or blood too (``blood=True``: the VOF).
    """
    X = _transformer(step, exam).fit_transform(_pair(signals, aif_signal))
    if step.relaxivity == "van_osch":
        X[:, 0] = (blood_concentration if blood else tissue_concentration)(X[:, 0])
        X[:, 1] = blood_concentration(X[:, 1])
    return X


def _aif_voxels(step, exam):
    """Arterial voxels; for automatic selection also the candidates and the AIFSelection."""
    if step.aif == "mask":
        if "aif" not in exam.masks:
            raise ValueError(f"subject {exam.subject_id}: no aif mask; give aif_mask.nii.gz "
                             "or select the arterial voxels automatically (aif='auto', "
                             "--aif auto).")
        return exam.masks["aif"], None, None
    brain = exam.mask("brain")
    if step.aif != "auto":  # a table of the curve: no voxels
        return np.zeros(brain.shape, dtype=bool), None, None
    curves, baseline_sd, _ = _brain_concentrations(exam, brain)
    try:
        selection = select_aif(curves, exam.tr, exam.echo_times[-1], baseline_sd)
    except ValueError as exc:
        raise ValueError(f"subject {exam.subject_id}: {exc}") from exc
    return _scatter(selection.voxels, brain), _scatter(selection.candidates, brain), selection


def _venous_voxels(exam, aif_signal):
    """Venous voxels: the ``vof`` mask, or late, large-area brain voxels."""
    if "vof" in exam.masks:
        return exam.masks["vof"]
    brain = exam.mask("brain")
    aif = aif_signal[exam.n_skip:]
    if exam.n_echoes > 1:
        aif = aif[..., -1]
    curves, _, _ = _brain_concentrations(exam, brain)
    aif_curve, _, _ = voxel_concentrations(aif[None], exam.echo_times[-1])
    try:
        venous = select_venous_voxels(curves, exam.tr, aif_curve[0])
    except ValueError as exc:
        raise ValueError(f"subject {exam.subject_id}: {exc}") from exc
    return _scatter(venous, brain)


@dataclass(frozen=True)
class _Reference:
    """What every block of an exam shares: the mean arterial signal, scale, ExamAIF."""

    signal: np.ndarray
    scale: float
    aif: ExamAIF
    curve: np.ndarray | None = None  # the AIF on the kept frames when not from ``signal``


def _aif_channel(X, reference):
    """The AIF channel of converted curves: the recovered or given curve, then the scale."""
    if reference.curve is not None:
        X[:, 1] = reference.curve
    if reference.scale != 1:
        X[:, 1] *= np.asarray(reference.scale, dtype=X.dtype)


def _given_curve(step, exam, n_frames):
    """The AIF of ``aif``: a table of the curve read onto the exam's kept frames."""
    try:
        times, values = read_aif_table(step.aif)
    except (OSError, ValueError) as exc:
        raise ValueError(f"subject {exam.subject_id}: {exc}") from exc
    return np.interp(np.arange(n_frames) * exam.tr, times, values, left=0.0, right=0.0)


def _aif_stage(step, exam):
    """AIF stage: voxels (``aif``), mean signal, venous scaling (``aif_scaling``), ExamAIF."""
    aif_voxels, candidates, selection = _aif_voxels(step, exam)
    given = step.aif not in ("mask", "auto")
    # A given curve has no voxels: the mean brain signal stands in for the conversion.
    aif = exam.signal[exam.mask("brain") if given else aif_voxels].mean(axis=0)
    if np.any(aif <= 0) or np.any(np.ptp(aif, axis=0) == 0):
        raise ValueError(f"subject {exam.subject_id}: the mean arterial signal is flat or "
                         "non-positive; check the aif mask.")
    venous, rows = None, aif[None]
    if step.aif_scaling == "vof":
        venous = _venous_voxels(exam, aif)
        # The VOF goes through the conversion as one more "tissue" row, with the AIF.
        rows = np.concatenate([rows, exam.signal[venous].mean(axis=0)[None]])
    curves = _convert(step, exam, rows, aif, blood=True)
    curve, scale, override, saturated = curves[0, 1], 1.0, None, None
    candidate_curves = None if selection is None else selection.curves[selection.candidates]
    if selection is not None and selection.quality.n_saturated:
        # Saturated arteries: the mean of their recovered curves, not of their clipped signals.
        override = selection.curve
        saturated = selection.saturated_samples
    elif given:
        override = _given_curve(step, exam, curve.size)
    if override is not None:
        if step.relaxivity == "van_osch" and not given:
            override = blood_concentration(override)
        curve = override = override.astype(curve.dtype)
    if venous is not None:
        try:
            scale = vof_scale(curve, curves[1, 0], exam.tr)
        except ValueError as exc:
            raise ValueError(f"subject {exam.subject_id}: {exc}") from exc
    if candidate_curves is not None and step.relaxivity == "van_osch":
        candidate_curves = blood_concentration(candidate_curves)
    curve = _resample_stage(step, exam, curve * np.asarray(scale, dtype=curve.dtype))
    if candidate_curves is not None:
        candidate_curves = _resample_stage(step, exam, candidate_curves)
    unit = "mM" if step.relaxivity == "van_osch" else "1/s"
    source = step.aif if step.aif in ("mask", "auto") else str(step.aif)
    aif_info = ExamAIF(curve, _grid(step, exam)[0], aif_voxels, candidates, candidate_curves,
                       scale, venous, unit, None if selection is None else selection.quality,
                       saturated, source)
    return _Reference(aif, scale, aif_info, override)


def _leakage_stage(step, corrector, X):
    """Leakage stage: corrected curves and their ``K2`` (and ``kep``), in one pass.

    Returns the curves unchanged and no parameters without ``leakage``;
    NaN parameters when the exam has no leakage reference (``corrector`` None).
    """
    if step.leakage == "none":
        return X, {}
    names = ("k2", "kep") if step.leakage == "bidirectional" else ("k2",)
    if corrector is None:  # no reference: left uncorrected
        return X, {name: np.full(len(X), np.nan) for name in names}
    from ..preprocessing.leakage import LeakageWarning

    with warnings.catch_warnings():
        # What the corrector warns about here (series too short for its tail lags, an
        # all-zero AIF) depends on the exam's AIF and grid only: it was said once, naming
        # the subject, when the corrector was fitted; every chunk would repeat it.
        warnings.simplefilter("ignore", LeakageWarning)
        X, parameters = corrector._correct(X)
    return X, {name: parameters[name.upper() if name == "k2" else name] for name in names}


def _leakage_corrector(step, exam, reference):
    """The LeakageCorrector of ``step`` for an exam, fitted on its brain voxels; or None.

    The reference curve comes from the brain (mostly normal tissue)
    whatever voxels are asked for (a tumour mask, a few training voxels),
    every k-th brain voxel so that at most :data:`CHUNK_VOXELS` are
    converted; degenerate voxels are left out. Where no correction can be
    fitted (no non-enhancing voxel, or data that cannot carry one) the
    curves stay uncorrected with ``K2`` NaN. The corrector's warnings come
    as one :class:`LeakageWarning` naming the subject.
    """
    from ..preprocessing.leakage import LeakageCorrector, LeakageWarning

    signal = exam.signal.reshape(-1, *exam.signal.shape[3:])
    index = np.flatnonzero(exam.mask("brain"))
    tissue = signal[index[::max(1, -(-len(index) // CHUNK_VOXELS))]]
    tissue = tissue[~_is_degenerate(tissue, exam.n_skip, 1)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LeakageWarning)
        try:
            if not len(tissue):
                raise ValueError("no brain voxel has a positive signal.")
            X = _convert(step, exam, tissue, reference.signal)
            _aif_channel(X, reference)
            corrector = LeakageCorrector(method=step.leakage, tr=exam.tr).fit(X)
            problem = None
        except ValueError as error:
            corrector, problem = None, str(error)
    messages = [str(item.message) for item in caught
                if issubclass(item.category, LeakageWarning)]
    for item in caught:
        if not issubclass(item.category, LeakageWarning):
            warn(item.message, item.category)
    if corrector is not None and not corrector.correctable_:
        corrector = None
    if problem is not None:
        messages.append(problem)
    if messages:
        outcome = (" Its curves are left without leakage correction (K2 NaN)."
                   if problem is not None else "")
        warn(f"{step.leakage} leakage correction: {' '.join(messages)}{outcome}", LeakageWarning,
             subject=exam.subject_id)
    return corrector


def _is_degenerate(signals, n_skip, time_axis):
    """The degenerate-voxel rule: a zero or negative signal sample after ``n_skip``.

    Its logarithm is undefined, so the voxel has no concentration curve.

    Parameters
    ----------
    signals : ndarray of shape (*voxel_axes, T) or (*voxel_axes, T, E)
        Signals, arbitrary units.
    n_skip : int
        Leading frames not at steady state, not read.
    time_axis : int
        Axis of time (the number of voxel axes before it).

    Returns
    -------
    degenerate : ndarray of bool of shape voxel_axes
    """
    kept = signals[(slice(None),) * time_axis + (slice(n_skip, None),)]
    return ~np.all(kept.reshape(*kept.shape[:time_axis], -1) > 0, axis=-1)


def _degenerate_voxels(exam, selected):
    """Selected voxels that are degenerate (:func:`_is_degenerate`), with one warning.

    The caller stands a valid voxel's signal in for them (keeping the
    conversion of the others, and a shared baseline detection, unchanged)
    and sets their rows to NaN.
    """
    degenerate = _is_degenerate(exam.signal, exam.n_skip, 3)[selected]
    n_bad = int(np.count_nonzero(degenerate))
    if n_bad == len(degenerate):
        raise ValueError(f"subject {exam.subject_id}: every one of the {n_bad} selected voxels "
                         "has a zero or negative signal; its logarithm is needed.")
    if n_bad:
        first = tuple(int(i) for i in np.argwhere(selected)[np.argmax(degenerate)])
        warn(f"{n_bad} of {len(degenerate)} selected voxel(s) (first: voxel {first}) have a "
             "zero or negative signal, whose logarithm is undefined; their maps are NaN.",
             DegenerateVoxelWarning, subject=exam.subject_id)
    return degenerate


def _brain_concentrations(exam, brain):
    """:func:`~skperfusion.aif.voxel_concentrations` of the brain voxels, longest echo.

    Converted :data:`CHUNK_VOXELS` voxels at a time (each voxel has its own
    baseline, so blocks give the same curves), which keeps the float64
    temporaries of the conversion to one block.
    """
    signal = exam.signal.reshape(-1, *exam.signal.shape[3:])
    index = np.flatnonzero(brain)
    curves = np.empty((len(index), exam.n_times - exam.n_skip))
    baseline_sd, min_fraction = np.empty(len(index)), np.empty(len(index))
    for start in range(0, len(index), CHUNK_VOXELS):
        rows = slice(start, start + CHUNK_VOXELS)
        block = signal[index[rows], exam.n_skip:]
        if exam.n_echoes > 1:
            block = block[..., -1]
        curves[rows], baseline_sd[rows], min_fraction[rows] = voxel_concentrations(
            block, exam.echo_times[-1])
    return curves, baseline_sd, min_fraction


def _scatter(values, mask):
    """Boolean volume that is ``values`` on ``mask`` and False elsewhere."""
    volume = np.zeros(mask.shape, dtype=bool)
    volume[mask] = values
    return volume


def _pair(tissue, aif):
    """Paired signals: (n, 2, T) for one echo, (n, 2, E, T) for several."""
    if tissue.ndim == 2:
        return np.stack([tissue, np.broadcast_to(aif, tissue.shape)], axis=1)
    tissue = np.moveaxis(tissue, -1, 1)  # (n, E, T)
    return np.stack([tissue, np.broadcast_to(aif.T, tissue.shape)], axis=1)
