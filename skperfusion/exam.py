"""DSC exams on disk: the exam model, cohort loading and atomic NIfTI output.

On-disk layout, read by :func:`load_exam` / :func:`load_cohort` and
written by :func:`write_exam` and the simulator::

    cohort/
      participants.tsv          participant_id, grade (LGG|HGG), extra columns kept
      sub-<id>/dsc.nii.gz       4-D signal (X, Y, Z, T), arbitrary units, > 0 in the brain
      sub-<id>/dsc.json         {"EchoTime": s, "RepetitionTime": s}
      sub-<id>/aif_mask.nii.gz  arterial voxels, averaged into the AIF
      sub-<id>/brain_mask.nii.gz
      sub-<id>/tumor_mask.nii.gz
      sub-<id>/nawm_mask.nii.gz
      sub-<id>/gt_CBF.nii.gz    optional ground truth (also gt_CBV, gt_MTT, gt_Tmax)

The sidecar may also hold ``"NonSteadyStateVolumes"`` (an skperfusion
extension, not a BIDS field): the number of leading frames acquired before
the magnetisation reached steady state, skipped before the baseline.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from ._io import atomic_write
from .curves import pair_curves
from .preprocessing import ConcentrationTransformer

__all__ = [
    "GRADES",
    "MAP_NAMES",
    "MASK_NAMES",
    "Exam",
    "load_cohort",
    "load_exam",
    "read_participants",
    "resample_curves",
    "save_maps",
    "write_exam",
]

MASK_NAMES = ("aif", "brain", "tumor", "nawm")
"""Mask names of an exam; file ``<name>_mask.nii.gz``."""

MAP_NAMES = ("CBF", "CBV", "MTT", "Tmax")
"""Perfusion maps, in the deconvolvers' output order (ml/100g/min, ml/100g, s, s)."""

MAP_UNITS = {"CBF": "ml/100g/min", "CBV": "ml/100g", "MTT": "s", "Tmax": "s"}

GRADES = ("LGG", "HGG")
"""Accepted glioma grade labels."""

_REQUIRED_MASKS = ("aif", "brain")
_ROI_MASKS = ("tumor", "nawm")
_SIGNAL_FILE = "dsc.nii.gz"
_SIDECAR_FILE = "dsc.json"
_PARTICIPANTS_FILE = "participants.tsv"
_NON_STEADY_KEY = "NonSteadyStateVolumes"
# TE and TR are in seconds in BIDS; values above these bounds are almost
# certainly milliseconds, a frequent and silent 1000x error.
_MAX_TE_S = 1.0
_MAX_TR_S = 30.0


def _mask_file(name):
    return f"{name}_mask.nii.gz"


def _gt_file(name):
    return f"gt_{name}.nii.gz"


@dataclass
class Exam:
    """One DSC-MRI exam: 4-D signal, acquisition timing, geometry and masks.

    Parameters
    ----------
    signal : ndarray of shape (X, Y, Z, T)
        DSC signal intensities, arbitrary units; must be > 0 wherever
        concentrations are computed (their log is taken).
    te : float
        Echo time in seconds.
    tr : float
        Repetition time (sampling interval of the frames) in seconds.
    affine : ndarray of shape (4, 4)
        Voxel-to-world affine (mm).
    masks : dict of str to ndarray of shape (X, Y, Z)
        Boolean masks among ``"aif"``, ``"brain"``, ``"tumor"``, ``"nawm"``;
        every given mask must be non-empty.
    subject_id : str, default="exam"
        Subject identifier, used in error messages.
    grade : {"LGG", "HGG"} or None, default=None
        Glioma grade, when known.
    header : nibabel.Nifti1Header or None, default=None
        Header of the DSC file, reused (as 3-D) when maps are saved.
    ground_truth : dict of str to ndarray of shape (X, Y, Z) or None, default=None
        True maps (simulations) among ``"CBF"`` (ml/100g/min), ``"CBV"``
        (ml/100g), ``"MTT"`` (s), ``"Tmax"`` (s).
    extra : dict, default={}
        Extra ``participants.tsv`` columns of this subject.
    n_skip : int, default=0
        Leading frames not at steady state, skipped before the baseline.

    Examples
    --------
    >>> import numpy as np
    >>> from skperfusion.exam import Exam
    >>> masks = {"aif": np.zeros((2, 2, 1), bool), "brain": np.ones((2, 2, 1), bool)}
    >>> masks["aif"][0, 0, 0] = True
    >>> exam = Exam(np.ones((2, 2, 1, 30)), te=0.03, tr=1.0, affine=np.eye(4), masks=masks)
    >>> exam.to_volume(np.arange(4.0)).shape
    (2, 2, 1)
    """

    signal: np.ndarray = field(repr=False)
    te: float
    tr: float
    affine: np.ndarray = field(repr=False)
    masks: dict = field(repr=False)
    subject_id: str = "exam"
    grade: str | None = None
    header: object = field(default=None, repr=False)
    ground_truth: dict | None = field(default=None, repr=False)
    extra: dict = field(default_factory=dict, repr=False)
    n_skip: int = 0

    def __post_init__(self):
        who = f"subject {self.subject_id}"
        self.signal = np.asarray(self.signal)
        if self.signal.ndim != 4:
            raise ValueError(
                f"{who}: the DSC signal must be 4-D (X, Y, Z, T); got shape {self.signal.shape}."
            )
        if not np.issubdtype(self.signal.dtype, np.floating):
            self.signal = self.signal.astype(np.float64)
        if not np.all(np.isfinite(self.signal)):
            raise ValueError(f"{who}: the DSC signal contains NaN or inf.")
        for name in ("te", "tr"):
            value = getattr(self, name)
            if not np.isscalar(value) or not np.isfinite(value) or value <= 0:
                raise ValueError(f"{who}: {name.upper()} must be a positive number of "
                                 f"seconds; got {value!r}.")
        self.te, self.tr = float(self.te), float(self.tr)
        if not (isinstance(self.n_skip, int | np.integer) and
                0 <= self.n_skip < self.signal.shape[-1] - 1):
            raise ValueError(f"{who}: n_skip must be an integer in [0, {self.signal.shape[-1] - 1})"
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
            unknown = set(self.ground_truth) - set(MAP_NAMES)
            if unknown:
                raise ValueError(f"{who}: unknown ground-truth map(s) {sorted(unknown)}; "
                                 f"expected names among {MAP_NAMES}.")
            self.ground_truth = {name: self._checked_volume(vol, f"ground-truth {name}")
                                 for name, vol in self.ground_truth.items()}

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

    def aif_signal(self):
        """Mean arterial signal over the ``aif`` mask.

        Returns
        -------
        aif : ndarray of shape (T,)
            Mean signal of the arterial voxels, in the unit of ``signal``.
        """
        return self.signal[self.mask("aif")].mean(axis=0)

    def curves(self, mask="brain", transformer=None, *, time_grid=None):
        """Voxel matrix ``X`` of concentration curves for one mask.

        The AIF is the mean arterial *signal* converted to concentration with
        the same transformer as the tissue (the paper's recipe), broadcast to
        every voxel.

        Parameters
        ----------
        mask : str or ndarray of shape (X, Y, Z), default="brain"
            Voxels to extract, by mask name or as a boolean volume.
        transformer : transformer or None, default=None
            Signal-to-concentration transformer applied to the paired signals;
            default ``ConcentrationTransformer(te=self.te, n_skip=self.n_skip)``.
        time_grid : tuple (tr, n_times) or None, default=None
            Resample the curves onto ``t_k = k · tr`` (seconds), ``k <
            n_times``, counted from the first kept frame, with
            :func:`resample_curves`; needed to pool or compare exams with
            different TR or length (e.g. for a trained PHAE).

        Returns
        -------
        X : ndarray of shape (n_voxels, 2, T - n_skip) or (n_voxels, 2, n_times)
            Channel 0 the tissue ``ΔR2*`` curves, channel 1 the AIF (1/s with
            the default transformer), voxels in C order of the mask.
        """
        selected = self.mask(mask)
        tissue = self.signal[selected]
        n_bad = int(np.count_nonzero(np.any(tissue <= 0, axis=1)))
        if n_bad:
            raise ValueError(f"subject {self.subject_id}: {n_bad} voxel(s) of the selected mask "
                             "have a non-positive signal; its logarithm is needed.")
        aif = self.aif_signal()
        if np.any(aif <= 0) or np.ptp(aif) == 0:
            raise ValueError(f"subject {self.subject_id}: the mean arterial signal is flat or "
                             "non-positive; check the aif mask.")
        if transformer is None:
            transformer = ConcentrationTransformer(te=self.te, n_skip=self.n_skip)
        X = transformer.fit_transform(pair_curves(tissue, aif))
        if time_grid is not None:
            X = resample_curves(X, self.tr, *time_grid)
        return X

    def to_volume(self, values, mask="brain"):
        """Scatter voxel values back into the image grid.

        Parameters
        ----------
        values : array_like of shape (n_voxels,) or (n_voxels, k)
            One value (or ``k`` values) per voxel of ``mask``, in C order, as
            returned by a deconvolver applied to :meth:`curves`.
        mask : str or ndarray of shape (X, Y, Z), default="brain"
            The mask the values belong to.

        Returns
        -------
        volume : ndarray of shape (X, Y, Z) or (X, Y, Z, k)
            Float volume, NaN outside the mask.
        """
        selected = self.mask(mask)
        values = np.asarray(values, dtype=float)
        n_voxels = int(selected.sum())
        if values.ndim not in (1, 2) or values.shape[0] != n_voxels:
            raise ValueError(f"subject {self.subject_id}: values of shape {values.shape} do not "
                             f"match the {n_voxels} voxels of the mask.")
        volume = np.full(self.shape + values.shape[1:], np.nan)
        volume[selected] = values
        return volume

    def with_signal(self, signal):
        """Copy of the exam with another 4-D signal (e.g. a noisier one).

        Parameters
        ----------
        signal : ndarray of shape (X, Y, Z, T)
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
        Current sampling interval in seconds.
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
    if not (new_tr > 0 and tr > 0) or int(n_times) != n_times or n_times < 1:
        raise ValueError(f"need tr > 0, new_tr > 0 and n_times >= 1; got tr={tr!r}, "
                         f"new_tr={new_tr!r}, n_times={n_times!r}.")
    position = np.arange(int(n_times)) * (new_tr / tr)
    acquired = position <= X.shape[-1] - 1
    position = np.where(acquired, position, 0.0)
    lower = np.floor(position).astype(int)
    upper = np.minimum(lower + 1, X.shape[-1] - 1)
    weight = (position - lower).astype(X.dtype if X.dtype.kind == "f" else float)
    return np.where(acquired, X[..., lower] * (1 - weight) + X[..., upper] * weight, 0)


def _read_nifti(path, who, what, dtype=np.float32):
    if not path.is_file():
        raise FileNotFoundError(f"{who}: missing {what} file {path}.")
    try:
        image = nib.load(path)
        data = np.asarray(image.get_fdata(dtype=dtype))
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise ValueError(f"{who}: cannot read {what} file {path}: {exc}") from exc
    return image, data


def _read_sidecar(path, who):
    if not path.is_file():
        raise FileNotFoundError(f"{who}: missing sidecar {path} (needs EchoTime and "
                                "RepetitionTime in seconds).")
    try:
        sidecar = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{who}: sidecar {path} is not valid JSON: {exc}") from exc
    if not isinstance(sidecar, dict):
        raise ValueError(f"{who}: sidecar {path} must hold a JSON object.")
    timing = {}
    for key, upper in (("EchoTime", _MAX_TE_S), ("RepetitionTime", _MAX_TR_S)):
        if key not in sidecar:
            raise ValueError(f"{who}: sidecar {path} has no {key!r} (seconds).")
        value = sidecar[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"{who}: {key} in {path} must be a positive number of seconds; "
                             f"got {value!r}.")
        if value > upper:
            raise ValueError(f"{who}: {key}={value} in {path} looks like milliseconds; BIDS "
                             "sidecars give it in seconds.")
        timing[key] = float(value)
    n_skip = sidecar.get(_NON_STEADY_KEY, 0)
    if isinstance(n_skip, bool) or not isinstance(n_skip, int) or n_skip < 0:
        raise ValueError(f"{who}: {_NON_STEADY_KEY} in {path} must be a non-negative integer; "
                         f"got {n_skip!r}.")
    return timing["EchoTime"], timing["RepetitionTime"], n_skip


def load_exam(folder, subject_id=None, *, grade=None, extra=None, require_rois=True):
    """Load one exam from its folder (layout in the module docstring).

    Parameters
    ----------
    folder : str or path-like
        The ``sub-<id>`` folder.
    subject_id : str, optional
        Identifier used in the exam and in error messages; default the
        folder name.
    grade : {"LGG", "HGG"} or None, default=None
        Grade label, usually from ``participants.tsv``.
    extra : dict, optional
        Extra participant columns.
    require_rois : bool, default=True
        Require the ``tumor`` and ``nawm`` masks; when False they are loaded
        if present (maps need only ``aif`` and ``brain``).

    Returns
    -------
    exam : Exam
        Signal as float32; ground truth attached when ``gt_*.nii.gz`` exist.

    Raises
    ------
    FileNotFoundError
        A required file (DSC, sidecar, mask) is missing.
    ValueError
        Corrupt NIfTI, non-4-D DSC, sidecar without valid TE/TR, mask of
        another shape, empty mask, unknown grade. Messages name the subject
        and the file.
    """
    folder = Path(folder)
    subject_id = folder.name if subject_id is None else str(subject_id)
    who = f"subject {subject_id}"
    if not folder.is_dir():
        raise FileNotFoundError(f"{who}: exam folder {folder} does not exist.")
    if grade is not None and grade not in GRADES:
        raise ValueError(f"{who}: unknown grade {grade!r}; expected one of {GRADES}.")
    dsc_path = folder / _SIGNAL_FILE
    image, signal = _read_nifti(dsc_path, who, "DSC")
    if signal.ndim != 4 or signal.shape[3] < 2:
        raise ValueError(f"{who}: DSC file {dsc_path} must be 4-D (X, Y, Z, T); got shape "
                         f"{signal.shape}.")
    te, tr, n_skip = _read_sidecar(folder / _SIDECAR_FILE, who)
    masks = {}
    for name in MASK_NAMES:
        path = folder / _mask_file(name)
        if name in _ROI_MASKS and not require_rois and not path.exists():
            continue
        _, data = _read_nifti(path, who, f"{name} mask")
        if data.shape != signal.shape[:3]:
            raise ValueError(f"{who}: {name} mask {path} has shape {data.shape}; the DSC image "
                             f"{dsc_path} has spatial shape {signal.shape[:3]}.")
        if not np.any(data):
            raise ValueError(f"{who}: {name} mask {path} is empty.")
        masks[name] = data != 0
    ground_truth = {}
    for name in MAP_NAMES:
        path = folder / _gt_file(name)
        if path.exists():
            _, ground_truth[name] = _read_nifti(path, who, f"ground-truth {name}", np.float64)
    try:
        return Exam(signal=signal, te=te, tr=tr, affine=image.affine, masks=masks,
                    subject_id=subject_id, grade=grade, header=image.header,
                    ground_truth=ground_truth or None, extra=dict(extra or {}), n_skip=n_skip)
    except ValueError as exc:
        raise ValueError(f"{exc} (files in {folder})") from exc


def read_participants(root):
    """Read ``participants.tsv`` of a cohort folder.

    Parameters
    ----------
    root : str or path-like
        Cohort folder.

    Returns
    -------
    participants : pandas.DataFrame
        One row per subject; ``participant_id`` as str, ``grade`` as str or
        None (``n/a`` and empty cells), other columns as parsed by pandas.
    """
    path = Path(root) / _PARTICIPANTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"cohort {root}: missing {path}.")
    try:
        table = pd.read_csv(path, sep="\t", dtype={"participant_id": str, "grade": str},
                            na_values=["n/a"], keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"cohort {root}: cannot parse {path}: {exc}") from exc
    for column in ("participant_id", "grade"):
        if column not in table.columns:
            raise ValueError(f"cohort {root}: {path} has no {column!r} column.")
    if table["participant_id"].isna().any() or table["participant_id"].duplicated().any():
        raise ValueError(f"cohort {root}: {path} has empty or duplicated participant_id values.")
    table["grade"] = table["grade"].astype(object).where(table["grade"].notna(), None)
    for subject, grade in zip(table["participant_id"], table["grade"], strict=True):
        if grade is not None and grade not in GRADES:
            raise ValueError(f"subject {subject}: unknown grade {grade!r} in {path}; expected "
                             f"one of {GRADES}.")
    return table


def load_cohort(root, n_jobs=None, *, require_rois=True):
    """Load every exam listed in a cohort's ``participants.tsv``.

    Parameters
    ----------
    root : str or path-like
        Cohort folder (on-disk layout in the module docstring).
    n_jobs : int or None, default=None
        Exams loaded in parallel with joblib (threads unless a backend such as
        dask is set with :func:`joblib.parallel_config`).
    require_rois : bool, default=True
        Require ``tumor`` and ``nawm`` masks in every exam.

    Returns
    -------
    exams : list of Exam
        In ``participants.tsv`` order, with ``grade`` and the other columns
        in ``extra``.
    """
    root = Path(root)
    table = read_participants(root)
    extra_columns = [c for c in table.columns if c not in ("participant_id", "grade")]
    rows = table.to_dict(orient="records")
    # Threads by default: reading is I/O and zlib, which release the GIL, and
    # processes would pickle every 4-D signal back; a joblib backend set by
    # the caller (e.g. dask) still takes precedence.
    return Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(load_exam)(root / row["participant_id"], row["participant_id"],
                           grade=row["grade"], extra={c: row[c] for c in extra_columns},
                           require_rois=require_rois)
        for row in rows
    )


def _nifti_writer(image):
    return lambda temp: nib.save(image, temp)


def _map_image(volume, exam, description):
    header = exam.header.copy() if exam.header is not None else nib.Nifti1Header()
    if not isinstance(header, nib.Nifti1Header):
        header = nib.Nifti1Header.from_header(header)
    image = nib.Nifti1Image(np.asarray(volume, dtype=np.float32), exam.affine, header=header)
    image.header.set_data_dtype(np.float32)
    image.header.set_xyzt_units(xyz="mm")
    image.header["descrip"] = description[:79].encode()
    image.header["scl_slope"], image.header["scl_inter"] = 1.0, 0.0
    return image


def save_maps(maps, exam, out_dir, *, prefix=""):
    """Save perfusion maps as NIfTI with the exam's affine and header geometry.

    Written atomically: every map goes to a temporary file in ``out_dir``
    and is renamed only once all maps are written, so a failed or
    interrupted run leaves no half-written (or partial set of) maps.

    Parameters
    ----------
    maps : dict of str to ndarray of shape (X, Y, Z)
        Maps by name, e.g. ``{"CBF": ..., "CBV": ..., "MTT": ..., "Tmax": ...}``
        (ml/100g/min, ml/100g, s, s); NaN outside the brain.
    exam : Exam
        The exam the maps belong to (geometry source).
    out_dir : str or path-like
        Output folder, created if needed.
    prefix : str, default=""
        File name prefix; files are ``<prefix><name>.nii.gz``.

    Returns
    -------
    paths : list of pathlib.Path
        The written files.
    """
    writers = {}
    for name, volume in maps.items():
        volume = exam._checked_volume(volume, f"{name} map")
        unit = MAP_UNITS.get(name, "")
        writers[f"{prefix}{name}.nii.gz"] = _nifti_writer(
            _map_image(volume, exam, f"skperfusion {name} {unit}".strip()))
    return atomic_write(writers, out_dir)


def write_exam(exam, folder):
    """Write an exam in the on-disk layout (no ``participants.tsv``).

    Parameters
    ----------
    exam : Exam
        The exam; masks, ground truth and ``n_skip`` are written too.
    folder : str or path-like
        The ``sub-<id>`` folder, created if needed.

    Returns
    -------
    paths : list of pathlib.Path
        The written files (atomically, as in :func:`save_maps`).
    """
    header = nib.Nifti1Header()
    header.set_xyzt_units(xyz="mm", t="sec")
    signal_image = nib.Nifti1Image(np.asarray(exam.signal, dtype=np.float32), exam.affine,
                                   header=header)
    signal_image.header.set_zooms((*signal_image.header.get_zooms()[:3], exam.tr))
    sidecar = {"EchoTime": exam.te, "RepetitionTime": exam.tr}
    if exam.n_skip:
        sidecar[_NON_STEADY_KEY] = int(exam.n_skip)
    writers = {
        _SIGNAL_FILE: _nifti_writer(signal_image),
        _SIDECAR_FILE: lambda temp: temp.write_text(json.dumps(sidecar, indent=2) + "\n"),
    }
    for name, mask in exam.masks.items():
        writers[_mask_file(name)] = _nifti_writer(
            nib.Nifti1Image(mask.astype(np.uint8), exam.affine))
    for name, volume in (exam.ground_truth or {}).items():
        writers[_gt_file(name)] = _nifti_writer(_map_image(
            volume, exam, f"ground truth {name} {MAP_UNITS[name]}"))
    return atomic_write(writers, folder)
