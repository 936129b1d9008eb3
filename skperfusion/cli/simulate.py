"""``skperfusion simulate``: write a synthetic glioma cohort with ground truth."""

import argparse
import math
import os
import shutil
from pathlib import Path

from .._io import RESERVED_PREFIX, atomic_directory, check_outputs
from ._args import add_command, add_quiet_argument, positive_float, positive_int

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
                                 "no_arteries", "strong_leakage"),
                        help="a hard case of real acquisitions, repeatable: arteries that "
                             "saturate at the bolus peak (TE 45 ms, high dose), a posterior "
                             "lobe delayed by 4 s and dispersed by 2 s more, arterial voxels "
                             "of 30 %% blood or of 5-10 %% (no usable artery), or strong "
                             "tumour leakage (Ktrans 0.15/min); low SNR is --snr")
    add_quiet_argument(parser)


# The simulator draws series of 60-120 frames. One subject's peak memory is
# about 8 float64 volumes of its series (measured: 612 MB peak, 166 MB of it
# the program, for 64 x 64 x 16 voxels at 110 frames); the files take about
# 4 bytes per voxel, frame and echo (float32, noise compresses little).
_MAX_FRAMES = 120
_WORK_VOLUMES = 8
_FILE_BYTES = 4


def check_size(shape, n_subjects, n_echoes, n_jobs, folder):
    """Refuse a cohort that cannot fit in this machine's memory or on its disk.

    Parameters
    ----------
    shape : tuple of 3 int
        Image size in voxels.
    n_subjects : int
        Cohort size.
    n_echoes : int
        Echoes per exam.
    n_jobs : int or None
        Subjects simulated at once (joblib's ``n_jobs``).
    folder : path-like
        Output folder (its nearest existing parent gives the free disk space).

    Raises
    ------
    ValueError
        With the estimate, the machine's memory or free space, and the remedy.
    """
    from joblib import effective_n_jobs

    volume = math.prod(shape) * _MAX_FRAMES
    memory = volume * 8 * _WORK_VOLUMES * min(effective_n_jobs(n_jobs), n_subjects)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if memory > total:
        raise ValueError(f"--shape {' '.join(map(str, shape))} needs about {memory / 2**30:.3g} "
                         f"GiB of memory (up to {_MAX_FRAMES} frames per voxel, per subject "
                         f"simulated at once); this machine has {total / 2**30:.3g} GiB. "
                         "Choose a smaller --shape (or fewer --n-jobs).")
    existing = next(p for p in (Path(folder).absolute(), *Path(folder).absolute().parents)
                    if p.exists())
    disk = volume * _FILE_BYTES * (n_echoes + 1) * n_subjects
    free = shutil.disk_usage(existing).free
    if disk > free:
        raise ValueError(f"the cohort needs up to about {disk / 2**30:.3g} GiB of disk; "
                         f"{existing} has {free / 2**30:.3g} GiB free. Choose a smaller "
                         "--shape or fewer --n-subjects.")


def run(args):
    """Simulate the cohort described by parsed ``args``."""
    from ..datasets import simulate_cohort  # imported here: --help stays light

    check_outputs([args.out_dir], overwrite=args.overwrite, folders=True)
    check_size(tuple(args.shape), args.n_subjects, len(args.echo_times or [0]), args.n_jobs,
               args.out_dir)
    with atomic_directory(args.out_dir, overwrite=args.overwrite, manifest=MANIFEST) as folder:
        table = simulate_cohort(folder, args.n_subjects, lgg_fraction=args.lgg_fraction,
                                shape=tuple(args.shape), snr=args.snr, noise=args.noise,
                                random_state=args.seed, n_jobs=args.n_jobs,
                                progress=not args.quiet,
                                leakage=args.leakage, echo_times=args.echo_times,
                                preload=args.preload, hard_cases=args.hard_cases)
    counts = table["grade"].value_counts()
    snr = "inf" if math.isinf(args.snr) else f"{args.snr:g}"
    leakage = "leaky tumours" if args.leakage else "no leakage"
    if not args.quiet:
        print(f"wrote {len(table)} subjects ({counts.get('LGG', 0)} LGG, "
              f"{counts.get('HGG', 0)} HGG, SNR {snr}, {leakage}) to {args.out_dir}")
