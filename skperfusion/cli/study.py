"""``skperfusion study``: the whole glioma-grading study into a report folder."""

import json
import time
from pathlib import Path

from .._io import atomic_directory, check_outputs
from ..deconvolution._registry import available_deconvolvers, get_deconvolver
from ._args import (
    add_command,
    add_link_argument,
    add_output_arguments,
    add_phae_arguments,
    add_quiet_argument,
    phae_settings,
    positive_float,
    positive_int,
)
from ._scheduler import add_scheduler_argument, scheduler
from .maps import add_curve_arguments

_DEMO_SETTINGS = "demo_settings.json"

HELP = "run the glioma-grading study (Fayolle et al. 2025) into a report folder"
DETAILS = (
    "Splits the patients (stratified by grade) into a PHAE training set and a test set, "
    "trains the PHAE, maps the test exams with every registered method, grades them "
    "by the tumour/NAWM CBF ratio (Table 1: AUC, Youden cut-off, sensitivity, specificity "
    "with bootstrap 95% CIs, accuracy, Mann-Whitney p, inference time; a paired test of the "
    "AUCs between methods: DeLong's from 20 patients of each grade, an exact permutation "
    "test below), cross-validates the grading over all patients (repeated stratified "
    "K-fold, the PHAE and the cut-off fitted on the training folds), repeats the grading "
    "over noise draws at each SNR (Fig. 5) and, with ground truth, compares the maps "
    "voxel-wise. Checks first that the cohort supports the design (both grades in the test "
    "split, in every fold) and names the remedy when not. Writes report.md (a summary with "
    "its caveats first), study.json, CSV tables and PNG figures into OUT. The PHAE "
    "defaults are CPU-friendly (the paper's encoder, but a larger learning "
    "rate and 20 short epochs on voxel subsets: about two minutes of training); "
    "--phae-paper uses the paper's settings (65 epochs over every training voxel, "
    "lr 1e-4, batch 1536), best on a GPU."
)

def register(subparsers):
    """Add ``study`` to the ``skperfusion`` sub-commands (``subparsers``)."""
    parser = add_command(subparsers, "study", HELP, DETAILS, run)
    parser.add_argument("cohort_dir", nargs="?", default=None, metavar="COHORT_DIR",
                        help="cohort folder with participants.tsv (omit with --demo)")
    add_output_arguments(parser, "out", "output folder for the report")
    # With --demo the only positional is the output: resolved by run(), not by main().
    parser.set_defaults(output_dest=None)
    add_curve_arguments(parser)
    # The demo tumours leak (as enhancing gliomas do): BSW by default there.
    parser.set_defaults(leakage=None)
    leakage = next(action for action in parser._actions if action.dest == "leakage")
    leakage.help += ("; default 'bsw' with --demo (its tumours leak), 'none' otherwise. With a "
                     "correction, the report also shows Table 1 without it, side by side")
    demo = parser.add_argument_group("demo cohort")
    demo.add_argument("--demo", action="store_true",
                      help="simulate a cohort into OUT/demo_cohort first and study it")
    demo.add_argument("--n-subjects", type=positive_int, default=64,
                      help="demo cohort size (the paper had 64 patients)")
    demo.add_argument("--demo-snr", type=positive_float, default=100.0,
                      help="baseline SNR of the simulated acquisition")
    demo.add_argument("--shape", type=positive_int, nargs=3, default=(16, 16, 4),
                      metavar=("X", "Y", "Z"), help="demo image size in voxels")
    study = parser.add_argument_group("study")
    study.add_argument("--test-size", type=float, default=0.4,
                       help="fraction of patients in the test set (paper: 25 of 64)")
    study.add_argument("--snrs", type=positive_float, nargs="+", default=(50, 40, 30, 20, 10),
                       help="baseline SNRs of the noise robustness experiment")
    study.add_argument("--noise-draws", type=positive_int, default=None,
                       help="noise draws per SNR (default 10; 3 with --demo, to keep it fast)")
    study.add_argument("--methods", nargs="+", choices=available_deconvolvers(variants=True),
                       default=None, help="deconvolvers to compare, variants such as "
                       "phae-gamma included (default: every registered method, no variants)")
    study.add_argument("--cv-splits", type=positive_int, default=5,
                       help="folds of the cross-validated grading")
    study.add_argument("--cv-repeats", type=positive_int, default=5,
                       help="repeats of the cross-validated grading")
    study.add_argument("--cv-trainable-repeats", type=positive_int, default=1,
                       help="repeats for the trainable methods (the PHAE), each costing "
                            "--cv-splits trainings")
    study.add_argument("--n-boot", type=positive_int, default=2000,
                       help="bootstrap resamples of the confidence intervals")
    study.add_argument("--max-train-voxels", type=positive_int, default=200_000,
                       help="voxels drawn from the training exams to train the PHAE")
    study.add_argument("--seed", type=int, default=0, help="random seed")
    add_link_argument(study)
    study.add_argument("--n-jobs", type=int, default=None,
                       help="parallel workers (joblib) of each stage: exams loaded and "
                            "converted, cross-validation folds, noise draws (default: one per "
                            "CPU core for the study's stages, one for loading)")
    add_scheduler_argument(study)
    add_phae_arguments(parser, {"--phae-cv-epochs": {
        "type": positive_int, "default": 5,
        "help": "training epochs of the PHAE retrained on each cross-validation fold (the "
                "training loss plateaus within 5 epochs on the demo)"}})
    add_quiet_argument(parser)


def _demo_settings(args):
    return {"n_subjects": args.n_subjects, "shape": list(args.shape), "snr": args.demo_snr,
            "seed": args.seed, "leakage": True}


def _reusable_demo(cohort, args):
    """Whether ``cohort`` is a complete demo cohort with this run's settings.

    The settings are recorded inside the cohort, which appears as a whole
    (:func:`~skperfusion._io.atomic_directory`): an interrupted simulation
    leaves no cohort, and a re-run with the same settings studies the same
    patients again. Another (or an unfinished, older) demo cohort is an error
    unless ``--overwrite`` asks to simulate it again.
    """
    record = cohort / _DEMO_SETTINGS
    if not cohort.exists():
        return False
    try:
        same = record.is_file() and json.loads(record.read_text()) == _demo_settings(args)
    except (json.JSONDecodeError, UnicodeDecodeError):
        same = False
    if same:
        return True
    if args.overwrite:
        return False
    raise FileExistsError(f"{cohort} exists from an earlier demo with other settings or "
                          "unfinished: pass --overwrite to simulate it again, study it with "
                          f"'skperfusion study {cohort} --out {args.out}', or remove it.")


def _simulate_demo(cohort, args):
    """Simulate the demo cohort into a temporary sibling and rename it in whole."""
    from ..datasets import simulate_cohort
    from .simulate import check_size

    check_size(tuple(args.shape), args.n_subjects, 1, args.n_jobs, cohort)
    with atomic_directory(cohort, overwrite=args.overwrite) as folder:
        simulate_cohort(folder, args.n_subjects, shape=tuple(args.shape), snr=args.demo_snr,
                        random_state=args.seed, n_jobs=args.n_jobs, progress=not args.quiet,
                        leakage=True)
        (folder / _DEMO_SETTINGS).write_text(json.dumps(_demo_settings(args)))


def _resolve_paths(args):
    """COHORT_DIR and OUT from the positionals and ``--out``; with --demo, one positional is OUT."""
    positionals = [path for path in (args.cohort_dir, args.out) if path is not None]
    if args.demo:
        if len(positionals) > 1:
            raise ValueError("--demo simulates the cohort: give only the output folder (OUT or "
                             "--out).")
        args.cohort_dir, args.out = None, (positionals or [None])[0]
    elif args.cohort_dir is None:
        raise ValueError("give either COHORT_DIR or --demo (which simulates one).")
    if args.out is not None and args.out_option is not None and args.out != args.out_option:
        raise ValueError(f"the output is given twice ({args.out} and --out {args.out_option}).")
    args.out = args.out_option or args.out
    if args.out is None:
        raise ValueError("the output folder OUT (or --out PATH) is required.")


def run(args):
    """Run the study described by parsed ``args``."""
    import torch

    from ..exam import ExamToCurves, load_cohort
    from ..exam_estimators import exam_grades
    from ..study.feasibility import check_study_design
    from ..study.run import OUTPUT_FILES, StudyConfig, run_study

    _resolve_paths(args)
    if not 0 < args.test_size < 1:
        raise ValueError(f"--test-size must be in (0, 1); got {args.test_size}.")
    started = time.perf_counter()
    out = Path(args.out)
    cohort = out / "demo_cohort" if args.demo else Path(args.cohort_dir)
    reuse = args.demo and _reusable_demo(cohort, args)
    phae_params = phae_settings(args)
    check_outputs([out / name for name in OUTPUT_FILES], inputs=[cohort],
                  overwrite=args.overwrite)
    source = _demo_cohort(cohort, args, reuse) if args.demo else str(cohort)
    exams = load_cohort(cohort, n_jobs=args.n_jobs,
                        allow_external_links=args.allow_external_links,
                        allow_unusual_timing=args.allow_unusual_timing)
    # The --phae-* settings apply to every trained method (the paper's PHAE and its variants);
    # --device to every torch method (the parametric fit too).
    trainable = [name for name in available_deconvolvers(variants=True)
                 if get_deconvolver(name).trainable]
    on_device = {name: {"device": phae_params["device"]}
                 for name in available_deconvolvers(variants=True)
                 if "device" in get_deconvolver(name).load()().get_params()}
    n_draws = args.noise_draws or (3 if args.demo else 10)
    snrs = tuple(int(snr) if float(snr).is_integer() else snr for snr in args.snrs)
    # Every check the cohort allows, before any training or mapping.
    check_study_design(exam_grades(exams), test_size=args.test_size, n_splits=args.cv_splits,
                       snrs=snrs, n_draws=n_draws, random_state=args.seed)
    threads = torch.get_num_threads()
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    # On a dask cluster (--scheduler) the exams, loaded here, go to the workers.
    n_jobs = -1 if args.n_jobs is None else args.n_jobs
    leakage = args.leakage or ("bsw" if args.demo else "none")
    curves = {name: ExamToCurves(aif=args.aif, aif_scaling=args.aif_scaling, leakage=method,
                                 relaxivity=args.relaxivity)
              for name, method in (("main", leakage), ("no leakage correction", "none"))}
    compare = {"no leakage correction": curves["no leakage correction"]}
    config = StudyConfig(
        methods=args.methods, test_size=args.test_size,
        method_params={**on_device, **{name: dict(phae_params) for name in trainable}},
        cv_method_params={name: {"max_epochs": args.phae_cv_epochs} for name in trainable},
        max_train_voxels=args.max_train_voxels, snrs=snrs, n_draws=n_draws,
        n_splits=args.cv_splits, n_repeats=args.cv_repeats,
        trainable_repeats=args.cv_trainable_repeats, n_boot=args.n_boot,
        random_state=args.seed, n_jobs=n_jobs, source=source, curves=curves["main"],
        compare_curves=compare if leakage != "none" else None, progress=not args.quiet,
        command=getattr(args, "command_line", None))
    try:
        with scheduler(args.scheduler):
            tables = run_study(exams, out, config)
    finally:
        torch.set_num_threads(threads)
    if not args.quiet:
        print(_summary(tables, len(exams), time.perf_counter() - started, out))


def _demo_cohort(cohort, args, reuse):
    """Simulate the demo cohort in ``cohort`` unless ``reuse``; its description."""
    if reuse and not args.quiet:
        print(f"reusing the demo cohort {cohort} (same settings)")
    elif not reuse:
        _simulate_demo(cohort, args)
    return (f"simulated demo cohort {cohort} ({args.n_subjects} subjects, "
            f"{tuple(args.shape)} voxels, Rician noise at SNR {args.demo_snr:g}, "
            f"leaky tumours, seed {args.seed})")


def _summary(tables, n_exams, seconds, out):
    """One-line summary of a finished study: duration (s), test and cross-validated AUCs."""
    auc = tables["table1"]["auc"]
    cv_auc = tables["table1_cv"]["auc"]
    return (f"study of {n_exams} patients done in {seconds:.0f} s; "
            f"test AUC {', '.join(f'{m} {v:.2f}' for m, v in auc.items())}; cross-validated "
            f"AUC {', '.join(f'{m} {v:.2f}' for m, v in cv_auc.items())}; report in "
            f"{out / 'report.md'}")
