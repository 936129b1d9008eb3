"""``skperfusion simulate``: write a synthetic glioma cohort with ground truth."""

import math

from ..datasets import simulate_cohort
from ._args import add_command, positive_float, positive_int

HELP = "simulate a glioma DSC cohort (the on-disk cohort layout) with ground-truth maps"
DETAILS = (
    "Each subject gets sub-<id>/dsc.nii.gz, dsc.json, four masks and "
    "gt_CBF/gt_CBV/gt_MTT/gt_Tmax.nii.gz (ml/100g/min, ml/100g, s, s); participants.tsv "
    "holds grade, true_cbf_ratio (tumour/NAWM) and every drawn parameter."
)


def register(subparsers):
    """Add the ``simulate`` sub-command.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
    """
    parser = add_command(subparsers, "simulate", HELP, DETAILS, run)
    parser.add_argument("out_dir", help="output cohort folder (must not hold a cohort yet)")
    parser.add_argument("--n-subjects", type=positive_int, default=24, help="cohort size")
    parser.add_argument("--lgg-fraction", type=float, default=0.4,
                        help="fraction of low-grade gliomas, in (0, 1)")
    parser.add_argument("--snr", type=positive_float, default=50.0,
                        help="baseline SNR = mean baseline signal / noise sd; 'inf' for none")
    parser.add_argument("--noise", choices=("rician", "gaussian"), default="rician",
                        help="noise model (Rician: magnitude images)")
    parser.add_argument("--shape", type=positive_int, nargs=3, default=(16, 16, 4),
                        metavar=("X", "Y", "Z"), help="image size in voxels")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="subjects simulated in parallel (joblib)")


def run(args):
    """Simulate the cohort described by parsed ``args``."""
    table = simulate_cohort(args.out_dir, args.n_subjects, lgg_fraction=args.lgg_fraction,
                            shape=tuple(args.shape), snr=args.snr, noise=args.noise,
                            random_state=args.seed, n_jobs=args.n_jobs, progress=True)
    counts = table["grade"].value_counts()
    snr = "inf" if math.isinf(args.snr) else f"{args.snr:g}"
    print(f"wrote {len(table)} subjects ({counts.get('LGG', 0)} LGG, {counts.get('HGG', 0)} "
          f"HGG, SNR {snr}) to {args.out_dir}")
