"""Exam folders on disk: loading exams and cohorts, writing exams.

On-disk layout, read by :func:`load_exam` / :func:`load_cohort` and
written by :func:`write_exam` and the simulator::

    cohort/
      participants.tsv          participant_id, grade (LGG|HGG), extra columns kept
      sub-<id>/dsc.nii.gz       4-D signal (X, Y, Z, T), arbitrary units, > 0 in the brain
      sub-<id>/dsc.json         {"EchoTime": s, "RepetitionTime": s, "FlipAngle": degrees}
      sub-<id>/dsc_echo-<n>.nii.gz, dsc_echo-<n>.json
                                instead of dsc.*, one per echo of a multi-echo
                                acquisition (BIDS naming, n = 1, 2, ...; at least 2)
      sub-<id>/aif_mask.nii.gz  arterial voxels, averaged into the AIF
                                (optional with automatic AIF selection)
      sub-<id>/vof_mask.nii.gz  optional venous voxels (AIF partial-volume scaling)
      sub-<id>/brain_mask.nii.gz
      sub-<id>/tumor_mask.nii.gz
      sub-<id>/nawm_mask.nii.gz
      sub-<id>/gt_CBF.nii.gz    optional ground truth (also gt_CBV, gt_MTT, gt_Tmax, gt_Ktrans)

Sidecar fields are described in :mod:`skperfusion.exam.bids`.
"""

import re
from pathlib import Path

import nibabel as nib
import numpy as np
from joblib import Parallel, delayed

from .._io import atomic_write, check_inside
from .._warnings import warn
from .bids import (
    NON_STEADY_KEY,
    PARTICIPANTS_FILE,
    read_participants,
    read_sidecar,
    sidecar_text,
)
from .brain_mask import compute_brain_mask
from .model import GRADES, GROUND_TRUTH_NAMES, MAP_UNITS, MASK_NAMES, Exam
from .nifti import map_image, mask_image, nifti_writer, read_nifti

__all__ = ["load_cohort", "load_exam", "write_exam"]

_OPTIONAL_MASKS = ("tumor", "nawm", "vof")
_ROI_MASKS = ("tumor", "nawm")
_SIGNAL_FILE = "dsc.nii.gz"
_SIDECAR_FILE = "dsc.json"
_ECHO_PATTERN = re.compile(r"dsc_echo-(\d+)\.nii\.gz")
# Sidecars round TR; echoes of one acquisition agree to well below this.
_TR_RTOL = 1e-3
# Largest difference between an affine entry of a mask (or echo) and the DSC
# image's, in mm (mm per voxel for the 3x3 part): far below any voxel size,
# far above the float32 rounding of header coordinates.
AFFINE_TOLERANCE_MM = 1e-3
# Frames left after the non-steady-state ones below which no baseline (>= 2
# frames) plus a first pass (about 10 s, i.e. 7-10 frames at TR 1-1.5 s) fit.
_MIN_KEPT_FRAMES = 10


def _mask_file(name):
    return f"{name}_mask.nii.gz"


def _gt_file(name):
    return f"gt_{name}.nii.gz"


def _echo_files(n):
    return f"dsc_echo-{n}.nii.gz", f"dsc_echo-{n}.json"


def _oriented(image):
    return int(image.header["sform_code"]) > 0 or int(image.header["qform_code"]) > 0


def _affine_text(affine):
    return "[" + "; ".join(" ".join(f"{value:.6g}" for value in row) for row in affine[:3]) + "]"


def check_geometry(image, path, reference, reference_path, who, what):
    """Refuse an image whose voxel grid is not the DSC image's.

    The affines (the sform where its code is set, else the qform) must agree
    entry by entry within :data:`AFFINE_TOLERANCE_MM`; an image without any
    orientation (both codes 0) is refused next to a DSC image that has one.

    Parameters
    ----------
    image, reference : nibabel.Nifti1Image
        The image to check and the DSC image.
    path, reference_path : pathlib.Path
        Their files, for the message.
    who : str
        Prefix of the message, e.g. ``"subject sub-001"``.
    what : str
        What ``image`` is, e.g. ``"brain mask"``.

    Raises
    ------
    ValueError
        Naming both files and printing both affines (rows of the 3x4 part, mm).
    """
    if _oriented(reference) and not _oriented(image):
        raise ValueError(f"{who}: {what} {path} has no orientation (qform_code and sform_code "
                         f"0) but the DSC image {reference_path} has; save it with the DSC "
                         "image's header.")
    difference = float(np.max(np.abs(image.affine - reference.affine)))
    if difference > AFFINE_TOLERANCE_MM:
        raise ValueError(f"{who}: {what} {path} is not on the grid of the DSC image "
                         f"{reference_path}: its affine {_affine_text(image.affine)} differs "
                         f"from the DSC's {_affine_text(reference.affine)} by up to "
                         f"{difference:.3g} mm (tolerance {AFFINE_TOLERANCE_MM:g} mm); "
                         "resample it onto the DSC grid.")


def _read_signal(path, who, what):
    image, signal = read_nifti(path, who, what)
    if signal.ndim != 4 or signal.shape[3] < 2:
        raise ValueError(f"{who}: {what} file {path} must be 4-D (X, Y, Z, T); got shape "
                         f"{signal.shape}.")
    return image, signal


def _read_echoes(folder, who, allow_unusual_timing):
    """Signal (X, Y, Z, T, E), echo times, TR, n_skip, flip angle, image and file of echo 1."""
    matches = [m for p in folder.iterdir() if (m := _ECHO_PATTERN.fullmatch(p.name))]
    padded = sorted(m.group(0) for m in matches if m.group(1).startswith("0"))
    if padded:
        raise ValueError(f"{who}: {folder / padded[0]}: echo numbers have no leading zeros "
                         f"(BIDS); rename it dsc_echo-{int(padded[0][9:-7])}.nii.gz, and its "
                         "sidecar alike.")
    numbers = sorted(int(m.group(1)) for m in matches)
    if (folder / _SIGNAL_FILE).exists():
        raise ValueError(f"{who}: {folder} holds both {_SIGNAL_FILE} and dsc_echo-<n>.nii.gz "
                         "files; keep one layout (single echo or multi-echo).")
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"{who}: multi-echo files in {folder} must be numbered dsc_echo-1, "
                         f"dsc_echo-2, ... without gaps; found echoes {numbers}.")
    if len(numbers) == 1:
        raise ValueError(f"{who}: {folder} holds a single echo, dsc_echo-1.nii.gz; a "
                         f"single-echo exam is {_SIGNAL_FILE} with {_SIDECAR_FILE} (rename "
                         "them), multi-echo needs dsc_echo-2 too.")
    first_image, signals, sidecars, names = None, [], [], []
    for n in numbers:
        image_name, json_name = _echo_files(n)
        image, signal = _read_signal(folder / image_name, who, f"DSC echo {n}")
        if signals and signal.shape != signals[0].shape:
            raise ValueError(f"{who}: {folder / image_name} has shape {signal.shape} but "
                             f"{folder / names[0]} has {signals[0].shape}; every echo needs "
                             "the same grid and number of frames.")
        if first_image is not None:
            check_geometry(image, folder / image_name, first_image, folder / names[0], who,
                           f"DSC echo {n}")
        first_image = first_image or image
        signals.append(signal)
        sidecars.append(read_sidecar(folder / json_name, who,
                                     allow_unusual_timing=allow_unusual_timing))
        names.append(image_name)
    trs = np.array([s.repetition_time for s in sidecars])
    if not np.allclose(trs, trs[0], rtol=_TR_RTOL, atol=0):
        detail = ", ".join(f"{_echo_files(n)[1]}: {tr:g} s" for n, tr in zip(numbers, trs,
                                                                             strict=True))
        raise ValueError(f"{who}: the echoes in {folder} disagree in RepetitionTime ({detail}); "
                         "they must come from one acquisition.")
    skips = {s.n_skip for s in sidecars}
    if len(skips) > 1:
        raise ValueError(f"{who}: the echo sidecars in {folder} disagree in "
                         f"NonSteadyStateVolumes ({sorted(skips)}).")
    te = tuple(s.echo_time for s in sidecars)
    if not np.all(np.diff(te) > 0):
        files = ", ".join(f"{_echo_files(n)[1]}: {t:g} s" for n, t in zip(numbers, te,
                                                                         strict=True))
        raise ValueError(f"{who}: echo times in {folder} must be distinct and increase with "
                         f"the echo number; got {files}.")
    return (np.stack(signals, axis=-1), te, float(trs[0]), sidecars[0].n_skip,
            sidecars[0].flip_angle, first_image, folder / names[0])


def _read_single(folder, who, allow_unusual_timing):
    dsc_path = folder / _SIGNAL_FILE
    if not dsc_path.exists() and (folder / PARTICIPANTS_FILE).exists():
        raise ValueError(f"{who}: {folder} is a cohort folder ({PARTICIPANTS_FILE}), not an "
                         "exam folder; give one of its subject folders (sub-<id>).")
    if not dsc_path.exists() and not any(_ECHO_PATTERN.fullmatch(p.name)
                                         for p in folder.iterdir()):
        raise FileNotFoundError(f"{who}: missing DSC file {dsc_path} (or dsc_echo-<n>.nii.gz "
                                "files for multi-echo).")
    image, signal = _read_signal(dsc_path, who, "DSC")
    sidecar = read_sidecar(folder / _SIDECAR_FILE, who,
                           allow_unusual_timing=allow_unusual_timing)
    return (signal, sidecar.echo_time, sidecar.repetition_time, sidecar.n_skip,
            sidecar.flip_angle, image, dsc_path)


def _non_finite_as_zero(signal, who, path):
    """NaN or infinite samples set to 0, with one warning counting their voxels.

    A zero sample makes its voxel degenerate (no logarithm): its maps are
    NaN and the other voxels are computed as without it, as for a
    non-positive sample.
    """
    finite = np.isfinite(signal)
    if finite.all():
        return signal
    bad = ~finite.reshape(*signal.shape[:3], -1).all(axis=-1)
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    warn(f"{who}: {int(bad.sum())} voxel(s) of {path} (first: voxel {first}) hold NaN or "
         "infinite samples; they are treated as a zero signal: their maps are NaN.",
         UserWarning)
    return np.where(finite, signal, np.float32(0)).astype(signal.dtype, copy=False)


def load_exam(folder, subject_id=None, *, grade=None, extra=None, require_rois=True,
              require_aif=True, allow_unusual_timing=False):
    """Load one exam from its folder (layout in the module docstring).

    A folder with ``dsc_echo-<n>.nii.gz`` files (and no ``dsc.nii.gz``) is
    a multi-echo exam: the signal is 5-D and ``te`` a tuple.

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
        if present (maps need only ``brain``, and ``aif`` unless it is
        selected automatically). Without ``brain_mask.nii.gz`` the brain
        mask is computed from the baseline images
        (:func:`~skperfusion.exam.brain_mask.compute_brain_mask`) and
        ``extra["brain_mask"]`` is ``"computed"``.
    require_aif : bool, default=True
        Require ``aif_mask.nii.gz``; False when the AIF is selected
        automatically (``ExamToCurves(aif="auto")``, ``--aif auto``). It is
        loaded whenever present.
    allow_unusual_timing : bool, default=False
        Accept echo and repetition times outside the plausible DSC ranges
        (:func:`~skperfusion.exam.bids.check_timing`).

    Returns
    -------
    exam : Exam
        Signal as float32; ``vof`` mask and ground truth attached when
        their files exist.

    Raises
    ------
    FileNotFoundError
        A required file (DSC, sidecar, mask) is missing.
    ValueError
        Corrupt NIfTI, non-4-D DSC, sidecar without valid TE/TR, mask of
        another shape or on another grid (affines differing by more than
        :data:`AFFINE_TOLERANCE_MM`, see :func:`check_geometry`), empty
        mask, unknown grade; echoes of different TR, shape, frame count or
        grid, a lone ``dsc_echo-1``, equal echo times. Messages name the
        subject and the file.
    """
    folder = Path(folder)
    subject_id = folder.name if subject_id is None else str(subject_id)
    who = f"subject {subject_id}"
    if not folder.is_dir():
        raise FileNotFoundError(f"{who}: exam folder {folder} does not exist.")
    if grade is not None and grade not in GRADES:
        raise ValueError(f"{who}: unknown grade {grade!r}; expected one of {GRADES}.")
    multi_echo = any(_ECHO_PATTERN.fullmatch(p.name) for p in folder.iterdir())
    signal, te, tr, n_skip, flip_angle, image, image_path = (
        _read_echoes if multi_echo else _read_single)(folder, who, allow_unusual_timing)
    n_frames = signal.shape[3]
    sidecar_path = image_path.with_name(image_path.name.removesuffix(".nii.gz") + ".json")
    if n_skip >= n_frames - 1:
        raise ValueError(f"{who}: {NON_STEADY_KEY}={n_skip} in {sidecar_path} leaves fewer "
                         f"than 2 of the {n_frames} frames of {image_path}; it must be below "
                         f"{n_frames - 1}.")
    signal = _non_finite_as_zero(signal, who, image_path)
    if 0 < n_skip < n_frames - 1 and n_frames - n_skip < _MIN_KEPT_FRAMES:
        warn(f"{who}: {NON_STEADY_KEY}={n_skip} in the sidecar of {folder} leaves "
             f"{n_frames - n_skip} of {n_frames} frames, too few for a baseline and "
             "a bolus passage; check the sidecar.", UserWarning)
    masks = {}
    for name in MASK_NAMES:
        path = folder / _mask_file(name)
        optional = name in ("vof", "brain") or (name in _ROI_MASKS and not require_rois) or (
            name == "aif" and not require_aif)
        if optional and not path.exists():
            continue
        if name == "aif" and not path.exists():
            raise FileNotFoundError(f"{who}: missing aif mask file {path}; without one, select "
                                    "the arterial voxels automatically (aif='auto', "
                                    "--aif auto).")
        mask_image, data = read_nifti(path, who, f"{name} mask")
        if data.shape != signal.shape[:3]:
            raise ValueError(f"{who}: {name} mask {path} has shape {data.shape}; the DSC image "
                             f"has spatial shape {signal.shape[:3]}.")
        check_geometry(mask_image, path, image, image_path, who, f"{name} mask")
        if not np.any(data):
            raise ValueError(f"{who}: {name} mask {path} is empty.")
        masks[name] = data != 0
    if "brain" not in masks:  # computed from the baseline images, and said so in extra
        masks["brain"] = compute_brain_mask(signal, n_skip)
        extra = {**(extra or {}), "brain_mask": "computed"}
    ground_truth = {}
    for name in GROUND_TRUTH_NAMES:
        path = folder / _gt_file(name)
        if path.exists():
            truth_image, ground_truth[name] = read_nifti(path, who, f"ground-truth {name}",
                                                         np.float64)
            check_geometry(truth_image, path, image, image_path, who, f"ground-truth {name}")
    try:
        return Exam(signal=signal, te=te, tr=tr, affine=image.affine, masks=masks,
                    subject_id=subject_id, grade=grade, header=image.header,
                    ground_truth=ground_truth or None, extra=dict(extra or {}), n_skip=n_skip,
                    flip_angle=flip_angle)
    except ValueError as exc:
        raise ValueError(f"{exc} (files in {folder})") from exc


def load_cohort(root, n_jobs=None, *, require_rois=True, require_aif=True,
                allow_external_links=False, allow_unusual_timing=False):
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
    require_aif : bool, default=True
        Require an ``aif`` mask in every exam (False for automatic AIF
        selection).
    allow_external_links : bool, default=False
        Accept subject folders that are symbolic links leading outside
        ``root``; by default they are refused, naming the row.
    allow_unusual_timing : bool, default=False
        Accept echo and repetition times outside the plausible DSC ranges.

    Returns
    -------
    exams : list of Exam
        In ``participants.tsv`` order, with ``grade`` and the other columns
        in ``extra``.
    """
    root = Path(root)
    table = read_participants(root)
    for row, subject in enumerate(table["participant_id"], start=1):
        check_inside(root / subject, root, allow_links=allow_external_links,
                     what=f"subject folder of {subject} (row {row} of participants.tsv)")
    extra_columns = [c for c in table.columns if c not in ("participant_id", "grade")]
    rows = table.to_dict(orient="records")
    # Threads by default: reading is I/O and zlib, which release the GIL, and
    # processes would pickle every 4-D signal back; a joblib backend set by
    # the caller (e.g. dask) still takes precedence.
    return Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(load_exam)(root / row["participant_id"], row["participant_id"],
                           grade=row["grade"], extra={c: row[c] for c in extra_columns},
                           require_rois=require_rois, require_aif=require_aif,
                           allow_unusual_timing=allow_unusual_timing)
        for row in rows
    )


def _signal_image(signal, exam):
    header = nib.Nifti1Header()
    header.set_xyzt_units(xyz="mm", t="sec")
    image = nib.Nifti1Image(np.asarray(signal, dtype=np.float32), exam.affine, header=header)
    image.header.set_zooms((*image.header.get_zooms()[:3], exam.tr))
    return image


def _text_writer(text):
    return lambda temp: temp.write_text(text)


def write_exam(exam, folder):
    """Write an exam in the on-disk layout (no ``participants.tsv``).

    A single-echo exam becomes ``dsc.nii.gz`` + ``dsc.json``; a multi-echo
    one ``dsc_echo-<n>.nii.gz`` + ``dsc_echo-<n>.json`` for ``n = 1..E``.

    Parameters
    ----------
    exam : Exam
        The exam; masks, ground truth, ``n_skip`` and the flip angle are
        written too.
    folder : str or path-like
        The ``sub-<id>`` folder, created if needed.

    Returns
    -------
    paths : list of pathlib.Path
        The written files (atomically, as in
        :func:`~skperfusion.exam.save_maps`).
    """
    writers = {}
    if exam.n_echoes == 1:
        writers[_SIGNAL_FILE] = nifti_writer(_signal_image(exam.signal, exam))
        writers[_SIDECAR_FILE] = _text_writer(sidecar_text(
            exam.te, exam.tr, n_skip=exam.n_skip, flip_angle=exam.flip_angle))
    else:
        for index, te in enumerate(exam.echo_times):
            image_name, json_name = _echo_files(index + 1)
            writers[image_name] = nifti_writer(_signal_image(exam.signal[..., index], exam))
            writers[json_name] = _text_writer(sidecar_text(
                te, exam.tr, n_skip=exam.n_skip, flip_angle=exam.flip_angle))
    for name, mask in exam.masks.items():
        writers[_mask_file(name)] = nifti_writer(mask_image(mask, exam))
    for name, volume in (exam.ground_truth or {}).items():
        writers[_gt_file(name)] = nifti_writer(map_image(
            volume, exam, f"ground truth {name} {MAP_UNITS[name]}"))
    return atomic_write(writers, folder)
