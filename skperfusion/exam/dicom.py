"""DICOM in (with dcm2niix) and out (with pydicom) for DSC exams.

:func:`import_dicom` converts one DSC series, single- or multi-echo, into
the exam layout of :mod:`skperfusion.exam.layout` with the ``dcm2niix``
converter (``pip install skperfusion[dicom]``): ``dsc.nii.gz`` +
``dsc.json``, or ``dsc_echo-<n>.nii.gz`` + ``dsc_echo-<n>.json`` per echo,
the sidecars in BIDS units (``EchoTime``, ``RepetitionTime`` in seconds).
:func:`write_dicom` writes an exam as a DICOM series (``pydicom``), for
synthetic test and demonstration data.
"""

import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .._io import atomic_directory, check_outputs
from .bids import NON_STEADY_KEY, read_sidecar
from .nifti import read_nifti

__all__ = ["import_dicom", "write_dicom"]

_UINT16_MAX = 4000  # stored values use 12 bits, like most scanners


def _dcm2niix():
    try:
        import dcm2niix
    except ImportError as exc:
        raise ImportError("DICOM import needs the dcm2niix package: pip install "
                          "'skperfusion[dicom]' (or pip install dcm2niix).") from exc
    return dcm2niix


def _convert(dicom_dir, raw):
    """Run dcm2niix on ``dicom_dir`` into ``raw``; (image, sidecar dict) per output."""
    result = _dcm2niix().main(["-b", "y", "-z", "y", "-f", "dsc_%s", "-o", str(raw),
                               str(dicom_dir)], capture_output=True, text=True)
    messages = " ".join(line.strip() for line in (result.stdout + result.stderr).splitlines()
                        if "error" in line.lower())
    images = sorted(raw.glob("*.nii.gz"))
    if result.returncode != 0 or not images:
        raise ValueError(f"dcm2niix found no convertible DICOM series in {dicom_dir} "
                         f"(exit code {result.returncode}){': ' + messages if messages else ''}.")
    _check_complete(result.stdout + result.stderr, dicom_dir)
    converted = []
    for image in images:
        sidecar = image.with_name(image.name.removesuffix(".nii.gz") + ".json")
        if not sidecar.is_file():
            raise ValueError(f"dcm2niix wrote no sidecar for {image.name} from {dicom_dir}.")
        converted.append((image, json.loads(sidecar.read_text())))
    return converted


def _frame_gaps(dicom_dir):
    """The gaps in the acquisition times of ``dicom_dir``'s files, as text (pydicom needed).

    Empty when pydicom is not installed or the files hold no ``AcquisitionTime``.
    """
    try:
        import pydicom
    except ImportError:
        return ""
    times = set()
    for path in Path(dicom_dir).rglob("*"):
        try:
            value = str(pydicom.dcmread(path, stop_before_pixels=True).AcquisitionTime)
        except Exception:  # not DICOM, damaged, no AcquisitionTime: dcm2niix reported it
            continue
        times.add(3600 * int(value[:2]) + 60 * int(value[2:4]) + float(value[4:]))
    steps = np.diff(sorted(times))
    if len(steps) < 2:
        return ""
    usual = float(np.median(steps))
    starts = sorted(times)
    gaps = [f"{steps[k]:.3g} s after the frame at {starts[k] - starts[0]:.3g} s"
            for k in np.flatnonzero(steps > 1.5 * usual)]
    return f"; gaps: {', '.join(gaps)} (TR {usual:.3g} s)" if gaps else ""


def _check_complete(log, dicom_dir):
    """Refuse a conversion that left files out or whose volumes are unevenly spaced.

    A missing or damaged frame file gives a series one volume short with a
    silent time gap, which dcm2niix only notes ("Seconds between volumes
    varies"); the maps of such a series are wrong.
    """
    found = sum(int(n) for n in re.findall(r"Found (\d+) DICOM file", log))
    converted = sum(int(n) for n in re.findall(r"Convert (\d+) DICOM", log))
    varies = "Seconds between volumes varies" in log
    if varies or converted < found:
        raise ValueError(f"DICOM series {dicom_dir} is incomplete: dcm2niix converted "
                         f"{converted} of the {found} DICOM files found"
                         f"{' and the time between volumes varies' if varies else ''} (a "
                         f"missing or damaged frame file){_frame_gaps(dicom_dir)}; give the "
                         "whole series.")


def import_dicom(dicom_dir, exam_dir, *, non_steady_state=0, overwrite=False,
                 allow_unusual_timing=False):
    """Convert one DSC DICOM series into an exam folder.

    Every file of ``dicom_dir`` (and its sub-folders) is converted with
    dcm2niix; the series must give one 4-D image per echo. One echo becomes
    ``dsc.nii.gz`` + ``dsc.json``, several ``dsc_echo-<n>.nii.gz`` +
    ``dsc_echo-<n>.json`` numbered by increasing echo time. The sidecars
    keep every field dcm2niix wrote (BIDS: ``EchoTime`` and
    ``RepetitionTime`` in seconds, ``FlipAngle`` in degrees). The folder is
    built beside ``exam_dir`` and renamed into place at the end, so a failed
    or interrupted import leaves nothing behind. Masks (``brain_mask.nii.gz``
    at least, and ``aif_mask.nii.gz`` unless the AIF is selected
    automatically) are added by the user.

    Parameters
    ----------
    dicom_dir : str or path-like
        Folder holding the DICOM files of one DSC series.
    exam_dir : str or path-like
        The exam folder to create (``sub-<id>``).
    non_steady_state : int, default=0
        Leading frames acquired before the magnetisation reached steady
        state (from the protocol; DICOM does not record it), written as
        ``NonSteadyStateVolumes`` and left out of the baseline.
    overwrite : bool, default=False
        Replace an existing ``exam_dir`` as a whole; without it an existing
        non-empty folder is refused.
    allow_unusual_timing : bool, default=False
        Accept echo and repetition times outside the plausible DSC ranges
        (:func:`~skperfusion.exam.bids.check_timing`), e.g. a DICOM
        ``EchoTime`` that is really so short.

    Returns
    -------
    paths : list of pathlib.Path
        The written files, in ``exam_dir``.

    Raises
    ------
    ImportError
        dcm2niix is not installed.
    FileExistsError
        ``exam_dir`` exists and ``overwrite`` is False.
    ValueError
        ``exam_dir`` inside ``dicom_dir``, no convertible series, several
        series, files dcm2niix left out or unevenly spaced volumes (a
        missing or damaged frame), implausible timing (an ``EchoTime``
        stored in seconds), an output that is not 4-D (X, Y, Z, T), echoes of different
        TR, frame count or equal echo times, or a sidecar without valid
        timing; messages name the files.
    """
    dicom_dir, exam_dir = Path(dicom_dir), Path(exam_dir)
    if isinstance(non_steady_state, bool) or not isinstance(non_steady_state, int | np.integer) \
            or non_steady_state < 0:
        raise ValueError(f"non_steady_state must be a non-negative number of frames; got "
                         f"{non_steady_state!r}.")
    if not dicom_dir.is_dir():
        raise FileNotFoundError(f"DICOM folder {dicom_dir} does not exist.")
    check_outputs([exam_dir], inputs=[dicom_dir], overwrite=overwrite, folders=True)
    if dicom_dir.resolve() in exam_dir.resolve().parents:
        raise ValueError(f"refusing to write {exam_dir} inside the DICOM folder {dicom_dir}: "
                         "a later import would read it back; choose another output.")
    with tempfile.TemporaryDirectory(prefix="skperfusion-dcm2niix-") as raw:
        converted = _convert(dicom_dir, Path(raw))
        series = {sidecar.get("SeriesNumber") for _, sidecar in converted}
        if len(series) > 1:
            raise ValueError(f"{dicom_dir} holds {len(series)} DICOM series "
                             f"({sorted(map(str, series))}); give a folder with the DSC series "
                             "only.")
        who = f"DICOM series {dicom_dir}"
        echoes = []
        for image, sidecar in converted:
            timing = read_sidecar(image.with_name(image.name.removesuffix(".nii.gz") + ".json"),
                                  who, source=f"the DICOM headers of {dicom_dir}",
                                  allow_unusual_timing=allow_unusual_timing)
            _, data = read_nifti(image, who, "converted DSC")
            if data.ndim != 4 or data.shape[3] < 2:
                raise ValueError(f"{who}: dcm2niix gave {image.name} of shape {data.shape}; a "
                                 "DSC series is 4-D (X, Y, Z, T), one volume per time point.")
            echoes.append((timing.echo_time, timing.repetition_time, data.shape, image, sidecar))
        echoes.sort(key=lambda echo: echo[0])
        _check_echoes(echoes, who)
        names = (["dsc"] if len(echoes) == 1
                 else [f"dsc_echo-{n}" for n in range(1, len(echoes) + 1)])
        with atomic_directory(exam_dir, overwrite=overwrite) as folder:
            for name, (_, _, shape, image, sidecar) in zip(names, echoes, strict=True):
                if non_steady_state >= shape[3] - 1:
                    raise ValueError(f"{who}: non_steady_state={non_steady_state} leaves fewer "
                                     f"than 2 of the {shape[3]} frames.")
                if non_steady_state:
                    sidecar = {**sidecar, NON_STEADY_KEY: int(non_steady_state)}
                shutil.copyfile(image, folder / f"{name}.nii.gz")
                (folder / f"{name}.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return sorted(exam_dir.iterdir())


def _check_echoes(echoes, who):
    te = [echo[0] for echo in echoes]
    if len(set(te)) < len(te):
        raise ValueError(f"{who}: dcm2niix gave {len(te)} images with echo times {te} s; "
                         "several images of one echo time are not one DSC series.")
    for _, tr, shape, image, _ in echoes[1:]:
        if not np.isclose(tr, echoes[0][1], rtol=1e-3) or shape != echoes[0][2]:
            raise ValueError(f"{who}: echo {image.name} (TR {tr:g} s, shape {shape}) differs "
                             f"from {echoes[0][3].name} (TR {echoes[0][1]:g} s, shape "
                             f"{echoes[0][2]}); the echoes must come from one acquisition.")


def write_dicom(exam, folder, *, series_description="DSC perfusion"):
    """Write an exam's signal as a DICOM MR series, one file per slice, frame and echo.

    For synthetic data (tests, demonstrations): uncompressed MR Image
    Storage files with ``EchoTime``/``RepetitionTime`` in ms (the DICOM
    unit), ``EchoNumbers``, ``FlipAngle``, the exam's voxel size and
    position, and 12-bit values with ``RescaleSlope`` so that the stored
    signal is kept to 1 part in 4000. The voxel array read back by
    :func:`import_dicom` equals the exam's (so its masks still fit); the
    world orientation is not preserved. Masks and ground truth are not
    written.

    Parameters
    ----------
    exam : Exam
        The exam (axis-aligned affine expected).
    folder : str or path-like
        Output folder, created.
    series_description : str, default="DSC perfusion"
        DICOM ``SeriesDescription``.

    Returns
    -------
    paths : list of pathlib.Path
        The written files.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    signal = exam.signal if exam.n_echoes > 1 else exam.signal[..., None]
    slope = float(signal.max()) / _UINT16_MAX
    stored = np.round(signal / slope).astype(np.uint16)
    zooms = np.sqrt((exam.affine[:3, :3] ** 2).sum(axis=0))
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    paths, number = [], 0
    for echo, te in enumerate(exam.echo_times):
        for t in range(exam.n_times):
            for z in range(exam.shape[2]):
                number += 1
                meta = FileMetaDataset()
                meta.MediaStorageSOPClassUID = MRImageStorage
                meta.MediaStorageSOPInstanceUID = generate_uid()
                meta.TransferSyntaxUID = ExplicitVRLittleEndian
                ds = Dataset()
                ds.file_meta = meta
                ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
                ds.Modality, ds.Manufacturer = "MR", "skperfusion"
                ds.PatientName = ds.PatientID = exam.subject_id
                ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
                ds.FrameOfReferenceUID = frame
                ds.SeriesNumber, ds.InstanceNumber = 1, number
                ds.SeriesDescription = series_description
                ds.AcquisitionNumber = t + 1
                seconds = t * exam.tr
                ds.AcquisitionTime = f"{12 + int(seconds // 3600):02d}" \
                    f"{int(seconds % 3600 // 60):02d}{seconds % 60:09.6f}"
                ds.EchoTime, ds.RepetitionTime = 1000.0 * te, 1000.0 * exam.tr
                ds.EchoNumbers = echo + 1
                if exam.flip_angle is not None:
                    ds.FlipAngle = exam.flip_angle
                position = exam.affine[:3, :3] @ [0, 0, z] + exam.affine[:3, 3]
                ds.ImagePositionPatient = [float(v) for v in position]
                ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
                ds.SliceLocation, ds.SliceThickness = float(position[2]), float(zooms[2])
                ds.PixelSpacing = [float(zooms[1]), float(zooms[0])]
                ds.Rows, ds.Columns = exam.shape[1], exam.shape[0]
                ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
                ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
                ds.PixelRepresentation = 0
                ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", 0
                # Columns run along x, rows along -y: dcm2niix turns the patient
                # (LPS) rows back, so the NIfTI array equals the exam's.
                ds.PixelData = np.ascontiguousarray(stored[:, ::-1, z, t, echo].T).tobytes()
                path = folder / f"IM{number:05d}.dcm"
                ds.save_as(path, enforce_file_format=True)
                paths.append(path)
    return paths
