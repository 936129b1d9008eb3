"""``skperfusion train``: train a PHAE on a cohort's brain voxels and save it."""

import argparse

import numpy as np
from tqdm.auto import tqdm

from ..deconvolution import PHAEDeconvolver
from ..exam import load_cohort
from ._args import positive_float, positive_int

HELP = "train a physics-informed autoencoder (PHAE) on a cohort folder and save it"


def register(subparsers):
    """Add the ``train`` sub-command.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
    """
    parser = subparsers.add_parser(
        "train", help=HELP, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description=HELP + ". Self-supervised (no reference maps): the brain-voxel "
        "concentration curves C(t) and the exam's AIF Ca(t) of every subject in "
        "participants.tsv are resampled to one time grid (TR in seconds, frames) and the "
        "encoder learns the MTT whose reconstruction Ca ⊗ CBF·R best matches C. The saved "
        "model is used by 'skperfusion maps --method phae --model FILE'.")
    parser.add_argument("cohort_dir", help="cohort folder with participants.tsv")
    parser.add_argument("model", help="output model file")
    parser.add_argument("--epochs", type=positive_int, default=65, help="training epochs")
    parser.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate")
    parser.add_argument("--batch-size", type=positive_int, default=1536)
    parser.add_argument("--width", type=positive_int, default=32,
                        help="feature maps of the first encoder block")
    parser.add_argument("--max-train-voxels", type=positive_int, default=200_000,
                        help="voxels drawn (evenly over subjects) to train on")
    parser.add_argument("--tr", type=positive_float, default=None,
                        help="sampling interval of the common grid in seconds "
                             "(default: the cohort's smallest TR)")
    parser.add_argument("--n-times", type=positive_int, default=None,
                        help="frames of the common grid (default: the shortest exam)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--n-jobs", type=int, default=None, help="exams loaded in parallel")
    parser.set_defaults(func=run)


def training_curves(exams, time_grid, max_voxels, random_state=None, progress=False):
    """Pool brain-voxel curves of several exams on one time grid.

    Parameters
    ----------
    exams : list of Exam
        Training exams.
    time_grid : tuple (tr, n_times)
        Common grid (seconds, frames).
    max_voxels : int
        Total voxels drawn, evenly over the exams.
    random_state : int or None, default=None
        Seed of the voxel draw.
    progress : bool, default=False
        Show a progress bar.

    Returns
    -------
    X : ndarray of shape (n_voxels, 2, n_times)
        Concentration curves (tissue, AIF) in 1/s.
    """
    rng = np.random.default_rng(random_state)
    per_exam = max(1, -(-max_voxels // len(exams)))
    if progress:
        exams = tqdm(exams, desc="extracting curves", unit="exam")
    parts = []
    for exam in exams:
        brain = exam.mask("brain")
        if brain.sum() > per_exam:
            # Sub-sample before converting so memory stays bounded.
            chosen = np.zeros(brain.size, dtype=bool)
            chosen[rng.choice(np.flatnonzero(brain), per_exam, replace=False)] = True
            brain = chosen.reshape(brain.shape)
        parts.append(exam.curves(brain, time_grid=time_grid))
    return np.concatenate(parts)


def run(args):
    """Train and save the PHAE described by parsed ``args``."""
    exams = load_cohort(args.cohort_dir, n_jobs=args.n_jobs, require_rois=False)
    tr = args.tr or min(exam.tr for exam in exams)
    duration = min((exam.n_times - exam.n_skip - 1) * exam.tr for exam in exams)
    n_times = args.n_times or int(duration // tr) + 1
    X = training_curves(exams, (tr, n_times), args.max_train_voxels, args.seed, progress=True)
    print(f"training on {X.shape[0]} voxels from {len(exams)} exams, grid {n_times} frames x "
          f"{tr:.3g} s")
    model = PHAEDeconvolver(tr=tr, max_epochs=args.epochs, lr=args.lr,
                            batch_size=args.batch_size, module__width=args.width,
                            device=args.device, random_state=args.seed, verbose=1)
    model.fit(X)
    model.save(args.model)
    print(f"saved the PHAE to {args.model}")
