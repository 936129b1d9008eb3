"""``skperfusion simulate``: write a synthetic glioma cohort with ground truth."""

import argparse
import math

from .._io import RESERVED_PREFIX, atomic_directory, check_outputs
from ._args import add_command, positive_float, positive_int

HELP = "simulate a glioma DSC cohort (the on-disk cohort layout) with ground-truth maps"
DETAILS = (
    "Each subject gets sub-<id>/dsc.nii.gz and dsc.json (dsc_echo-<n>.* with --echo-times), "
    "aif/vof/brain/tumor/nawm masks and gt_CBF/gt_CBV/gt_MTT/gt_Tmax.nii.gz (ml/100g/min, "
    "ml/100g, s, s), plus gt_Ktrans.nii.gz (1/min) with leakage; participants.tsv holds "
    "grade, true_cbf_ratio (tumour/NAWM), vof_area_ratio and every drawn parameter. The "
    "tumours leak contrast agent by default, as enhancing gliomas do (--no-leakage for none)."
)


MANIFEST = f"{RESERVED_PREFIX}cohort.json"
"""File of a simulated cohort listing what ``simulate`` wrote: all ``--overwrite`` replaces."""


def register(subparsers):
    """Add ``simulate`` to the ``skperfusion`` sub-commands (``subparsers``)."""
    parser = add_command(subparsers, "simulate", HELP, DETAILS, run, output={
        "dest": "out_dir", "help": "output cohort folder, written as a whole (with "
                                   "--overwrite an earlier simulated cohort there, unchanged, "
                                   "is replaced; nothing else ever is)"})
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
    parser.add_argument("--leakage", action=argparse.BooleanOptionalAction, default=True,
                        help="contrast leakage in the tumours (Tofts Ktrans/ve, T1 and T2* "
                             "effects; default on)")
    parser.add_argument("--echo-times", type=positive_float, nargs="+", default=None,
                        metavar="TE", help="echo times in seconds for multi-echo exams, e.g. "
                                           "0.012 0.035 (default: one echo, TE 25-35 ms)")
    parser.add_argument("--preload", type=float, default=0.0,
                        help="preload dose as a fraction of the bolus (0: none), shrinks the "
                             "leakage T1 effect")
    parser.add_argument("--hard-case", action="append", default=[], dest="hard_cases",
                        choices=("saturation", "delayed_territory", "partial_volume",
                                 "strong_leakage"),
                        help="a hard case of real acquisitions, repeatable: arteries that "
                             "saturate at the bolus peak (TE 45 ms, high dose), a posterior "
                             "lobe delayed by 4 s and dispersed by 2 s more, arterial voxels "
                             "of 30 %% blood, or strong tumour leakage (Ktrans 0.15/min); low "
                             "SNR is --snr")


def run(args):
    """Simulate the cohort described by parsed ``args``."""
    from ..datasets import simulate_cohort  # imported here: --help stays light

    check_outputs([args.out_dir], overwrite=args.overwrite, folders=True)
    with atomic_directory(args.out_dir, overwrite=args.overwrite, manifest=MANIFEST) as folder:
        table = simulate_cohort(folder, args.n_subjects, lgg_fraction=args.lgg_fraction,
                                shape=tuple(args.shape), snr=args.snr, noise=args.noise,
                                random_state=args.seed, n_jobs=args.n_jobs, progress=True,
                                leakage=args.leakage, echo_times=args.echo_times,
                                preload=args.preload, hard_cases=args.hard_cases)
    counts = table["grade"].value_counts()
    snr = "inf" if math.isinf(args.snr) else f"{args.snr:g}"
    leakage = "leaky tumours" if args.leakage else "no leakage"
    print(f"wrote {len(table)} subjects ({counts.get('LGG', 0)} LGG, {counts.get('HGG', 0)} "
          f"HGG, SNR {snr}, {leakage}) to {args.out_dir}")
