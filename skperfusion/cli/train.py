"""``skperfusion train``: train a PHAE on a cohort's brain voxels and save it."""


from .._io import check_outputs
from ..deconvolution import PHAEDeconvolver
from ..exam import ExamToCurves, load_cohort
from ..exam_estimators import PerfusionMapper
from ._args import (
    add_command,
    add_link_argument,
    add_output_arguments,
    positive_float,
    positive_int,
)
from .maps import add_curve_arguments

HELP = "train a physics-informed autoencoder (PHAE) on a cohort folder and save it"
DETAILS = (
    "Self-supervised (no reference maps): the brain-voxel concentration curves C(t) and "
    "the exam's AIF Ca(t) of every subject in participants.tsv are resampled to one time "
    "grid (TR in seconds, frames) and the encoder learns the MTT whose reconstruction Ca "
    "⊗ CBF·R best matches C. The saved model is used by 'skperfusion maps --method phae "
    "--model FILE'."
)


def register(subparsers):
    """Add the ``train`` sub-command.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
    """
    parser = add_command(subparsers, "train", HELP, DETAILS, run)
    parser.add_argument("cohort_dir", help="cohort folder with participants.tsv")
    add_output_arguments(parser, "model", "output model file")
    parser.add_argument("--epochs", type=positive_int, default=65, help="training epochs")
    parser.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate")
    parser.add_argument("--batch-size", type=positive_int, default=1536,
                        help="voxels per training batch")
    parser.add_argument("--width", type=positive_int, default=32,
                        help="feature maps of the first encoder block")
    parser.add_argument("--max-train-voxels", type=positive_int, default=200_000,
                        help="voxels drawn at random from the pooled brain voxels to train on")
    parser.add_argument("--tr", type=positive_float, default=None,
                        help="sampling interval of the common grid in seconds "
                             "(default: the cohort's smallest TR)")
    parser.add_argument("--n-times", type=positive_int, default=None,
                        help="frames of the common grid (default: the shortest exam)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--n-jobs", type=int, default=None, help="exams loaded in parallel")
    add_curve_arguments(parser)
    add_link_argument(parser)


def run(args):
    """Train and save the PHAE described by parsed ``args``."""
    check_outputs([args.model], inputs=[args.cohort_dir], overwrite=args.overwrite)
    exams = load_cohort(args.cohort_dir, n_jobs=args.n_jobs, require_rois=False,
                        require_aif=args.aif != "auto",
                        allow_external_links=args.allow_external_links)
    phae = PHAEDeconvolver(max_epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                           module__width=args.width, device=args.device,
                           random_state=args.seed, verbose=1)
    curves = ExamToCurves(aif=args.aif, aif_scaling=args.aif_scaling, leakage=args.leakage)
    mapper = PerfusionMapper(phae, curves=curves, tr=args.tr, n_times=args.n_times,
                             max_train_voxels=args.max_train_voxels, n_jobs=args.n_jobs,
                             random_state=args.seed)
    print(f"training a PHAE on up to {args.max_train_voxels} brain voxels of {len(exams)} "
          "exams")
    mapper.fit(exams)
    mapper.deconvolver_.save(args.model)
    print(f"saved the PHAE ({mapper.n_train_voxels_} voxels, grid {mapper.n_times_} frames x "
          f"{mapper.tr_:.3g} s) to {args.model}")
