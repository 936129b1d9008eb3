"""From exam to curves: the one step shared by maps, training and the study.

:class:`ExamToCurves` applies, in order: the AIF (the ``aif`` mask, or
automatic selection), signal to ``ΔR2*`` (one echo: eq. 1; several:
``ΔR2*`` that cancels T1 effects), optional relaxivity conversion to
absolute concentrations (mM), optional AIF scaling by a venous output
function, optional leakage correction, and resampling to a common time
grid. Its result, :class:`ExamCurves`, carries the voxel matrix ``X`` of
shape ``(n_voxels, 2, n_times)`` that every deconvolver takes;
:meth:`ExamToCurves.transform_chunks` gives the same curves a block of
voxels at a time (bounded memory).
"""

import warnings
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions, validate_params

from .._options import AIF_SCALINGS, AIF_STRATEGIES, LEAKAGE_METHODS, RELAXIVITY_MODELS
from ..aif import select_arterial_voxels, select_venous_voxels, vof_scale, voxel_concentrations
from ..physics.relaxivity import blood_concentration, tissue_concentration
from ..preprocessing import (
    ConcentrationTransformer,
    DegenerateVoxelWarning,
    MultiEchoTransformer,
)

__all__ = ["ExamAIF", "ExamCurves", "ExamToCurves", "resample_curves"]

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
    """

    curve: np.ndarray = field(repr=False)
    tr: float
    voxels: np.ndarray = field(repr=False)
    candidates: np.ndarray | None = field(default=None, repr=False)
    candidate_curves: np.ndarray | None = field(default=None, repr=False)
    scale: float = 1.0
    venous_voxels: np.ndarray | None = field(default=None, repr=False)
    unit: str = "1/s"

    @property
    def times(self):
        """Sample times of ``curve`` in seconds, ``k · tr``."""
        return np.arange(self.curve.size) * self.tr


@dataclass(frozen=True)
class ExamCurves:
    """Curves of one exam, the result of :meth:`ExamToCurves.transform`.

    Parameters
    ----------
    X : ndarray of shape (n_voxels, 2, n_times)
        Tissue (channel 0) and AIF (channel 1) curves, ``ΔR2*`` in 1/s or,
        with ``relaxivity="van_osch"``, concentrations in mM; voxels in C
        order of ``voxels``; the dtype of the exam's signal (float32 stays
        float32).
    voxels : ndarray of bool, shape (X, Y, Z)
        The voxels of ``X``.
    aif : ExamAIF
        The AIF and the arterial voxels it came from.
    k2 : ndarray of shape (n_voxels,) or None, default=None
        Leakage rate constant ``K2`` (1/s) per voxel, when leakage was corrected.
    """

    X: np.ndarray = field(repr=False)
    voxels: np.ndarray = field(repr=False)
    aif: ExamAIF
    k2: np.ndarray | None = field(default=None, repr=False)

    @property
    def tr(self):
        """Sampling interval of the curves in seconds."""
        return self.aif.tr


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
    aif : {"mask", "auto"}, default="mask"
        Where the arterial voxels come from: the exam's ``aif`` mask, or
        automatic selection among the brain voxels
        (:func:`skperfusion.aif.select_arterial_voxels`, Mouridsen et al.
        2006, on the longest echo).
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
    """

    _parameter_constraints: ClassVar[dict] = {
        "aif": [StrOptions(set(AIF_STRATEGIES))],
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

    def _transformer(self, exam):
        if self.transformer is not None:
            return clone(self.transformer)
        if exam.n_echoes == 1:
            return ConcentrationTransformer(te=exam.te, n_skip=exam.n_skip)
        return MultiEchoTransformer(te=exam.echo_times, n_skip=exam.n_skip)

    def arterial_voxels(self, exam):
        """The arterial voxels this step would use for an exam.

        Parameters
        ----------
        exam : Exam
            The exam.

        Returns
        -------
        voxels : ndarray of bool, shape (X, Y, Z)
            The ``aif`` mask (``aif="mask"``), or the automatically selected
            arterial voxels (``aif="auto"``).

        Raises
        ------
        ValueError
            Naming the subject: no ``aif`` mask with ``aif="mask"``, or no
            arterial candidates.
        """
        self._validate_params()
        return self._aif_voxels(exam)[0]

    def _aif_voxels(self, exam):
        """Arterial voxels; for automatic selection also the candidates and their curves."""
        if self.aif == "mask":
            if "aif" not in exam.masks:
                raise ValueError(f"subject {exam.subject_id}: no aif mask; give aif_mask.nii.gz "
                                 "or select the arterial voxels automatically (aif='auto', "
                                 "--aif auto).")
            return exam.masks["aif"], None, None
        brain = exam.mask("brain")
        curves, baseline_sd, min_fraction = _brain_concentrations(exam, brain)
        try:
            arterial, candidates = select_arterial_voxels(
                curves, exam.tr, baseline_sd=baseline_sd, min_fraction=min_fraction)
        except ValueError as exc:
            raise ValueError(f"subject {exam.subject_id}: {exc}") from exc
        return (_scatter(arterial, brain), _scatter(candidates, brain),
                curves[candidates])

    def _venous_voxels(self, exam, aif_signal):
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
            ``relaxivity="van_osch"``), the AIF, and ``K2`` when leakage was
            corrected.

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
            ``rows.stop - rows.start`` rows.

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
        selected = exam.mask(mask)
        if not selected.any():
            raise ValueError(f"subject {exam.subject_id}: the selected mask has no voxel.")
        degenerate = _degenerate_voxels(exam, selected)
        reference = self._reference(exam)
        # One (voxel, time[, echo]) view of the signal; each block is a copy of its rows.
        signal = exam.signal.reshape(-1, *exam.signal.shape[3:])
        index = np.flatnonzero(selected)
        stand_in = signal[index[np.argmin(degenerate)]]
        n_voxels = len(index)
        corrector = _leakage_corrector(self, exam, reference) if self.leakage != "none" else None
        if chunk_voxels is None:
            chunk_voxels = n_voxels
        for start in range(0, n_voxels, chunk_voxels):
            rows = slice(start, min(start + chunk_voxels, n_voxels))
            tissue, bad = signal[index[rows]], degenerate[rows]
            tissue[bad] = stand_in
            X = self._convert(exam, tissue, reference.signal)
            X[bad] = np.nan
            if reference.scale != 1:
                X[:, 1] *= np.asarray(reference.scale, dtype=X.dtype)
            k2 = None
            if self.leakage != "none" and corrector is None:
                k2 = np.full(len(X), np.nan)  # no reference: left uncorrected
            elif corrector is not None:
                k2 = corrector.leakage_parameters(X)["K2"]
                X = corrector.transform(X)
            X = self._resample(exam, X)
            yield rows, ExamCurves(X, selected, reference.aif, k2)

    def _convert(self, exam, signals, aif_signal, *, blood=False):
        """ΔR2* (or mM) curves of signal rows paired with the arterial signal.

        With ``relaxivity="van_osch"`` the AIF channel is blood and the rows
        are tissue, or blood too (``blood=True``: the VOF).
        """
        X = self._transformer(exam).fit_transform(_pair(signals, aif_signal))
        if self.relaxivity == "van_osch":
            X[:, 0] = (blood_concentration if blood else tissue_concentration)(X[:, 0])
            X[:, 1] = blood_concentration(X[:, 1])
        return X

    def _reference(self, exam):
        """The AIF of an exam, computed once: voxels, signal, scale and its ExamAIF."""
        aif_voxels, candidates, candidate_curves = self._aif_voxels(exam)
        aif = exam.signal[aif_voxels].mean(axis=0)
        if np.any(aif <= 0) or np.any(np.ptp(aif, axis=0) == 0):
            raise ValueError(f"subject {exam.subject_id}: the mean arterial signal is flat or "
                             "non-positive; check the aif mask.")
        venous, rows = None, aif[None]
        if self.aif_scaling == "vof":
            venous = self._venous_voxels(exam, aif)
            # The VOF goes through the conversion as one more "tissue" row, with the AIF.
            rows = np.concatenate([rows, exam.signal[venous].mean(axis=0)[None]])
        curves = self._convert(exam, rows, aif, blood=True)
        curve, scale = curves[0, 1], 1.0
        if venous is not None:
            try:
                scale = vof_scale(curve, curves[1, 0], exam.tr)
            except ValueError as exc:
                raise ValueError(f"subject {exam.subject_id}: {exc}") from exc
        if candidate_curves is not None and self.relaxivity == "van_osch":
            candidate_curves = blood_concentration(candidate_curves)
        curve = self._resample(exam, curve * np.asarray(scale, dtype=curve.dtype))
        if candidate_curves is not None:
            candidate_curves = self._resample(exam, candidate_curves)
        unit = "mM" if self.relaxivity == "van_osch" else "1/s"
        aif_info = ExamAIF(curve, self._grid(exam, exam.n_times - exam.n_skip)[0], aif_voxels,
                           candidates, candidate_curves, scale, venous, unit)
        return _Reference(aif, scale, aif_info)

    def _resample(self, exam, curves):
        tr, n_times = self._grid(exam, curves.shape[-1])
        if (tr, n_times) == (exam.tr, curves.shape[-1]):
            return curves
        return resample_curves(curves, exam.tr, tr, n_times)

    def _grid(self, exam, n_frames):
        tr = exam.tr if self.tr is None else float(self.tr)
        if self.n_times is not None:
            return tr, int(self.n_times)
        # The tolerance keeps rounding from dropping the last frame of an exact fit.
        return tr, int(np.floor((n_frames - 1) * exam.tr / tr + 1e-6)) + 1


def _leakage_corrector(step, exam, reference):
    """The LeakageCorrector of ``step`` for an exam, fitted on its brain voxels; or None.

    The reference curve comes from the brain (mostly normal tissue)
    whatever voxels are asked for (a tumour mask, a few training voxels),
    every k-th brain voxel so that at most :data:`CHUNK_VOXELS` are
    converted; voxels with a non-positive signal are left out. Where no
    correction can be fitted (no non-enhancing voxel, or data that
    cannot carry one) the curves stay uncorrected with ``K2`` NaN. The
    corrector's warnings come as one :class:`LeakageWarning` naming the
    subject.
    """
    from ..preprocessing.leakage import LeakageCorrector, LeakageWarning

    signal = exam.signal.reshape(-1, *exam.signal.shape[3:])
    index = np.flatnonzero(exam.mask("brain"))
    tissue = signal[index[::max(1, -(-len(index) // CHUNK_VOXELS))]]
    tissue = tissue[np.all(tissue[:, exam.n_skip:].reshape(len(tissue), -1) > 0, axis=1)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LeakageWarning)
        try:
            if not len(tissue):
                raise ValueError("no brain voxel has a positive signal.")
            X = step._convert(exam, tissue, reference.signal)
            if reference.scale != 1:
                X[:, 1] *= np.asarray(reference.scale, dtype=X.dtype)
            corrector = LeakageCorrector(method=step.leakage, tr=exam.tr).fit(X)
            problem = None
        except ValueError as error:
            corrector, problem = None, str(error)
    messages = [str(item.message) for item in caught
                if issubclass(item.category, LeakageWarning)]
    for item in caught:
        if not issubclass(item.category, LeakageWarning):
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    if corrector is not None and not corrector.correctable_:
        corrector = None
    if problem is not None:
        messages.append(problem)
    if messages:
        outcome = (" Its curves are left without leakage correction (K2 NaN)."
                   if problem is not None else "")
        warnings.warn(f"subject {exam.subject_id}: {step.leakage} leakage correction: "
                      f"{' '.join(messages)}{outcome}", LeakageWarning, stacklevel=5)
    return corrector


def _degenerate_voxels(exam, selected):
    """Selected voxels with a zero or negative kept signal, with one warning.

    A voxel is degenerate when a kept frame (after ``n_skip``) has a zero or
    negative signal: its concentration has no logarithm. The caller stands a
    valid voxel's signal in for it (keeping the conversion of the others,
    and a shared baseline detection, unchanged) and sets its rows to NaN.
    """
    kept = exam.signal[:, :, :, exam.n_skip:]
    bad = ~np.all(kept.reshape(*kept.shape[:3], -1) > 0, axis=-1)
    degenerate = bad[selected]
    n_bad = int(np.count_nonzero(degenerate))
    if n_bad == len(degenerate):
        raise ValueError(f"subject {exam.subject_id}: every one of the {n_bad} selected voxels "
                         "has a zero or negative signal; its logarithm is needed.")
    if n_bad:
        first = tuple(int(i) for i in np.argwhere(selected)[np.argmax(degenerate)])
        warnings.warn(f"subject {exam.subject_id}: {n_bad} of {len(degenerate)} selected "
                      f"voxel(s) (first: voxel {first}) have a zero or negative signal, whose "
                      "logarithm is undefined; their maps are NaN.", DegenerateVoxelWarning,
                      stacklevel=4)
    return degenerate


@dataclass(frozen=True)
class _Reference:
    """What every block of an exam shares: the mean arterial signal, scale, ExamAIF."""

    signal: np.ndarray
    scale: float
    aif: ExamAIF


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
