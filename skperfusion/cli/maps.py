"""``skperfusion maps``: perfusion maps of an exam or a cohort, as BIDS derivatives."""

import argparse
import re
import sys
from pathlib import Path

from .._options import (
    AIF_SCALINGS,
    AIF_STRATEGIES,
    LEAKAGE_METHODS,
    RELAXIVITY_MODELS,
)
from ..deconvolution._registry import available_deconvolvers, get_deconvolver
from ._args import (
    add_command,
    add_link_argument,
    add_parallel_arguments,
    add_precision_argument,
    add_quiet_argument,
    check_precision,
    check_torch_device,
    positive_int,
)
from ._scheduler import scheduler

HELP = "compute CBF/CBV/MTT/Tmax maps of an exam or a cohort with any registered deconvolver"
DETAILS = (
    "Input: an exam folder (sub-<id> or sub-<id>/ses-<s>) with dsc.nii.gz (4-D DSC signal) "
    "and dsc.json (EchoTime, RepetitionTime in seconds), or dsc_echo-<n>.nii.gz/.json for a "
    "multi-echo acquisition (all echoes are used: ΔR2* = ln[(S1/S1,0)/(S2/S2,0)]/(TE2-TE1), "
    "free of T1 leakage effects), brain_mask.nii.gz, and aif_mask.nii.gz unless --aif auto; "
    "or a cohort folder (participants.tsv, or sub-* folders; each may hold ses-* sessions), "
    "every exam of which is mapped (--participant-label to choose). The AIF is the mean "
    "arterial signal; single-echo signals become concentrations C = -ln(S/S0)/TE. Output: a "
    "BIDS derivatives dataset, dataset_description.json at its root and, per exam, "
    "sub-<id>[/ses-<s>]/perf/sub-<id>[_ses-<s>]_desc-<method>_<map>.nii.gz with map cbf "
    "(ml/100g/min), cbv (ml/100g), mtt (s), tmax (s), and where the exam has nawm_mask.nii.gz "
    "rcbf and rcbv (map divided by its NAWM mean, dimensionless), k2 (1/s) with --leakage; "
    "the input's affine, NaN outside the mask; each with a JSON sidecar (units, method and "
    "parameters, exam-to-curves settings, AIF, QC, input files, versions). A map the method "
    "does not estimate (all NaN) is not written. The AIF used: _aifmask.nii.gz (its voxels), "
    "_aif.tsv (time in s, concentration in 1/s, or mM with --relaxivity van_osch). An HTML "
    "QC report per exam at the root (index.html for a cohort) unless --no-report. Absolute "
    "CBF/CBV need --aif-scaling vof --relaxivity van_osch (AIF partial volume and the "
    "blood/tissue relaxivity difference); without them trust rCBF/rCBV and ratios. Each "
    "exam's files are written atomically, as one set."
)


def register(subparsers):
    """Add ``maps`` to the ``skperfusion`` sub-commands (``subparsers``).

    The ``--method`` choices are the names of the deconvolver registry.
    """
    parser = add_command(subparsers, "maps", HELP, DETAILS, run,
                         inputs={"input_dir": "exam folder (sub-<id>[/ses-<s>]) or cohort "
                                              "folder"},
                         output={"dest": "out_dir", "help": "output folder, the root of the "
                                                            "derivatives dataset"})
    trainable = [name for name in available_deconvolvers() if get_deconvolver(name).trainable]
    parser.add_argument("--method", choices=available_deconvolvers(), default="osvd",
                        help="deconvolution method" + (
                            f"; trained methods ({', '.join(trainable)}) need --model"
                            if trainable else ""))
    parser.add_argument("--model", help="trained model file (e.g. a PHAE written by "
                                        "'skperfusion train')")
    parser.add_argument("--desc", default=None,
                        help="the desc-<label> of the output names, letters and digits "
                             "(default: the method's name)")
    parser.add_argument("--participant-label", nargs="+", metavar="LABEL", default=None,
                        help="subjects of a cohort to map, with or without 'sub-' (default: "
                             "all)")
    add_curve_arguments(parser, aif_default=None)
    _append_help(parser, "leakage", "; also writes the k2 map (1/s)")
    parser.add_argument("--mask", default="brain", choices=("brain", "tumor", "nawm"),
                        help="voxels to map (NaN elsewhere); 'tumor' and 'nawm' need that "
                             "mask in the exam, and 'tumor' writes no rCBF/rCBV (they need "
                             "the NAWM mean)")
    parser.add_argument("--chunk-size", type=positive_int, default=None,
                        help="voxels deconvolved at a time (bounds memory; default: the "
                             "method's own)")
    parser.add_argument("--device", default="cpu",
                        help="torch device of the methods that use torch (phae, parametric), "
                             "e.g. cpu or cuda")
    add_precision_argument(parser, default=None)
    parser.add_argument("--no-report", action="store_true",
                        help="do not write the HTML QC reports (saves about a second per exam)")
    parser.add_argument("--aif-plot", action="store_true",
                        help="also write _aif.png per exam, the AIF (with the candidates of "
                             "--aif auto)")
    add_parallel_arguments(parser, "exams of a cohort mapped")
    add_link_argument(parser)
    add_quiet_argument(parser)


def _append_help(parser, dest, text):
    action = next(action for action in parser._actions if action.dest == dest)
    action.help += text


def _aif_source(text):
    """``--aif``: a strategy name, or an existing AIF table file."""
    if text in AIF_STRATEGIES or Path(text).is_file():
        return text
    raise argparse.ArgumentTypeError(f"expected 'mask', 'auto' or an AIF table file (time in s, "
                                     f"concentration); {text!r} is neither.")


def add_curve_arguments(parser, aif_default="mask"):
    """Add the exam-to-curves options ``--aif``, ``--aif-scaling``, ``--leakage``, ``--relaxivity``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The sub-command's parser (``maps``, ``train``, ``study``).
    aif_default : {"mask", "auto"} or None, default="mask"
        Default of ``--aif``; None lets the command choose per exam.
    """
    parser.add_argument("--aif", type=_aif_source, default=aif_default,
                        metavar="{mask,auto,FILE.tsv}",
                        help="the AIF: 'mask' (aif_mask.nii.gz), 'auto' (selected "
                             "automatically among the brain voxels, Mouridsen et al. 2006, "
                             "saturated arteries recovered) or a table of the curve (two "
                             "columns: time in s from the first kept frame, concentration, "
                             "e.g. an aif.tsv written before)"
                             + ("; default 'mask' where aif_mask.nii.gz exists"
                                if aif_default is None else ""))
    parser.add_argument("--aif-scaling", choices=AIF_SCALINGS, default="none",
                        help="AIF partial-volume scaling: 'vof' rescales the AIF to the area "
                             "of the venous output function (vof_mask.nii.gz, or late, "
                             "large-area voxels selected automatically)")
    parser.add_argument("--leakage", choices=LEAKAGE_METHODS, default="bidirectional",
                        help="contrast-leakage correction of the concentration curves (bsw: "
                             "Boxerman et al. 2006; bidirectional: Bjørnerud et al. 2011, the "
                             "default: on simulated leaky gliomas it removed the -16 %% "
                             "tumour/NAWM CBF ratio bias and the negative tumour CBV, and "
                             "moved non-leaky exams by under 2 %%; 'none' to skip it)")
    parser.add_argument("--relaxivity", choices=RELAXIVITY_MODELS, default="none",
                        help="'none': tissue and AIF both as ΔR2* (1/s; relative maps and "
                             "ratios are right, absolute CBF/CBV are not); 'van_osch': tissue "
                             "ΔR2*/44 and AIF/VOF through the quadratic blood relaxivity of van "
                             "Osch et al. 2003 (mM, 1.5 T), for absolute CBF/CBV with "
                             "--aif-scaling vof")
    parser.add_argument("--allow-unusual-timing", action="store_true",
                        help="accept sidecar echo times outside 1-120 ms or repetition times "
                             "outside 0.3-5 s (refused by default: almost always a unit "
                             "error)")


def make_mapper(method, exam, *, model=None, curves=None, chunk_size=None, mask="brain",
                device="cpu", precision=None):
    """A mapper for one exam with a registered deconvolver.

    Parameters
    ----------
    method : str
        Registry name (:func:`~skperfusion.deconvolution.available_deconvolvers`).
    exam : Exam
        The exam; its TR and length set the grid of untrained methods.
    model : str or path-like, optional
        Saved model of a trainable method (required for those, e.g. ``"phae"``);
        the curves are resampled to the grid it was trained on.
    curves : ExamToCurves or None, default=None
        The exam-to-curves step.
    chunk_size : int or None, default=None
        Voxels deconvolved at a time, where the deconvolver has that parameter.
    mask : {"brain", "tumor", "nawm"}, default="brain"
        Exam mask whose voxels are mapped.
    device : str, default="cpu"
        Torch device, where the deconvolver has that parameter (a saved
        model is loaded onto it).
    precision : str or None, default=None
        ``precision`` of the deconvolver, where it has that parameter; None
        keeps its own (a saved model's).

    Returns
    -------
    mapper : PerfusionMapper
        Not fitted yet.
    """
    from sklearn.frozen import FrozenEstimator

    from ..exam_estimators import PerfusionMapper

    spec = get_deconvolver(method)
    if not spec.trainable:
        if model is not None:
            trained = [n for n in available_deconvolvers() if get_deconvolver(n).trainable]
            raise ValueError(f"--model is only used with --method {' or '.join(trained)}, not "
                             f"{method}.")
        deconvolver = spec.load()()
        grid = {"tr": exam.tr}
    else:
        if model is None:
            raise ValueError(f"--method {method} needs --model, a file written by "
                             "'skperfusion train'.")
        if not Path(model).is_file():
            raise FileNotFoundError(f"{spec.label} model file {model} does not exist.")
        deconvolver = spec.load().load(model, device=device)
        grid = {}
    params = deconvolver.get_params()
    deconvolver.set_params(**{name: value for name, value in (
        ("chunk_size", chunk_size), ("device", device), ("precision", precision))
        if value is not None and name in params})
    if spec.trainable:
        deconvolver = FrozenEstimator(deconvolver)
    return PerfusionMapper(deconvolver, curves=curves, mask=mask, **grid)


_SESSION = re.compile(r"ses-[0-9A-Za-z]+")


def _is_exam(folder):
    """Whether ``folder`` holds a DSC acquisition (single or multi-echo)."""
    return (folder / "dsc.nii.gz").exists() or any(folder.glob("dsc_echo-*.nii.gz"))


def _sessions(folder):
    """Session folders (``ses-<label>``) of a subject folder, sorted."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and _SESSION.fullmatch(p.name))


def find_exams(input_dir, participant_labels=None, *, allow_external_links=False):
    """The exams of an exam or cohort folder, as ``(folder, subject, session)``.

    Parameters
    ----------
    input_dir : str or path-like
        An exam folder (``sub-<id>`` or ``sub-<id>/ses-<s>``), a subject
        folder holding sessions, or a cohort folder (subjects from
        ``participants.tsv``, else its ``sub-*`` folders).
    participant_labels : sequence of str or None, default=None
        Subjects of a cohort to keep (with or without ``sub-``); None keeps all.
    allow_external_links : bool, default=False
        Accept subject folders that are links leading outside the cohort.

    Returns
    -------
    exams : list of tuple (pathlib.Path, str, str or None)

    Raises
    ------
    FileNotFoundError
        The folder does not exist, or holds no exam.
    ValueError
        A participant label names no subject of the cohort.
    """
    from .._io import check_inside
    from ..exam import read_participants

    root = Path(input_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"exam folder {root} does not exist.")
    if _is_exam(root):
        if _SESSION.fullmatch(root.name):
            return [(root, root.parent.resolve().name, root.name)]
        return [(root, root.name, None)]
    if _sessions(root) and not (root / "participants.tsv").exists():
        return [(folder, root.name, folder.name) for folder in _sessions(root)]
    if (root / "participants.tsv").exists():
        subjects = list(read_participants(root)["participant_id"])
    else:
        subjects = sorted(p.name for p in root.iterdir() if p.is_dir()
                          and p.name.startswith("sub-"))
    if not subjects:
        raise FileNotFoundError(f"{root} is neither an exam folder (no dsc.nii.gz or "
                                "dsc_echo-<n>.nii.gz) nor a cohort (no participants.tsv, no "
                                "sub-* folder).")
    if participant_labels:
        wanted = {f"sub-{label.removeprefix('sub-')}" for label in participant_labels}
        unknown = sorted(wanted - set(subjects))
        if unknown:
            raise ValueError(f"--participant-label: {', '.join(unknown)} not in the cohort "
                             f"{root}.")
        subjects = [subject for subject in subjects if subject in wanted]
    exams = []
    for subject in subjects:
        folder = check_inside(root / subject, root, allow_links=allow_external_links,
                              what=f"subject folder of {subject}")
        sessions = _sessions(folder) if folder.is_dir() and not _is_exam(folder) else []
        exams += ([(s, subject, s.name) for s in sessions] if sessions
                  else [(folder, subject, None)])
    return exams


def _sources(folder):
    """The input files of an exam folder (DSC, sidecars, masks)."""
    return [str(p) for p in sorted(folder.iterdir())
            if p.is_file() and (p.name.startswith("dsc") or p.name.endswith("_mask.nii.gz"))]


def _map_exam(folder, subject, session, args, out_dir):
    """Map one exam and write its derivatives; return the number of files written."""
    from .._io import atomic_write
    from ..derivatives import derivative_writers, possible_outputs, report_writers, subject_folder
    from ..exam import ExamToCurves, load_exam
    from ..exam_estimators import ExamMaps, normalized_maps

    aif = args.aif
    if aif is None:
        if not (folder / "aif_mask.nii.gz").exists():
            raise ValueError(f"{folder} has no aif_mask.nii.gz; give one or select the "
                             "arterial voxels automatically with --aif auto.")
        aif = "mask"
    exam = load_exam(folder, subject, require_rois=False, require_aif=aif == "mask",
                     allow_unusual_timing=args.allow_unusual_timing)
    if args.mask not in exam.masks:
        raise ValueError(f"subject {subject}: --mask {args.mask} needs "
                         f"{folder / f'{args.mask}_mask.nii.gz'}, which does not exist.")
    curves = ExamToCurves(aif=aif, aif_scaling=args.aif_scaling, leakage=args.leakage,
                          relaxivity=args.relaxivity)
    mapper = make_mapper(args.method, exam, model=args.model, curves=curves,
                         chunk_size=args.chunk_size, mask=args.mask, device=args.device,
                         precision=args.precision)
    result = mapper.fit([exam]).transform([exam])[0]
    # rCBF/rCBV divide by the NAWM mean, which a tumour-only run does not map.
    result = ExamMaps(exam, {**result.maps, **(normalized_maps(result)
                                               if args.mask != "tumor" else {})},
                      result.seconds, result.mask, result.aif)
    desc = args.desc or args.method
    qc = _quality_control(result, mapper, args)
    _, writers, sidecar = derivative_writers(
        result, mapper, method=args.method, desc=desc, session=session,
        sources=[*_sources(folder), *([args.model] if args.model else [])], model=args.model,
        qc=qc.to_dict(), command=getattr(args, "command_line", None), aif_plot=args.aif_plot)
    writers.update(_qc_writers(exam, qc, desc, session))
    # With --overwrite, files of the earlier run that this one lacks (e.g. k2) go too.
    # Without --overwrite the names are claimed again at commit time: of two runs into
    # one folder, the later fails instead of replacing the earlier's set.
    paths = atomic_write(writers, out_dir / subject_folder(subject, session),
                         remove=[*possible_outputs(subject, desc, session=session),
                                 *_qc_outputs(subject, desc, session)],
                         overwrite=args.overwrite)
    if not args.no_report:
        paths += atomic_write(report_writers(result, mapper, sidecar, desc, session=session),
                              out_dir, overwrite=args.overwrite)
    return len(paths)


def _quality_control(result, mapper, args):
    """The QC record of an exam's maps (:func:`skperfusion.qc.exam_qc`); its summary on stderr."""
    from ..derivatives import quality_control

    record = quality_control(result, mapper)
    if not args.quiet:
        print(record.summary(), file=sys.stderr)
    return record


def _qc_outputs(subject, desc, session):
    """Names of the QC record and of a computed brain mask."""
    from ..derivatives import map_file_name

    return [map_file_name(subject, "qc", desc, session=session, extension=".json"),
            map_file_name(subject, "brainmask", desc, session=session)]


def _qc_writers(exam, record, desc, session):
    """Writers of ``qc.json`` and, when it was computed, of the brain mask."""
    import nibabel as nib

    from ..exam.nifti import mask_image

    qc_name, mask_name = _qc_outputs(exam.subject_id, desc, session)
    writers = {qc_name: lambda temp: temp.write_text(record.to_json(), encoding="utf-8")}
    if exam.extra.get("brain_mask") == "computed":
        image = mask_image(exam.masks["brain"], exam)
        writers[mask_name] = lambda temp: nib.save(image, temp)
    return writers


def _planned_outputs(exams, args, out_dir):
    """Every file the run may write, to refuse existing ones before any work."""
    from ..derivatives import possible_outputs, subject_folder
    from ..report import report_file_name

    desc = args.desc or args.method
    outputs = []
    for _, subject, session in exams:
        folder = out_dir / subject_folder(subject, session)
        outputs += [folder / name for name in [*possible_outputs(subject, desc, session=session),
                                               *_qc_outputs(subject, desc, session)]]
        if not args.no_report:
            outputs.append(out_dir / report_file_name(subject, desc, session=session))
    return outputs


def run(args):
    """Compute and save the maps described by parsed ``args``."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    from .._io import atomic_write, check_outputs
    from .._warnings import recorded, replayed
    from ..derivatives import write_dataset_description
    from ..report import index_report, report_entries

    out_dir = Path(args.out_dir)
    input_dir = Path(args.input_dir)
    if args.desc is not None and not re.fullmatch(r"[0-9A-Za-z]+", args.desc):
        raise ValueError(f"--desc {args.desc!r} must be letters and digits only (a BIDS label, "
                         "the desc-<label> of every output name).")
    if args.device != "cpu" and args.method in ("phae", "parametric"):
        check_torch_device(args.device)  # imports torch, which those methods use anyway
    check_precision(args.device, args.precision)
    if args.precision is not None and not get_deconvolver(args.method).trainable:
        phae = [name for name in available_deconvolvers() if get_deconvolver(name).trainable]
        raise ValueError(f"--precision sets the arithmetic of the PHAE ({', '.join(phae)}); "
                         f"--method {args.method} does not take it.")
    if out_dir.resolve() == input_dir.resolve() or input_dir.resolve() in out_dir.resolve().parents:
        raise ValueError(f"refusing to write the maps into the input folder {input_dir}: "
                         "outputs never go inside an exam or cohort folder; choose another "
                         "output.")
    exams = find_exams(input_dir, args.participant_label,
                       allow_external_links=args.allow_external_links)
    check_outputs(_planned_outputs(exams, args, out_dir),
                  inputs=[input_dir, *([args.model] if args.model else [])],
                  overwrite=args.overwrite)
    # On a dask cluster (--scheduler) every exam is loaded and mapped on a worker.
    n_jobs = -1 if args.scheduler and args.n_jobs is None else args.n_jobs
    with scheduler(args.scheduler):
        tasks = replayed(Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(recorded(_map_exam))(folder, subject, session, args, out_dir)
            for folder, subject, session in exams))
        written = sum(tqdm(tasks, total=len(exams), desc="mapping exams", unit="exam",
                           disable=args.quiet or len(exams) == 1))
    write_dataset_description(out_dir)
    # The index lists every report of the folder (earlier runs and methods included).
    entries = report_entries(out_dir)
    if len(entries) > 1:
        html = index_report(entries)
        atomic_write({"index.html": lambda temp: temp.write_text(html, encoding="utf-8")},
                     out_dir)
    if not args.quiet:
        print(f"wrote {written} files of {len(exams)} exam(s) ({args.desc or args.method}) "
              f"to {out_dir}")
