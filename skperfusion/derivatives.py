"""Perfusion maps as a BIDS derivatives dataset: names, JSON sidecars, provenance.

The layout follows the BIDS derivatives convention of NiPreps tools
(fMRIPrep, ASLPrep)::

    OUT/
      dataset_description.json        Name, BIDSVersion, DatasetType "derivative", GeneratedBy
      sub-<id>[_ses-<s>]_desc-<method>_report.html     the QC report (see skperfusion.report)
      index.html                      links to every report of the folder (cohort runs)
      sub-<id>/[ses-<s>/]perf/
        sub-<id>[_ses-<s>]_desc-<method>_cbf.nii.gz    and .json (sidecar)
        ..._desc-<method>_cbv, _mtt, _tmax, _rcbf, _rcbv, _k2 (.nii.gz + .json)
        ..._desc-<method>_aifmask.nii.gz               the arterial voxels
        ..._desc-<method>_aif.tsv                      the AIF (time_s, concentration)

Every file name carries the method as its ``desc`` label, so one folder
holds the maps of several methods side by side. A map the method does not
estimate (all NaN, e.g. the paper's PHAE has no Tmax) is not written; the
sidecars of the others say so (``MapsNotWritten``). Each sidecar records
what is needed to compute the map again: the method and its parameters,
the exam-to-curves settings (:class:`~skperfusion.exam.ExamToCurves`), the
mapper's grid, the AIF used, the QC summary, the input files and the
software versions (:func:`rerun_settings` reads them back).
"""

import hashlib
import json
import re
from importlib import metadata
from pathlib import Path

import numpy as np

from . import __version__
from ._docs import fill_doc
from ._io import atomic_write
from ._options import AIF_FILES
from .exam.model import MAP_UNITS

__all__ = ["BIDS_VERSION", "MAP_DESCRIPTIONS", "bids_label", "dataset_description",
           "derivative_writers", "map_file_name", "possible_outputs", "quality_control",
           "registry_name", "report_writers", "rerun_settings", "software_versions",
           "subject_folder", "write_dataset_description", "write_derivatives"]

BIDS_VERSION = "1.10.0"
"""Version of the BIDS specification the derivatives follow."""

MAP_DESCRIPTIONS = {
    "CBF": "Cerebral blood flow: peak of the deconvolved impulse response CBF·R(t) "
           "(brain density 1.04 g/ml, haematocrit correction kH 0.73).",
    "CBV": "Cerebral blood volume: area of the tissue curve over the area of the AIF "
           "(brain density and haematocrit corrected).",
    "MTT": "Mean transit time, CBV/CBF (central volume theorem).",
    "Tmax": "Time to the maximum of the residue function (bolus delay relative to the AIF).",
    "rCBF": "CBF divided by its mean over the normal-appearing white matter "
            "(nawm_mask.nii.gz).",
    "rCBV": "CBV divided by its mean over the normal-appearing white matter "
            "(nawm_mask.nii.gz).",
    "K2": "Contrast-leakage rate constant of the leakage correction (positive: T2* "
          "dominant extravasation, negative: T1 dominant).",
}
"""One-sentence description of each map, the ``Description`` of its sidecar."""

_VERSIONED = ("numpy", "scipy", "scikit-learn", "torch", "skorch", "nibabel", "pandas")
_DATATYPE = "perf"
# The AIF files (_options.AIF_FILES: mask, curve, plot) as suffix and extension.
_AIF_FILES = (("aifmask", ".nii.gz"), ("aif", ".tsv"), ("aif", ".png"))
_NOT_ESTIMATED = "not estimated by this method (all NaN); not written"
# Registry names such as "phae-gamma" become BIDS labels (letters and digits only).
_LABEL = re.compile(r"[^0-9A-Za-z]")


def bids_label(text, *, what="label"):
    """A BIDS entity label: ``text`` with every character but letters and digits removed.

    Parameters
    ----------
    text : str
        E.g. a subject id ``"sub-001"`` (its ``sub-`` prefix is kept out by
        the caller) or a registry name ``"phae-gamma"``.
    what : str, default="label"
        What it is, for the error message.

    Returns
    -------
    label : str

    Raises
    ------
    ValueError
        Nothing is left.

    Examples
    --------
    >>> from skperfusion.derivatives import bids_label
    >>> bids_label("phae-gamma"), bids_label("001")
    ('phaegamma', '001')
    """
    label = _LABEL.sub("", str(text))
    if not label:
        raise ValueError(f"{what} {text!r} has no letter or digit; a BIDS label needs one.")
    return label


def _entities(subject, session):
    subject = bids_label(str(subject).removeprefix("sub-"), what="subject id")
    stem = f"sub-{subject}"
    if session is not None:
        stem += f"_ses-{bids_label(str(session).removeprefix('ses-'), what='session')}"
    return stem


def subject_folder(subject, session=None):
    """Folder of a subject's maps inside the derivatives dataset.

    Parameters
    ----------
    subject : str
        Subject id, with or without its ``sub-`` prefix.
    session : str or None, default=None
        Session label, with or without its ``ses-`` prefix.

    Returns
    -------
    folder : pathlib.Path
        ``sub-<id>[/ses-<s>]/perf``, relative to the dataset root.
    """
    parts = _entities(subject, session).split("_")
    return Path(*parts, _DATATYPE)


def map_file_name(subject, name, desc, *, session=None, extension=".nii.gz"):
    """BIDS-derivative file name of a map.

    Parameters
    ----------
    subject : str
        Subject id, with or without its ``sub-`` prefix.
    name : str
        Map name (``"CBF"``, ``"rCBV"``, ``"K2"``, ...) or another suffix
        (``"aif"``); written in lower case.
    desc : str
        The ``desc`` label, usually the method's registry name.
    session : str or None, default=None
        Session label.
    extension : str, default=".nii.gz"
        ``".json"`` for the sidecar.

    Returns
    -------
    name : str
        ``sub-<id>[_ses-<s>]_desc-<desc>_<name><extension>``.

    Examples
    --------
    >>> from skperfusion.derivatives import map_file_name
    >>> map_file_name("sub-001", "CBF", "osvd", session="01")
    'sub-001_ses-01_desc-osvd_cbf.nii.gz'
    """
    desc = bids_label(desc, what="desc")
    return f"{_entities(subject, session)}_desc-{desc}_{name.lower()}{extension}"


def software_versions():
    """Versions of skperfusion and the libraries that compute the maps.

    Read from the installed distributions' metadata (nothing is imported).

    Returns
    -------
    versions : dict of str to str
        ``"skperfusion"``, ``"numpy"``, ``"scipy"``, ``"scikit-learn"``,
        ``"torch"``, ``"skorch"``, ``"nibabel"``, ``"pandas"``; ``"not
        installed"`` for a missing one.
    """
    versions = {"skperfusion": __version__}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def dataset_description(name="skperfusion perfusion maps"):
    """The ``dataset_description.json`` of a derivatives dataset.

    Parameters
    ----------
    name : str, default="skperfusion perfusion maps"
        The dataset's ``Name``.

    Returns
    -------
    description : dict
        ``Name``, ``BIDSVersion``, ``DatasetType`` (``"derivative"``) and
        ``GeneratedBy`` (skperfusion and its version).
    """
    return {"Name": name, "BIDSVersion": BIDS_VERSION, "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "skperfusion", "Version": __version__}]}


@fill_doc
def write_dataset_description(out_dir):
    """Write ``dataset_description.json`` at the root of a derivatives dataset.

    A description written by skperfusion is rewritten (it only records the
    version); one of another program means ``out_dir`` is another dataset,
    and is refused.

    %(dataset_root_returns)s
    path : pathlib.Path

    Raises
    ------
    FileExistsError
        ``out_dir`` holds a ``dataset_description.json`` not written by
        skperfusion.
    """
    path = Path(out_dir) / "dataset_description.json"
    if path.is_file():
        try:
            generated = json.loads(path.read_text(encoding="utf-8")).get("GeneratedBy", [{}])
            ours = generated[0].get("Name") == "skperfusion"
        except (ValueError, AttributeError, IndexError, TypeError):
            ours = False
        if not ours:
            raise FileExistsError(f"{path} was not written by skperfusion: {out_dir} is "
                                  "another dataset; choose another output folder.")
    text = json.dumps(dataset_description(), indent=2) + "\n"
    return atomic_write({path.name: lambda temp: temp.write_text(text, encoding="utf-8")},
                        out_dir)[0]


def _json_safe(value):
    """``value`` as JSON (numbers, strings, lists, dicts); other objects as their repr."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def _estimator(deconvolver):
    return getattr(deconvolver, "estimator", deconvolver)  # inside a FrozenEstimator


def registry_name(deconvolver):
    """The registry name of a deconvolver's class (e.g. ``"osvd"``).

    Parameters
    ----------
    deconvolver : estimator
        A deconvolver, possibly inside a :class:`~sklearn.frozen.FrozenEstimator`.

    Returns
    -------
    name : str

    Raises
    ------
    ValueError
        Its class is not registered.
    """
    from .deconvolution import available_deconvolvers, get_deconvolver

    cls = type(_estimator(deconvolver))
    for name in available_deconvolvers():
        if get_deconvolver(name).load() is cls:
            return name
    raise ValueError(f"{cls.__name__} is not a registered deconvolver; pass method=NAME.")


def _method_record(method, deconvolver, model):
    from .deconvolution import get_deconvolver

    spec = get_deconvolver(method)
    estimator = _estimator(deconvolver)
    params = {k: v for k, v in estimator.get_params(deep=False).items()
              if k not in ("callbacks", "verbose")}
    record = {"Name": spec.name, "Label": spec.label, "Estimator": type(estimator).__name__,
              "Parameters": _json_safe(params)}
    if model is not None:
        record["ModelFile"] = str(model)
        record["ModelSHA256"] = hashlib.sha256(Path(model).read_bytes()).hexdigest()
    return record


def _aif_record(aif, curves):
    source = {"mask": "aif_mask.nii.gz", "auto": "selected automatically among the brain "
              "voxels"}.get(str(curves.aif), f"curve read from {curves.aif}")
    peak = int(np.argmax(aif.curve))
    return {"Source": source, "Voxels": int(aif.voxels.sum()), "Scale": float(aif.scale),
            "Unit": aif.unit, "Peak": float(aif.curve[peak]),
            "PeakTime": float(aif.times[peak])}


def quality_control(exam_maps, mapper):
    """The QC record of maps made by a mapper (:func:`skperfusion.qc.exam_qc`).

    Parameters
    ----------
    exam_maps : ExamMaps
        The maps, with their exam and AIF.
    mapper : PerfusionMapper
        The fitted mapper that made them: its exam-to-curves settings (leakage,
        relaxivity, AIF scaling) and whether its deconvolver is a bounded
        model fit go into the checks.

    Returns
    -------
    record : QCRecord
    """
    from .exam import ExamToCurves
    from .qc import exam_qc

    curves = mapper.curves if mapper.curves is not None else ExamToCurves()
    return exam_qc(exam_maps.exam, exam_maps.aif, exam_maps.maps,
                   mask=exam_maps.exam.mask(exam_maps.mask), leakage=curves.leakage,
                   relaxivity=curves.relaxivity, aif_scaling=curves.aif_scaling,
                   bounded_fit=getattr(_estimator(mapper.deconvolver_), "_bounded_fit", False))


def _is_empty(volume):
    return not np.isfinite(volume).any()


def derivative_writers(exam_maps, mapper, *, method=None, desc=None, session=None, sources=(),
                       model=None, qc=None, command=None, aif_plot=False):
    """Writers of one exam's derivative files, for :func:`~skperfusion._io.atomic_write`.

    Parameters
    ----------
    exam_maps : ExamMaps
        The maps (``CBF``, ``CBV``, ``MTT``, ``Tmax`` and any ``rCBF``,
        ``rCBV``, ``K2``) with the exam and its AIF.
    mapper : PerfusionMapper
        The fitted mapper that made the maps: its deconvolver's parameters,
        exam-to-curves step, grid and mask go into the sidecars.
    method : str or None, default=None
        Registry name of the deconvolver, the ``desc`` label; None finds it
        from the deconvolver's class (:func:`registry_name`).
    desc : str or None, default=None
        The ``desc`` label of the file names; None uses ``method``.
    session : str or None, default=None
        Session label.
    sources : sequence of str, default=()
        Input files read.
    model : path-like or None, default=None
        Model file of a trained method (recorded with its SHA-256).
    qc : dict or None, default=None
        QC record of the exam, copied into every sidecar.
    command : str or None, default=None
        The command line that produced the maps.
    aif_plot : bool, default=False
        Also write a PNG of the AIF (:func:`skperfusion.aif.plot_aif`).

    Returns
    -------
    folder : pathlib.Path
        The subject's folder, relative to the dataset root (:func:`subject_folder`).
    writers : dict of str to callable
        File name to writer: each written map and its sidecar, the AIF mask and curve.
    sidecar : dict
        The sidecar fields shared by the maps (also used by the QC report).
    """
    from .aif import aif_writers
    from .exam import ExamToCurves
    from .exam.nifti import map_writers

    exam = exam_maps.exam
    subject = exam.subject_id
    method = registry_name(mapper.deconvolver_) if method is None else method
    desc = method if desc is None else desc
    curves = mapper.curves if mapper.curves is not None else ExamToCurves()
    empty = sorted(name for name, volume in exam_maps.maps.items() if _is_empty(volume))
    written = {name: volume for name, volume in exam_maps.maps.items() if name not in empty}
    shared = {
        "Method": _method_record(method, mapper.deconvolver_, model),
        "ExamToCurves": _json_safe(curves.get_params(deep=False)),
        "PerfusionMapper": {"tr": mapper.tr_, "n_times": mapper.n_times_, "mask": mapper.mask},
        "MappedMask": exam_maps.mask,
        "AIF": _aif_record(exam_maps.aif, curves) if exam_maps.aif is not None else None,
        "MapsNotWritten": {name.lower(): _NOT_ESTIMATED for name in empty},
        "QC": _json_safe(qc or {}),
        "Sources": [str(source) for source in sources],
        "CommandLine": command,
        "SoftwareVersions": software_versions(),
    }
    writers = {}
    for name, writer in map_writers(written, exam).items():
        map_name = name.removesuffix(".nii.gz")
        sidecar = {"Units": MAP_UNITS.get(map_name, "arbitrary"),
                   "Description": MAP_DESCRIPTIONS.get(map_name, map_name), **shared}
        text = json.dumps(sidecar, indent=2) + "\n"
        writers[map_file_name(subject, map_name, desc, session=session)] = writer
        writers[map_file_name(subject, map_name, desc, session=session, extension=".json")] = (
            lambda temp, t=text: temp.write_text(t, encoding="utf-8"))
    if exam_maps.aif is not None:
        aif = aif_writers(exam_maps.aif, exam, plot=aif_plot)
        for (suffix, extension), name in zip(_AIF_FILES, AIF_FILES, strict=True):
            if name in aif:
                writers[map_file_name(subject, suffix, desc, session=session,
                                      extension=extension)] = aif[name]
    return subject_folder(subject, session), writers, shared


def possible_outputs(subject, method, *, session=None):
    """Every file name :func:`derivative_writers` may write for a subject and method.

    Parameters
    ----------
    subject : str
        Subject id.
    method : str
        Registry name (the ``desc`` label).
    session : str or None, default=None
        Session label.

    Returns
    -------
    names : list of str
        Maps and sidecars (every map name, K2 included), AIF mask, curve and plot.
    """
    names = []
    for name in MAP_DESCRIPTIONS:
        names += [map_file_name(subject, name, method, session=session, extension=extension)
                  for extension in (".nii.gz", ".json")]
    return [*names, *(map_file_name(subject, suffix, method, session=session, extension=extension)
                      for suffix, extension in _AIF_FILES)]


def write_derivatives(exam_maps, out_dir, mapper, *, method=None, desc=None, session=None,
                      sources=(), model=None, qc=None, command=None, report=True,
                      overwrite=True):
    """Write one exam's maps as a BIDS derivatives dataset (layout in the module docstring).

    The subject's files are written as one set
    (:func:`~skperfusion._io.atomic_write`): every map with its JSON
    sidecar, the AIF mask and curve; maps the method does not estimate (all
    NaN) are left out, and an earlier run's files of the same subject and
    method that this one lacks are removed with the commit. Then the QC
    report (unless ``report`` is False) and ``dataset_description.json``
    at the root.

    Parameters
    ----------
    exam_maps : ExamMaps
        The maps of one exam, e.g. an item of
        :meth:`PerfusionMapper.transform <skperfusion.exam_estimators.PerfusionMapper.transform>`,
        with :func:`~skperfusion.exam_estimators.normalized_maps` merged in.
    out_dir : str or path-like
        The derivatives dataset root, created if needed.
    mapper : PerfusionMapper
        The fitted mapper that made the maps.
    method, desc, session, sources, model, command
        As in :func:`derivative_writers`.
    qc : dict or None, default=None
        QC record of the exam; None computes it (:func:`quality_control`).
    report : bool, default=True
        Also write the HTML QC report (:func:`skperfusion.report.exam_report`).
    overwrite : bool, default=True
        Replace the files of an earlier run; False refuses (nothing written)
        when one of them exists at commit time.

    Returns
    -------
    paths : list of pathlib.Path
        The written files.
    """
    out_dir = Path(out_dir)
    method = registry_name(mapper.deconvolver_) if method is None else method
    desc = method if desc is None else desc
    qc = quality_control(exam_maps, mapper).to_dict() if qc is None else qc
    folder, writers, sidecar = derivative_writers(
        exam_maps, mapper, method=method, desc=desc, session=session, sources=sources,
        model=model, qc=qc, command=command)
    subject = exam_maps.exam.subject_id
    paths = atomic_write(writers, out_dir / folder,
                         remove=possible_outputs(subject, desc, session=session),
                         overwrite=overwrite)
    if report:
        paths += atomic_write(report_writers(exam_maps, mapper, sidecar, desc, session=session),
                              out_dir, overwrite=overwrite)
    paths.append(write_dataset_description(out_dir))
    return paths


def report_writers(exam_maps, mapper, sidecar, desc, *, session=None):
    """Writer of an exam's QC report, for :func:`~skperfusion._io.atomic_write` at the root.

    Parameters
    ----------
    exam_maps : ExamMaps
        The maps.
    mapper : PerfusionMapper
        The fitted mapper that made them (for the voxel fits).
    sidecar : dict
        The shared sidecar fields (:func:`derivative_writers`).
    desc : str
        The ``desc`` label.
    session : str or None, default=None
        Session label.

    Returns
    -------
    writers : dict of str to callable
        ``{report file name: writer}``.
    """
    from .report import exam_report, report_file_name
    from .report.figures import voxel_fits

    html = exam_report(exam_maps, sidecar, desc=desc, session=session,
                       fits=voxel_fits(mapper, exam_maps))
    name = report_file_name(exam_maps.exam.subject_id, desc, session=session)
    return {name: lambda temp: temp.write_text(html, encoding="utf-8")}


def rerun_settings(sidecar):
    """The estimators recorded in a map's sidecar, ready to compute the map again.

    Parameters
    ----------
    sidecar : str, path-like or dict
        A sidecar file written by :func:`write_derivatives`, or its content.

    Returns
    -------
    mapper : PerfusionMapper
        Not fitted: the recorded deconvolver (for a trained method, loaded
        from the recorded model file), exam-to-curves step, grid and mask.

    Raises
    ------
    ValueError
        The model file of a trained method changed since the maps were made.
    """
    from sklearn.frozen import FrozenEstimator

    from .deconvolution import get_deconvolver, make_deconvolver
    from .exam import ExamToCurves
    from .exam_estimators import PerfusionMapper

    if not isinstance(sidecar, dict):
        sidecar = json.loads(Path(sidecar).read_text(encoding="utf-8"))
    record = sidecar["Method"]
    spec = get_deconvolver(record["Name"])
    if spec.trainable:
        model = record["ModelFile"]
        if hashlib.sha256(Path(model).read_bytes()).hexdigest() != record["ModelSHA256"]:
            raise ValueError(f"model file {model} changed since the maps were made (SHA-256 "
                             "differs).")
        deconvolver = FrozenEstimator(spec.load().load(model))
    else:
        deconvolver = make_deconvolver(spec.name, **record["Parameters"])
    return PerfusionMapper(deconvolver, curves=ExamToCurves(**sidecar["ExamToCurves"]),
                           **sidecar["PerfusionMapper"])
