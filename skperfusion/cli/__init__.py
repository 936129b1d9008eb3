"""The ``skperfusion`` command line: simulate, import-dicom, maps, train (and study).

Every sub-command validates its inputs; a bad input ends with exit code 2
and a one-line message on stderr, never a traceback. Ctrl-C (SIGINT) ends
it with exit code 130 and SIGTERM with 143, in both cases after the
command's temporary files are removed and without any partial output; once
the command has finished, they are ignored (see
``docs/user_guide/data_safety.rst``).
"""

import argparse
import os
import shlex
import signal
import sys
import threading

from .. import __version__
from .._io import committed
from .._signals import Terminated, sigterm_as_interrupt
from . import import_dicom, maps, simulate, study, train
from ._args import resolve_output

__all__ = ["build_parser", "main"]

_COMMANDS = (simulate, import_dicom, maps, train, study)
_USER_ERRORS = (ValueError, OSError, KeyError)


class _IntermixedParser(argparse.ArgumentParser):
    """A sub-command parser taking options anywhere, also between the positionals.

    ``maps EXAM --method tikhonov OUT`` works as ``maps EXAM OUT --method
    tikhonov`` does (:meth:`argparse.ArgumentParser.parse_known_intermixed_args`,
    which itself calls ``parse_known_args`` twice: the flag routes those calls
    to the plain parsing).
    """

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def _exit_now(status):
    """End the process at once, after an interrupt whose clean-up is done.

    Worker threads of the command (joblib's threading backend) may still be
    in the middle of a task; the interpreter's shutdown would wait for some
    of them and kill others inside C++ code ("terminate called without an
    active exception", exit by SIGABRT). Their output cannot land (the
    temporary folders are closed to writes and removed), so nothing is lost
    by not waiting.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


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
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                       parser_class=_IntermixedParser)
    for command in _COMMANDS:
        command.register(subparsers)
    return parser


def main(argv=None):
    """Run the command line.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments without the program name; default ``sys.argv[1:]``, the
        ``skperfusion`` program itself: then, once the command succeeded,
        SIGINT and SIGTERM are ignored until the process ends, so that a
        Ctrl-C during the interpreter's shutdown cannot turn a complete run
        into a failed one.

    Returns
    -------
    status : int
        0 on success, 2 on bad input, 130 when interrupted (Ctrl-C), 143 when
        terminated (SIGTERM). An interrupted command has written nothing
        partial: only the outputs it had completed before the signal (the
        message names them; usually none) exist.
    """
    parser = build_parser()
    program = argv is None
    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    args = parser.parse_args(argv)
    # Recorded in the outputs (sidecars, report), so that a run can be repeated.
    args.command_line = shlex.join(["skperfusion", *argv])
    resolve_output(parser, args)
    commits = len(committed())
    try:
        finished = program and threading.current_thread() is threading.main_thread()
        with sigterm_as_interrupt():
            args.func(args)
            if finished:
                # Done: from here on a stop signal could only lie about the outcome.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        if finished:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except _USER_ERRORS as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"skperfusion {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        stopped = "terminated" if isinstance(exc, Terminated) else "interrupted"
        done = committed(commits)
        written = (f"{', '.join(map(str, done))} had been written, complete; nothing else was"
                   if done else "no partial output was")
        print(f"skperfusion {args.command}: {stopped}; {written} written.", file=sys.stderr)
        status = 143 if isinstance(exc, Terminated) else 130
        if program:
            _exit_now(status)
        return status
    return 0
