"""``skperfusion train``: train a PHAE on a cohort's brain voxels and save it."""

import time

from ._args import (
    add_command,
    add_link_argument,
    add_parallel_arguments,
    add_phae_arguments,
    add_quiet_argument,
    phae_settings,
    positive_float,
    positive_int,
)
from ._scheduler import scheduler
from .maps import add_curve_arguments

HELP = "train a physics-informed autoencoder (PHAE) on a cohort folder and save it"
DETAILS = (
    "Self-supervised (no reference maps): the brain-voxel concentration curves C(t) and "
    "the exam's AIF Ca(t) of every subject in participants.tsv are resampled to one time "
    "grid (TR in seconds, frames) and the encoder learns the MTT whose reconstruction Ca "
    "⊗ f·R (f the CBF as a flow rate in 1/s) best matches C. The saved model is used "
    "by 'skperfusion maps --method phae "
    "--model FILE'. The defaults are CPU-friendly, those of 'skperfusion study': the "
    "paper's encoder trained 20 epochs at lr 3e-3, batch 512, each epoch on 4096 voxels "
    "drawn afresh (about a minute on 2 cores); --phae-paper uses the paper's settings "
    "(65 epochs over every training voxel, lr 1e-4, batch 1536), best on a GPU. Options "
    "given explicitly override either set."
)

def register(subparsers):
    """Add ``train`` to the ``skperfusion`` sub-commands (``subparsers``)."""
    parser = add_command(subparsers, "train", HELP, DETAILS, run,
                         inputs={"cohort_dir": "cohort folder with participants.tsv"},
                         output={"dest": "model", "help": "output model file"})
    add_phae_arguments(parser, {"--max-train-voxels": {
        "type": positive_int, "default": 200_000,
        "help": "voxels drawn at random from the pooled brain voxels to train on"}})
    parser.add_argument("--tr", type=positive_float, default=None,
                        help="sampling interval of the common grid in seconds "
                             "(default: the cohort's smallest TR)")
    parser.add_argument("--n-times", type=positive_int, default=None,
                        help="frames of the common grid (default: the shortest exam)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    add_parallel_arguments(parser, "exams converted to curves")
    add_curve_arguments(parser)
    add_link_argument(parser)
    add_quiet_argument(parser)


def run(args):
    """Train and save the PHAE described by parsed ``args``."""
    import torch

    from .._io import check_outputs
    from ..deconvolution import PHAEDeconvolver
    from ..exam import ExamToCurves, load_cohort
    from ..exam.bids import check_timing
    from ..exam_estimators import PerfusionMapper
    from ..study._progress import EpochBar
    from ..study.report import plural

    check_outputs([args.model], inputs=[args.cohort_dir], overwrite=args.overwrite)
    params = phae_settings(args)
    if args.tr is not None:
        check_timing(None, args.tr, "the training grid", "--tr",
                     allow_unusual_timing=args.allow_unusual_timing)
    started = time.perf_counter()
    exams = load_cohort(args.cohort_dir, n_jobs=args.n_jobs, require_rois=False,
                        require_aif=args.aif != "auto",
                        allow_external_links=args.allow_external_links,
                        allow_unusual_timing=args.allow_unusual_timing)
    # On a dask cluster (--scheduler) the exams, loaded here, go to the workers.
    n_jobs = -1 if args.scheduler and args.n_jobs is None else args.n_jobs
    threads = torch.get_num_threads()
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    try:
        with scheduler(args.scheduler):
            phae = PHAEDeconvolver(**params, random_state=args.seed,
                                   callbacks=None if args.quiet
                                   else [EpochBar("training the PHAE")])
            curves = ExamToCurves(aif=args.aif, aif_scaling=args.aif_scaling,
                                  leakage=args.leakage, relaxivity=args.relaxivity)
            mapper = PerfusionMapper(phae, curves=curves, tr=args.tr, n_times=args.n_times,
                                     max_train_voxels=args.max_train_voxels, n_jobs=n_jobs,
                                     random_state=args.seed)
            epoch_voxels = params["epoch_voxels"] or "all"
            if not args.quiet:
                print(f"training a PHAE ({plural(params['max_epochs'], 'epoch')} of "
                      f"{epoch_voxels} voxels, lr {params['lr']:g}, batch "
                      f"{params['batch_size']}) on up to {args.max_train_voxels} brain voxels "
                      f"of {plural(len(exams), 'exam')}")
            mapper.fit(exams)
    finally:
        torch.set_num_threads(threads)
    mapper.deconvolver_.save(args.model)
    if not args.quiet:
        print(f"saved the PHAE ({mapper.n_train_voxels_} voxels, grid {mapper.n_times_} frames "
              f"x {mapper.tr_:.3g} s) to {args.model} in {time.perf_counter() - started:.0f} s")
