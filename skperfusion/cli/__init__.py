"""The ``skperfusion`` command line: simulate, maps, train (and study).

Every sub-command validates its inputs; a bad input ends with exit code 2
and a one-line message on stderr, never a traceback.
"""

import argparse
import sys

from . import maps, simulate, study, train

__all__ = ["build_parser", "main"]

_COMMANDS = (simulate, maps, train, study)
_USER_ERRORS = (ValueError, OSError, KeyError)


def build_parser():
    """Build the argument parser with every sub-command registered.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="skperfusion",
        description="DSC-MRI perfusion post-processing: simulate glioma cohorts, compute "
                    "CBF (ml/100g/min), CBV (ml/100g), MTT and Tmax (s) maps with oSVD, "
                    "Tikhonov or a trained physics-informed autoencoder (PHAE).",
        epilog="Exams are folders holding dsc.nii.gz (4-D signal), dsc.json (EchoTime and "
               "RepetitionTime in seconds) and aif/brain/tumor/nawm_mask.nii.gz; cohorts add "
               "participants.tsv (participant_id, grade LGG|HGG).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.register(subparsers)
    return parser


def main(argv=None):
    """Run the command line.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 2 on bad input, 130 when interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except _USER_ERRORS as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"skperfusion {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"skperfusion {args.command}: interrupted; no partial output was written.",
              file=sys.stderr)
        return 130
    return 0
