"""Argument types shared by the sub-commands."""

import argparse
import math

from .._options import PHAE_PRECISIONS


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


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``(default: X)`` only where it informs: not None, False, or a help naming its default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def add_command(subparsers, name, summary, details, run, *, inputs=None, output=None):
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
    inputs : dict of str to str or None, default=None
        Positional input arguments (``dest`` to help), in order.
    output : dict or None, default=None
        Keyword arguments of :func:`add_output_arguments` (``dest``,
        ``help``, optionally ``positional``): the output and
        ``--overwrite``, after the inputs.

    Returns
    -------
    parser : argparse.ArgumentParser
        The sub-command's parser, to add the other options to.
    """
    parser = subparsers.add_parser(name, help=summary, description=f"{summary}. {details}",
                                   formatter_class=_DefaultsFormatter)
    parser.set_defaults(func=run)
    for dest, text in (inputs or {}).items():
        parser.add_argument(dest, help=text)
    if output is not None:
        add_output_arguments(parser, **output)
    return parser


def add_output_arguments(parser, dest, help, *, positional=True):
    """Add the output and ``--overwrite`` arguments, the same in every sub-command.

    The output is given as ``--out PATH``, or (where ``positional``) as the
    last positional argument; :func:`resolve_output` merges the two.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The sub-command's parser.
    dest : str
        Attribute of the parsed arguments that receives the output path.
    help : str
        What the output is (a folder, a file).
    positional : bool, default=True
        Also accept the output as a positional argument.
    """
    if positional:
        parser.add_argument(dest, nargs="?", metavar=dest.upper(), help=f"{help} (or --out)")
    parser.add_argument("--out", dest="out_option", metavar="PATH", default=None,
                        required=not positional, help=help)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the outputs of an earlier run (never an input of this "
                             "run); without it existing outputs are refused")
    parser.set_defaults(output_dest=dest)


def add_link_argument(parser):
    """Add ``--allow-external-links`` to a sub-command that reads a cohort."""
    parser.add_argument("--allow-external-links", action="store_true",
                        help="accept subject folders that are symbolic links leading outside "
                             "the cohort folder (refused by default)")


def add_parallel_arguments(parser, what):
    """Add ``--n-jobs`` (what runs in parallel) and ``--scheduler`` (a dask cluster).

    Parameters
    ----------
    parser : argparse.ArgumentParser
    what : str
        What runs in parallel, e.g. ``"exams of a cohort mapped"``.
    """
    from ._scheduler import add_scheduler_argument

    parser.add_argument("--n-jobs", type=int, default=None,
                        help=f"{what} in parallel (joblib; default -1 with --scheduler: every "
                             "worker of the cluster)")
    add_scheduler_argument(parser)


def add_quiet_argument(parser):
    """Add ``--quiet``: no progress bars and no summary line (errors still go to stderr)."""
    parser.add_argument("--quiet", action="store_true",
                        help="print nothing but errors (no progress bars, no summary)")


PHAE_PRESETS = {
    "cpu": {"max_epochs": 20, "lr": 3e-3, "batch_size": 512, "module__width": 32,
            "epoch_voxels": 4096},
    "paper": {"max_epochs": 65, "lr": 1e-4, "batch_size": 1536, "module__width": 32,
              "epoch_voxels": None},
}
"""PHAE training settings of ``train`` and ``study``: CPU-friendly (the default) or the
paper's (``--phae-paper``). The CPU set keeps the paper's encoder but trains 20 epochs on
fresh subsets of 4096 voxels at lr 3e-3 (160 steps instead of the paper's tens of
thousands): on the demo cohort the training loss plateaus within 5 epochs, and 40 epochs or
8-16 feature maps give the same test AUC."""

# option -> (PHAEDeconvolver parameter, type, help, the name ``train`` used before).
_PHAE_OPTIONS = {
    "--phae-epochs": ("max_epochs", positive_int, "training epochs", "--epochs"),
    "--phae-lr": ("lr", positive_float, "Adam learning rate", "--lr"),
    "--phae-batch-size": ("batch_size", positive_int, "voxels per training batch",
                          "--batch-size"),
    "--phae-width": ("module__width", positive_int, "feature maps of the first encoder block",
                     "--width"),
    "--phae-epoch-voxels": ("epoch_voxels", positive_int, "voxels drawn afresh for each epoch",
                            "--epoch-voxels"),
}


def add_phae_arguments(parser, extra):
    """Add the PHAE training options, the same in ``train`` and ``study``.

    ``--phae-paper`` picks the paper's preset instead of the CPU-friendly one
    (:data:`PHAE_PRESETS`); ``--phae-epochs``, ``--phae-lr``,
    ``--phae-batch-size``, ``--phae-width`` and ``--phae-epoch-voxels``
    override single settings of either. ``train``'s earlier names
    (``--paper``, ``--epochs``, ...) are accepted too, without help. The
    sub-command's own options follow, then ``--device`` and
    ``--torch-threads``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    extra : dict of str to dict
        The sub-command's own PHAE options: option name to the keyword
        arguments of ``add_argument``.
    """
    cpu, paper = PHAE_PRESETS["cpu"], PHAE_PRESETS["paper"]
    group = parser.add_argument_group(
        "PHAE training (defaults: the CPU-friendly settings, or the paper's with --phae-paper)")
    group.add_argument("--phae-paper", action="store_true",
                       help="the paper's settings: 65 epochs over every training voxel, lr "
                            "1e-4, batch 1536 (best on a GPU)")
    group.add_argument("--paper", action="store_true", dest="phae_paper", help=argparse.SUPPRESS)
    for option, (name, kind, text, old) in _PHAE_OPTIONS.items():
        dest = option.removeprefix("--").replace("-", "_")
        shown = "every training voxel" if paper[name] is None else f"{paper[name]:g}"
        group.add_argument(option, type=kind, default=argparse.SUPPRESS,
                           metavar="LR" if kind is positive_float else "N",
                           help=f"{text} (default {cpu[name]:g}; paper {shown})")
        group.add_argument(old, type=kind, dest=dest, default=argparse.SUPPRESS,
                           help=argparse.SUPPRESS)
    for option, kwargs in extra.items():
        group.add_argument(option, **kwargs)
    add_torch_arguments(group)


def phae_settings(args):
    """PHAE parameters from parsed ``args``: the CPU or paper preset, explicit options on top.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed by a parser with :func:`add_phae_arguments`.

    Returns
    -------
    params : dict
        ``PHAEDeconvolver`` parameters, ``device`` and ``precision`` included.

    Raises
    ------
    ValueError
        From :func:`check_torch_device`, for a ``--device`` torch cannot use.
    """
    check_torch_device(args.device)
    check_precision(args.device, args.precision)
    params = dict(PHAE_PRESETS["paper" if args.phae_paper else "cpu"], device=args.device,
                  precision=args.precision)
    for option, (name, *_) in _PHAE_OPTIONS.items():
        dest = option.removeprefix("--").replace("-", "_")
        if hasattr(args, dest):
            params[name] = getattr(args, dest)
    return params


def add_torch_arguments(group):
    """Add ``--device``, ``--precision`` and ``--torch-threads`` to the PHAE options of a
    sub-command."""
    group.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    add_precision_argument(group, default="float32")
    group.add_argument("--torch-threads", type=positive_int, default=None,
                       help="torch CPU threads for the PHAE training (default: torch's own, "
                            "one per core or OMP_NUM_THREADS; on an idle 2-core machine 2 "
                            "threads train 1.8 times as fast as 1, but on a busy machine 1 "
                            "can be faster: threads wait for each other)")


def add_precision_argument(group, default):
    """Add ``--precision``, the PHAE encoder's arithmetic in inference
    (``PHAEDeconvolver(precision=...)``).

    Parameters
    ----------
    group : argparse.ArgumentParser or argument group
    default : str or None
        The default; None keeps that of a loaded model.
    """
    kept = "the model's own" if default is None else default
    group.add_argument("--precision", choices=PHAE_PRECISIONS, default=default,
                       help=f"arithmetic of the PHAE encoder's convolutions in its maps "
                            f"(default {kept}; training is float32): bfloat16 is 1.8 times "
                            "as fast on CPUs with bfloat16 instructions, MTT within about "
                            "0.5 %%; tf32 needs CUDA")


def check_precision(device, precision):
    """Refuse ``--precision tf32`` without ``--device cuda`` before any work is done.

    Parameters
    ----------
    device : str
        The ``--device``.
    precision : str or None
        The ``--precision``.

    Raises
    ------
    ValueError
        For TF32 on a device other than CUDA.
    """
    if precision == "tf32" and not str(device).startswith("cuda"):
        raise ValueError(f"--precision tf32 needs --device cuda (TF32 is an NVIDIA format), "
                         f"not {device}; --precision bfloat16 reduces the precision there.")


def check_torch_device(name):
    """Refuse a ``--device`` that torch does not know or cannot use (imports torch).

    Parameters
    ----------
    name : str
        The ``--device`` value, e.g. ``"cpu"`` or ``"cuda:0"``.

    Raises
    ------
    ValueError
        Not a torch device name, or a CUDA device without CUDA available.
    """
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {name!r} is not a torch device; use e.g. cpu, cuda or "
                         "cuda:1.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: torch finds no CUDA device here; use --device "
                         "cpu.")


def resolve_output(parser, args):
    """Put the output given as ``--out`` or positionally into ``args.<dest>``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        Parser used for the error (exit code 2).
    args : argparse.Namespace
        Parsed arguments of a sub-command registered with
        :func:`add_output_arguments`.
    """
    dest = getattr(args, "output_dest", None)
    if dest is None:
        return
    positional, option = getattr(args, dest, None), args.out_option
    if positional is not None and option is not None and positional != option:
        parser.error(f"the output is given twice ({positional} and --out {option}).")
    if positional is None and option is None:
        parser.error(f"the output {dest.upper()} (or --out PATH) is required.")
    setattr(args, dest, option if option is not None else positional)
