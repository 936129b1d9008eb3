"""NIfTI images of an exam: reading volumes, building map images, saving maps."""

import nibabel as nib
import numpy as np

from .._io import atomic_write
from .model import MAP_UNITS

__all__ = ["mask_image", "read_nifti", "save_maps"]


def read_nifti(path, who, what, dtype=np.float32):
    """Read a NIfTI image and its data, with errors naming the file.

    Parameters
    ----------
    path : pathlib.Path
        The image file.
    who : str
        Prefix of error messages, e.g. ``"subject sub-001"``.
    what : str
        What the file is, e.g. ``"DSC"`` or ``"brain mask"``.
    dtype : numpy dtype, default=numpy.float32
        Floating dtype of the returned data.

    Returns
    -------
    image : nibabel.Nifti1Image
    data : ndarray
        The image data (scaled by the header's slope and intercept).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file cannot be read as NIfTI.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{who}: missing {what} file {path}.")
    try:
        image = nib.load(path)
        data = np.asarray(image.get_fdata(dtype=dtype))
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise ValueError(f"{who}: cannot read {what} file {path}: {exc}") from exc
    return image, data


def nifti_writer(image):
    """A writer for :func:`~skperfusion._io.atomic_write` saving ``image``."""
    return lambda temp: nib.save(image, temp)


def map_image(volume, exam, description):
    """Float32 NIfTI image of a 3-D map with the exam's affine and header geometry.

    Parameters
    ----------
    volume : ndarray of shape (X, Y, Z)
        The map.
    exam : Exam
        Geometry source (affine, DSC header).
    description : str
        Header description (cut to 79 characters), e.g. its unit.

    Returns
    -------
    image : nibabel.Nifti1Image
    """
    header = exam.header.copy() if exam.header is not None else nib.Nifti1Header()
    if not isinstance(header, nib.Nifti1Header):
        header = nib.Nifti1Header.from_header(header)
    image = nib.Nifti1Image(np.asarray(volume, dtype=np.float32), exam.affine, header=header)
    image.header.set_data_dtype(np.float32)
    image.header.set_xyzt_units(xyz="mm")
    image.header["descrip"] = description[:79].encode()
    image.header["scl_slope"], image.header["scl_inter"] = 1.0, 0.0
    return image


def mask_image(mask, exam):
    """Uint8 NIfTI image of a mask with the exam's affine and header codes.

    Parameters
    ----------
    mask : ndarray of bool, shape (X, Y, Z)
        The voxels (1 inside, 0 outside).
    exam : Exam
        Geometry source: the affine, and the DSC header's qform/sform codes,
        so that the mask lands in the same space as the maps.

    Returns
    -------
    image : nibabel.Nifti1Image
    """
    header = map_image(mask, exam, "skperfusion mask").header
    header.set_data_dtype(np.uint8)
    return nib.Nifti1Image(np.asarray(mask, dtype=np.uint8), exam.affine, header=header)


def map_writers(maps, exam, prefix=""):
    """Writers (file name -> callable) of maps, for :func:`~skperfusion._io.atomic_write`.

    Parameters
    ----------
    maps : dict of str to ndarray of shape (X, Y, Z)
        Maps by name; names of :data:`~skperfusion.exam.MAP_UNITS` get their
        unit in the header description.
    exam : Exam
        The exam the maps belong to (geometry source).
    prefix : str, default=""
        File name prefix; files are ``<prefix><name>.nii.gz``.

    Returns
    -------
    writers : dict of str to callable
    """
    writers = {}
    for name, volume in maps.items():
        volume = exam._checked_volume(volume, f"{name} map")
        unit = MAP_UNITS.get(name, "")
        writers[f"{prefix}{name}.nii.gz"] = nifti_writer(
            map_image(volume, exam, f"skperfusion {name} {unit}".strip()))
    return writers


def save_maps(maps, exam, out_dir, *, prefix=""):
    """Save perfusion maps as NIfTI with the exam's affine and header geometry.

    Written atomically: every map goes to a temporary file in ``out_dir``
    and is renamed only once all maps are written, so a failed or
    interrupted run leaves no half-written (or partial set of) maps.

    Parameters
    ----------
    maps : dict of str to ndarray of shape (X, Y, Z)
        Maps by name, e.g. ``{"CBF": ..., "CBV": ..., "MTT": ..., "Tmax": ...}``
        (ml/100g/min, ml/100g, s, s), ``"rCBF"``/``"rCBV"`` (dimensionless);
        NaN outside the brain.
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
    return atomic_write(map_writers(maps, exam, prefix), out_dir)
