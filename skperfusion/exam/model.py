"""The exam model: one DSC-MRI acquisition with its timing, geometry and masks.

Reading and writing exams lives in :mod:`skperfusion.exam.layout` (folders),
:mod:`skperfusion.exam.bids` (sidecars, ``participants.tsv``) and
:mod:`skperfusion.exam.nifti` (images, maps); turning an exam into curves in
:mod:`skperfusion.exam.pipeline` (:class:`~skperfusion.exam.ExamToCurves`, the
one way from an exam to the voxel curves ``X``), which builds on this model.
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..deconvolution._base import PERFUSION_MAPS

__all__ = ["GRADES", "GROUND_TRUTH_NAMES", "MAP_UNITS", "MASK_NAMES", "Exam"]

MASK_NAMES = ("aif", "brain", "tumor", "nawm", "vof")
"""Mask names of an exam; file ``<name>_mask.nii.gz``."""

GROUND_TRUTH_NAMES = (*PERFUSION_MAPS, "Ktrans")
"""Maps an exam's ground truth may hold; ``Ktrans`` in 1/min (leakage)."""

MAP_UNITS = {"CBF": "ml/100g/min", "CBV": "ml/100g", "MTT": "s", "Tmax": "s",
             "rCBF": "dimensionless", "rCBV": "dimensionless", "K2": "1/s",
             "Ktrans": "1/min"}
"""Unit of each map name, written into the NIfTI description."""

GRADES = ("LGG", "HGG")
"""Accepted glioma grade labels."""


def scatter_values(values, voxels, subject_id="exam"):
    """Scatter one value (or ``k`` values) per voxel into a volume, NaN elsewhere.

    The inverse of selecting the voxels of a mask (C order).

    Parameters
    ----------
    values : array_like of shape (n_voxels,) or (n_voxels, k)
        Values of the ``True`` voxels of ``voxels``, in C order.
    voxels : ndarray of bool, shape (X, Y, Z)
        The voxels.
    subject_id : str, default="exam"
        Subject named in the error message.

    Returns
    -------
    volume : ndarray of shape (X, Y, Z) or (X, Y, Z, k)
        Float volume, NaN outside ``voxels``.
    """
    values = np.asarray(values, dtype=float)
    n_voxels = int(np.count_nonzero(voxels))
    if values.ndim not in (1, 2) or values.shape[0] != n_voxels:
        raise ValueError(f"subject {subject_id}: values of shape {values.shape} do not match "
                         f"the {n_voxels} voxels of the mask.")
    volume = np.full(voxels.shape + values.shape[1:], np.nan)
    volume[voxels] = values
    return volume


def _positive_seconds(value, name, who):
    if isinstance(value, bool) or not np.isscalar(value) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{who}: {name} must be a positive number of seconds; got {value!r}.")
    return float(value)


def _c_order(signal):
    """``signal`` (X, Y, Z, T[, E]) in C order, copied one (x, t) block per (y, z) row.

    ``np.ascontiguousarray`` transposes a Fortran-order signal element by
    element, each read a whole volume away from the last: 0.74 s for a
    128×128×20×120 float32 exam, against 0.21 s for these blocks of a few kB.
    """
    if signal.flags.c_contiguous:
        return signal
    ordered = np.empty(signal.shape, dtype=signal.dtype)
    for y, z in np.ndindex(signal.shape[1:3]):
        ordered[:, y, z] = signal[:, y, z]
    return ordered


@dataclass
class Exam:
    """One DSC-MRI exam: signal of one or more echoes, timing, geometry and masks.

    Parameters
    ----------
    signal : ndarray of shape (X, Y, Z, T) or (X, Y, Z, T, E)
        DSC signal intensities, arbitrary units, for one echo, or for ``E >=
        2`` echoes of a multi-echo acquisition (last axis, in echo order);
        must be > 0 wherever concentrations are computed (their log is taken).
    te : float or tuple of float
        Echo time in seconds; for ``E`` echoes a tuple of ``E`` strictly
        increasing echo times (s).
    tr : float
        Repetition time (sampling interval of the frames) in seconds.
    affine : ndarray of shape (4, 4)
        Voxel-to-world affine (mm).
    masks : dict of str to ndarray of shape (X, Y, Z)
        Boolean masks among ``"aif"``, ``"brain"``, ``"tumor"``, ``"nawm"``,
        ``"vof"`` (venous voxels); every given mask must be non-empty.
    subject_id : str, default="exam"
        Subject identifier, used in error messages.
    grade : {"LGG", "HGG"} or None, default=None
        Glioma grade, when known.
    header : nibabel.Nifti1Header or None, default=None
        Header of the DSC file, reused (as 3-D) when maps are saved.
    ground_truth : dict of str to ndarray of shape (X, Y, Z) or None, default=None
        True maps (simulations) among ``"CBF"`` (ml/100g/min), ``"CBV"``
        (ml/100g), ``"MTT"`` (s), ``"Tmax"`` (s), ``"Ktrans"`` (1/min).
    extra : dict, default={}
        Extra ``participants.tsv`` columns of this subject.
    n_skip : int, default=0
        Leading frames not at steady state, skipped before the baseline.
    flip_angle : float or None, default=None
        Excitation flip angle in degrees, in (0, 180], when known.

    Examples
    --------
    >>> import numpy as np
    >>> from skperfusion.exam import Exam
    >>> masks = {"aif": np.zeros((2, 2, 1), bool), "brain": np.ones((2, 2, 1), bool)}
    >>> masks["aif"][0, 0, 0] = True
    >>> exam = Exam(np.ones((2, 2, 1, 30)), te=0.03, tr=1.0, affine=np.eye(4), masks=masks)
    >>> exam.to_volume(np.arange(4.0)).shape
    (2, 2, 1)
    >>> dual = Exam(np.ones((2, 2, 1, 30, 2)), te=(0.002, 0.03), tr=1.0, affine=np.eye(4),
    ...             masks=masks)
    >>> dual.echo_times, dual.n_echoes
    ((0.002, 0.03), 2)
    """

    signal: np.ndarray = field(repr=False)
    te: float | tuple
    tr: float
    affine: np.ndarray = field(repr=False)
    masks: dict = field(repr=False)
    subject_id: str = "exam"
    grade: str | None = None
    header: object = field(default=None, repr=False)
    ground_truth: dict | None = field(default=None, repr=False)
    extra: dict = field(default_factory=dict, repr=False)
    n_skip: int = 0
    flip_angle: float | None = None

    def __post_init__(self):
        who = f"subject {self.subject_id}"
        self.signal = np.asarray(self.signal)
        if self.signal.ndim not in (4, 5):
            raise ValueError(
                f"{who}: the DSC signal must be 4-D (X, Y, Z, T), or 5-D (X, Y, Z, T, E) for "
                f"several echoes; got shape {self.signal.shape}."
            )
        if not np.issubdtype(self.signal.dtype, np.floating):
            self.signal = self.signal.astype(np.float64)
        # nibabel reads Fortran order: every (voxel, time) view of the signal (the curves'
        # blocks, the leakage fit, the QC) was then a copy of the whole 4-D array.
        self.signal = _c_order(self.signal)
        if not np.all(np.isfinite(self.signal)):
            raise ValueError(f"{who}: the DSC signal contains NaN or inf.")
        self._check_echoes(who)
        self.tr = _positive_seconds(self.tr, "TR", who)
        if self.flip_angle is not None:
            if (isinstance(self.flip_angle, bool) or not np.isscalar(self.flip_angle)
                    or not 0 < self.flip_angle <= 180):
                raise ValueError(f"{who}: the flip angle must be in (0, 180] degrees; got "
                                 f"{self.flip_angle!r}.")
            self.flip_angle = float(self.flip_angle)
        if not (isinstance(self.n_skip, int | np.integer) and
                0 <= self.n_skip < self.n_times - 1):
            raise ValueError(f"{who}: n_skip must be an integer in [0, {self.n_times - 1})"
                             f"; got {self.n_skip!r}.")
        self.affine = np.asarray(self.affine, dtype=float)
        if self.affine.shape != (4, 4) or not np.all(np.isfinite(self.affine)):
            raise ValueError(f"{who}: affine must be a finite (4, 4) array; got shape "
                             f"{self.affine.shape}.")
        if self.grade is not None and self.grade not in GRADES:
            raise ValueError(f"{who}: unknown grade {self.grade!r}; expected one of {GRADES}.")
        unknown = set(self.masks) - set(MASK_NAMES)
        if unknown:
            raise ValueError(f"{who}: unknown mask(s) {sorted(unknown)}; expected names among "
                             f"{MASK_NAMES}.")
        self.masks = {name: self._checked_volume(mask, f"{name} mask").astype(bool, copy=False)
                      for name, mask in self.masks.items()}
        for name, mask in self.masks.items():
            if not mask.any():
                raise ValueError(f"{who}: the {name} mask is empty.")
        if self.ground_truth is not None:
            unknown = set(self.ground_truth) - set(GROUND_TRUTH_NAMES)
            if unknown:
                raise ValueError(f"{who}: unknown ground-truth map(s) {sorted(unknown)}; "
                                 f"expected names among {GROUND_TRUTH_NAMES}.")
            self.ground_truth = {name: self._checked_volume(vol, f"ground-truth {name}")
                                 for name, vol in self.ground_truth.items()}

    def _check_echoes(self, who):
        if self.signal.ndim == 4:
            if isinstance(self.te, tuple | list | np.ndarray):
                raise ValueError(f"{who}: a 4-D (single-echo) signal takes one echo time; got "
                                 f"te={self.te!r}.")
            self.te = _positive_seconds(self.te, "TE", who)
            return
        n_echoes = self.signal.shape[4]
        if n_echoes < 2:
            raise ValueError(f"{who}: a 5-D signal holds several echoes on its last axis; got "
                             f"{n_echoes}: give a single echo as a 4-D signal.")
        te = tuple(np.atleast_1d(np.asarray(self.te, dtype=object)).tolist())
        if len(te) != n_echoes:
            raise ValueError(f"{who}: the signal has {n_echoes} echoes but te gives "
                             f"{len(te)} echo time(s): {self.te!r}.")
        te = tuple(_positive_seconds(value, "TE", who) for value in te)
        if not np.all(np.diff(te) > 0):
            raise ValueError(f"{who}: echo times must be strictly increasing (distinct); got "
                             f"{te} s.")
        self.te = te

    def _checked_volume(self, volume, what):
        volume = np.asarray(volume)
        if volume.shape != self.shape:
            raise ValueError(f"subject {self.subject_id}: the {what} has shape {volume.shape}; "
                             f"the DSC image has spatial shape {self.shape}.")
        return volume

    @property
    def shape(self):
        """Spatial shape ``(X, Y, Z)`` of the exam."""
        return self.signal.shape[:3]

    @property
    def n_times(self):
        """Number of frames ``T`` in the signal."""
        return self.signal.shape[3]

    @property
    def n_echoes(self):
        """Number of echoes ``E`` (1 for a 4-D signal)."""
        return 1 if self.signal.ndim == 4 else self.signal.shape[4]

    @property
    def echo_times(self):
        """Echo times in seconds, as a tuple (one element for a single echo)."""
        return self.te if isinstance(self.te, tuple) else (self.te,)

    def mask(self, mask):
        """Return a boolean mask by name, or check a given boolean volume.

        Parameters
        ----------
        mask : str or ndarray of shape (X, Y, Z)
            Mask name among :data:`MASK_NAMES`, or a boolean volume.

        Returns
        -------
        mask : ndarray of bool, shape (X, Y, Z)
        """
        if isinstance(mask, str):
            if mask not in self.masks:
                raise ValueError(f"subject {self.subject_id}: no {mask!r} mask; available: "
                                 f"{sorted(self.masks)}.")
            return self.masks[mask]
        return self._checked_volume(mask, "mask").astype(bool)

    def to_volume(self, values, mask="brain"):
        """Scatter voxel values back into the image grid.

        Parameters
        ----------
        values : array_like of shape (n_voxels,) or (n_voxels, k)
            One value (or ``k`` values) per voxel of ``mask``, in C order, as
            returned by a deconvolver applied to the curves of
            :class:`~skperfusion.exam.ExamToCurves`.
        mask : str or ndarray of shape (X, Y, Z), default="brain"
            The mask the values belong to.

        Returns
        -------
        volume : ndarray of shape (X, Y, Z) or (X, Y, Z, k)
            Float volume, NaN outside the mask.
        """
        return scatter_values(values, self.mask(mask), self.subject_id)

    def with_signal(self, signal):
        """Copy of the exam with another signal of the same shape (e.g. a noisier one).

        Parameters
        ----------
        signal : ndarray of shape (X, Y, Z, T) or (X, Y, Z, T, E)
            New signal, same shape as the current one.

        Returns
        -------
        exam : Exam
        """
        signal = np.asarray(signal)
        if signal.shape != self.signal.shape:
            raise ValueError(f"subject {self.subject_id}: new signal has shape {signal.shape}; "
                             f"expected {self.signal.shape}.")
        return dataclasses.replace(self, signal=signal)
