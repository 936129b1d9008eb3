"""From exam to curves: the one step shared by maps, training and the study.

:class:`ExamToCurves` applies, in order: the AIF (the ``aif`` mask, or
automatic selection), optional AIF scaling by a venous output function,
signal to concentration (one echo: eq. 1; several: ``ΔR2*`` that cancels T1
effects), optional leakage correction, and resampling to a common time
grid. Its result, :class:`ExamCurves`, carries the voxel matrix ``X`` of
shape ``(n_voxels, 2, n_times)`` that every deconvolver takes.
"""

import warnings
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions, validate_params

from .._options import AIF_SCALINGS, AIF_STRATEGIES, LEAKAGE_METHODS
from ..aif import select_arterial_voxels, select_venous_voxels, vof_scale, voxel_concentrations
from ..preprocessing import (
    ConcentrationTransformer,
    DegenerateVoxelWarning,
    MultiEchoTransformer,
)

__all__ = ["ExamAIF", "ExamCurves", "ExamToCurves", "resample_curves"]


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
        AIF concentration on the output grid, 1/s (after any scaling).
    tr : float
        Sampling interval of ``curve`` in seconds; ``curve[k]`` is at
        ``k · tr`` after the first kept frame.
    voxels : ndarray of bool, shape (X, Y, Z)
        The arterial voxels whose mean signal is the AIF.
    candidates : ndarray of bool, shape (X, Y, Z) or None, default=None
        Candidate voxels of an automatic selection (None for a mask).
    candidate_curves : ndarray of shape (n_candidates, n_times) or None, default=None
        Concentration curves (1/s) of the candidates on the grid of ``curve``.
    scale : float, default=1.0
        Factor the AIF was multiplied by (venous-output scaling), dimensionless.
    venous_voxels : ndarray of bool, shape (X, Y, Z) or None, default=None
        The voxels of the venous output function, with ``aif_scaling="vof"``.
    """

    curve: np.ndarray = field(repr=False)
    tr: float
    voxels: np.ndarray = field(repr=False)
    candidates: np.ndarray | None = field(default=None, repr=False)
    candidate_curves: np.ndarray | None = field(default=None, repr=False)
    scale: float = 1.0
    venous_voxels: np.ndarray | None = field(default=None, repr=False)

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
        Tissue (channel 0) and AIF (channel 1) concentration curves in 1/s,
        voxels in C order of ``voxels``.
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
    2. **Signal to concentration** of the tissue voxels and the mean
       arterial signal, with ``transformer`` or, by default, the conversion
       chosen from the exam: :class:`~skperfusion.preprocessing.ConcentrationTransformer`
       (``C = -ln(S/S0)/TE``, eq. 1) for one echo,
       :class:`~skperfusion.preprocessing.MultiEchoTransformer`
       (``ΔR2*`` free of T1 effects) for several.
    3. **AIF scaling** (``aif_scaling``), then **leakage correction**
       (``leakage``) of the concentration curves.
    4. **Resampling** onto ``t_k = k · tr``, ``k < n_times`` with
       :func:`resample_curves`, when a grid is given.

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
        voxel comes with the result.
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
        "tr": [None, Interval(Real, 0, None, closed="neither")],
        "n_times": [None, Interval(Integral, 1, None, closed="left")],
        "transformer": [None, HasMethods(["fit_transform"])],
    }

    def __init__(self, aif="mask", aif_scaling="none", leakage="none", *, tr=None,
                 n_times=None, transformer=None):
        self.aif = aif
        self.aif_scaling = aif_scaling
        self.leakage = leakage
        self.tr = tr
        self.n_times = n_times
        self.transformer = transformer

    def _transformer(self, exam):
        if self.transformer is not None:
            return clone(self.transformer)
        if exam.n_echoes == 1:
            return ConcentrationTransformer(te=exam.te, n_skip=exam.n_skip)
        return MultiEchoTransformer(te=exam.echo_times, n_skip=exam.n_skip)

    def _aif_voxels(self, exam):
        """Arterial voxels; for automatic selection also the candidates and their curves."""
        if self.aif == "mask":
            if "aif" not in exam.masks:
                raise ValueError(f"subject {exam.subject_id}: no aif mask; give aif_mask.nii.gz "
                                 "or select the arterial voxels automatically (aif='auto', "
                                 "--aif auto).")
            return exam.masks["aif"], None, None
        brain = exam.mask("brain")
        signal = exam.signal[brain][..., exam.n_skip:]
        if exam.n_echoes > 1:
            signal = signal[..., -1]
        curves, baseline_sd, min_fraction = voxel_concentrations(signal, exam.echo_times[-1])
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
        signal = exam.signal[brain][..., exam.n_skip:]
        aif = aif_signal[exam.n_skip:]
        if exam.n_echoes > 1:
            signal, aif = signal[..., -1], aif[..., -1]
        curves, _, _ = voxel_concentrations(signal, exam.echo_times[-1])
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
            ``X`` of shape ``(n_voxels, 2, n_times)`` in 1/s, the AIF, and
            ``K2`` when leakage was corrected.

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
            unaffected (SPEC §10).
        """
        self._validate_params()
        selected = exam.mask(mask)
        if not selected.any():
            raise ValueError(f"subject {exam.subject_id}: the selected mask has no voxel.")
        tissue = exam.signal[selected]
        tissue, degenerate = _stand_in_degenerate(tissue, exam, selected)
        aif_voxels, candidates, candidate_curves = self._aif_voxels(exam)
        aif = exam.signal[aif_voxels].mean(axis=0)
        if np.any(aif <= 0) or np.any(np.ptp(aif, axis=0) == 0):
            raise ValueError(f"subject {exam.subject_id}: the mean arterial signal is flat or "
                             "non-positive; check the aif mask.")
        venous = None
        if self.aif_scaling == "vof":
            venous = self._venous_voxels(exam, aif)
            # The VOF goes through the conversion as one more "tissue" row.
            tissue = np.concatenate([tissue, exam.signal[venous].mean(axis=0)[None]])
        X = self._transformer(exam).fit_transform(_pair(tissue, aif))
        if venous is None:
            X[degenerate] = np.nan
        else:
            X[:-1][degenerate] = np.nan
        scale = 1.0
        if venous is not None:
            vof, X = X[-1, 0], X[:-1]
            try:
                scale = vof_scale(X[int(np.argmin(degenerate)), 1], vof, exam.tr)
            except ValueError as exc:
                raise ValueError(f"subject {exam.subject_id}: {exc}") from exc
            X[:, 1] *= scale
        k2 = None
        if self.leakage != "none":
            from ..preprocessing.leakage import LeakageCorrector

            corrector = LeakageCorrector(method=self.leakage, tr=exam.tr).fit(X)
            k2 = corrector.leakage_parameters(X)["K2"]
            X = corrector.transform(X)
        tr, n_times = self._grid(exam, X.shape[-1])
        if (tr, n_times) != (exam.tr, X.shape[-1]):
            X = resample_curves(X, exam.tr, tr, n_times)
            if candidate_curves is not None:
                candidate_curves = resample_curves(candidate_curves, exam.tr, tr, n_times)
        aif_info = ExamAIF(X[int(np.argmin(degenerate)), 1].copy(), tr, aif_voxels, candidates,
                           candidate_curves, scale, venous)
        return ExamCurves(X, selected, aif_info, k2)

    def _grid(self, exam, n_frames):
        tr = exam.tr if self.tr is None else float(self.tr)
        if self.n_times is not None:
            return tr, int(self.n_times)
        # The tolerance keeps rounding from dropping the last frame of an exact fit.
        return tr, int(np.floor((n_frames - 1) * exam.tr / tr + 1e-6)) + 1


def _stand_in_degenerate(tissue, exam, selected):
    """Replace degenerate voxels' signals by a valid voxel's, with one warning.

    A voxel is degenerate when a kept frame (after ``n_skip``) has a zero or
    negative signal: its concentration has no logarithm. The stand-in keeps
    the conversion of the other voxels (and a shared baseline detection)
    unchanged; the caller sets the degenerate rows to NaN afterwards.
    """
    kept = tissue[:, exam.n_skip:]
    degenerate = ~np.all(kept.reshape(len(tissue), -1) > 0, axis=1)
    n_bad = int(np.count_nonzero(degenerate))
    if not n_bad:
        return tissue, degenerate
    if n_bad == len(tissue):
        raise ValueError(f"subject {exam.subject_id}: every one of the {n_bad} selected voxels "
                         "has a zero or negative signal; its logarithm is needed.")
    first = tuple(int(i) for i in np.argwhere(selected)[np.argmax(degenerate)])
    warnings.warn(f"subject {exam.subject_id}: {n_bad} of {len(tissue)} selected voxel(s) "
                  f"(first: voxel {first}) have a zero or negative signal, whose logarithm is "
                  "undefined; their maps are NaN.", DegenerateVoxelWarning, stacklevel=3)
    tissue = tissue.copy()
    tissue[degenerate] = tissue[np.argmin(degenerate)]
    return tissue, degenerate


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
