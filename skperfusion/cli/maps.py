"""``skperfusion maps``: CBF, CBV, MTT and Tmax NIfTI maps for one exam."""

from pathlib import Path

from .._options import (
    AIF_FILES,
    AIF_SCALINGS,
    AIF_STRATEGIES,
    LEAKAGE_METHODS,
    NORMALIZED_MAPS,
    RELAXIVITY_MODELS,
)
from ..deconvolution._registry import available_deconvolvers, get_deconvolver
from ._args import add_command, positive_int

HELP = "compute CBF/CBV/MTT/Tmax maps of one exam with any registered deconvolver"
DETAILS = (
    "Input: an exam folder with dsc.nii.gz (4-D DSC signal) and dsc.json (EchoTime, "
    "RepetitionTime in seconds), or dsc_echo-<n>.nii.gz/.json for a multi-echo acquisition "
    "(all echoes are used: ΔR2* = ln[(S1/S1,0)/(S2/S2,0)]/(TE2-TE1), free of T1 leakage "
    "effects), brain_mask.nii.gz, and aif_mask.nii.gz unless --aif auto. The AIF is the mean "
    "arterial signal; single-echo signals become concentrations C = -ln(S/S0)/TE. Output: "
    "CBF.nii.gz (ml/100g/min), CBV.nii.gz (ml/100g), MTT.nii.gz (s), Tmax.nii.gz (s; NaN "
    "where the method gives none) with the input's affine, NaN outside the mask; where the "
    "exam has nawm_mask.nii.gz also rCBF.nii.gz and rCBV.nii.gz (map divided by its NAWM "
    "mean, dimensionless); the AIF used as aif_mask.nii.gz (its voxels) and aif.tsv (time in "
    "s, concentration in 1/s, or mM with --relaxivity van_osch), and with --aif-plot aif.png. "
    "Absolute CBF/CBV need --aif-scaling vof --relaxivity van_osch (AIF partial volume and the "
    "blood/tissue relaxivity difference); without them trust rCBF/rCBV and ratios. Voxels are "
    "processed in blocks, so memory stays bounded on large exams. Written atomically, as one "
    "set."
)


def register(subparsers):
    """Add ``maps`` to the ``skperfusion`` sub-commands (``subparsers``).

    The ``--method`` choices are the names of the deconvolver registry.
    """
    parser = add_command(subparsers, "maps", HELP, DETAILS, run,
                         inputs={"exam_dir": "exam folder (sub-<id>)"},
                         output={"dest": "out_dir", "help": "output folder for the maps"})
    trainable = [name for name in available_deconvolvers() if get_deconvolver(name).trainable]
    parser.add_argument("--method", choices=available_deconvolvers(), default="osvd",
                        help="deconvolution method" + (
                            f"; trained methods ({', '.join(trainable)}) need --model"
                            if trainable else ""))
    parser.add_argument("--model", help="trained model file (e.g. a PHAE written by "
                                        "'skperfusion train')")
    add_curve_arguments(parser, aif_default=None)
    parser.add_argument("--mask", default="brain", choices=("brain", "tumor", "nawm"),
                        help="voxels to map (NaN elsewhere); 'tumor' and 'nawm' need that "
                             "mask in the exam, and 'tumor' writes no rCBF/rCBV (they need "
                             "the NAWM mean)")
    parser.add_argument("--chunk-size", type=positive_int, default=None,
                        help="voxels deconvolved at a time (bounds memory; default: the "
                             "method's own)")
    parser.add_argument("--prefix", default="",
                        help="output file name prefix (a plain name, no folder part)")
    parser.add_argument("--aif-plot", action="store_true",
                        help="also write aif.png, the AIF (with the candidates of --aif auto) "
                             "to check by eye (imports matplotlib: about a second more)")


def add_curve_arguments(parser, aif_default="mask"):
    """Add the exam-to-curves options ``--aif``, ``--aif-scaling``, ``--leakage``, ``--relaxivity``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The sub-command's parser (``maps``, ``train``, ``study``).
    aif_default : {"mask", "auto"} or None, default="mask"
        Default of ``--aif``; None lets the command choose per exam.
    """
    parser.add_argument("--aif", choices=AIF_STRATEGIES, default=aif_default,
                        help="arterial voxels: 'mask' (aif_mask.nii.gz) or 'auto' (selected "
                             "automatically among the brain voxels, Mouridsen et al. 2006)"
                             + ("; default 'mask' where aif_mask.nii.gz exists"
                                if aif_default is None else ""))
    parser.add_argument("--aif-scaling", choices=AIF_SCALINGS, default="none",
                        help="AIF partial-volume scaling: 'vof' rescales the AIF to the area "
                             "of the venous output function (vof_mask.nii.gz, or late, "
                             "large-area voxels selected automatically)")
    parser.add_argument("--leakage", choices=LEAKAGE_METHODS, default="none",
                        help="contrast-leakage correction of the concentration curves "
                             "(writes K2.nii.gz, 1/s, with maps)")
    parser.add_argument("--relaxivity", choices=RELAXIVITY_MODELS, default="none",
                        help="'none': tissue and AIF both as ΔR2* (1/s; relative maps and "
                             "ratios are right, absolute CBF/CBV are not); 'van_osch': tissue "
                             "ΔR2*/44 and AIF/VOF through the quadratic blood relaxivity of van "
                             "Osch et al. 2003 (mM, 1.5 T), for absolute CBF/CBV with "
                             "--aif-scaling vof")


def make_mapper(method, exam, *, model=None, curves=None, chunk_size=None, mask="brain"):
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
        deconvolver = spec.load().load(model)
        grid = {}
    if chunk_size is not None and "chunk_size" in deconvolver.get_params():
        deconvolver.set_params(chunk_size=chunk_size)
    if spec.trainable:
        deconvolver = FrozenEstimator(deconvolver)
    return PerfusionMapper(deconvolver, curves=curves, mask=mask, **grid)


def _output_names():
    """Every file ``maps`` may write (rCBF/rCBV with a NAWM mask, K2 with --leakage)."""
    from ..exam import MAP_NAMES

    return [f"{name}.nii.gz" for name in (*MAP_NAMES, *NORMALIZED_MAPS, "K2")] + list(AIF_FILES)


def run(args):
    """Compute and save the maps described by parsed ``args``."""
    from .._io import atomic_write, check_outputs, check_path_component
    from ..aif import aif_writers
    from ..exam import ExamToCurves, load_exam
    from ..exam.nifti import map_writers
    from ..exam_estimators import normalized_maps

    out_dir = Path(args.out_dir)
    if args.prefix:
        check_path_component(args.prefix, what="--prefix")
    aif = args.aif
    if aif is None:
        aif = "mask" if (Path(args.exam_dir) / "aif_mask.nii.gz").exists() else None
        if aif is None and Path(args.exam_dir).is_dir():
            raise ValueError(f"{args.exam_dir} has no aif_mask.nii.gz; give one or select the "
                             "arterial voxels automatically with --aif auto.")
    if Path(args.exam_dir).resolve() == out_dir.resolve():
        raise ValueError(f"refusing to write the maps into the exam folder {args.exam_dir}: "
                         "a later run would read their aif_mask.nii.gz as the exam's own; "
                         "choose another output.")
    exam = load_exam(args.exam_dir, require_rois=False, require_aif=aif == "mask")
    if args.mask not in exam.masks:
        raise ValueError(f"subject {exam.subject_id}: --mask {args.mask} needs "
                         f"{Path(args.exam_dir) / f'{args.mask}_mask.nii.gz'}, which does not "
                         "exist.")
    curves = ExamToCurves(aif=aif, aif_scaling=args.aif_scaling, leakage=args.leakage,
                          relaxivity=args.relaxivity)
    mapper = make_mapper(args.method, exam, model=args.model, curves=curves,
                         chunk_size=args.chunk_size, mask=args.mask)
    outputs = [f"{args.prefix}{name}" for name in _output_names()]
    check_outputs([out_dir / name for name in outputs],
                  inputs=[args.exam_dir, *([args.model] if args.model else [])],
                  overwrite=args.overwrite)
    result = mapper.fit([exam]).transform([exam])[0]
    # rCBF/rCBV divide by the NAWM mean, which a tumour-only run does not map.
    maps = {**result.maps, **(normalized_maps(result) if args.mask != "tumor" else {})}
    writers = {**map_writers(maps, exam, args.prefix),
               **aif_writers(result.aif, exam, args.prefix, plot=args.aif_plot)}
    # With --overwrite, maps of the earlier run that this one lacks (e.g. K2) go too.
    # Without --overwrite the names are claimed again at commit time: of two runs into
    # one folder, the later fails instead of replacing the earlier's set.
    paths = atomic_write(writers, out_dir, remove=outputs, overwrite=args.overwrite)
    print(f"wrote {', '.join(path.name for path in paths)} to {out_dir}")
