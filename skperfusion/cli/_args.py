"""Argument types shared by the sub-commands."""

import argparse
import math


def positive_int(text):
    """Parse an integer > 0 (argparse ``type``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text):
    """Parse a float > 0, ``inf`` allowed (argparse ``type``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or math.isnan(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_command(subparsers, name, summary, details, run):
    """Register a sub-command whose ``--help`` shows the defaults.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        Sub-parsers of the ``skperfusion`` parser.
    name : str
        Sub-command name.
    summary : str
        One-line help, also the start of the description.
    details : str
        Rest of the description (inputs, outputs, units).
    run : callable
        ``run(args)`` executing the command.

    Returns
    -------
    parser : argparse.ArgumentParser
        The sub-command's parser, to add arguments to.
    """
    parser = subparsers.add_parser(name, help=summary, description=f"{summary}. {details}",
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.set_defaults(func=run)
    return parser
