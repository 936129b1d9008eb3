"""``skperfusion import-dicom``: a DSC DICOM series into the exam layout."""

from ._args import add_command, add_quiet_argument

HELP = "convert a DSC DICOM series (single- or multi-echo) into an exam folder with dcm2niix"
DETAILS = (
    "Converts every DICOM file under DICOM_DIR with dcm2niix (pip install "
    "'skperfusion[dicom]'); the folder must hold one DSC series. One echo gives "
    "dsc.nii.gz + dsc.json, several give dsc_echo-<n>.nii.gz + dsc_echo-<n>.json numbered by "
    "increasing echo time; the BIDS sidecars hold EchoTime and RepetitionTime in seconds "
    "(converted from the DICOM milliseconds) and FlipAngle in degrees. Add "
    "brain_mask.nii.gz (and aif_mask.nii.gz, or use 'maps --aif auto') before computing maps. "
    "The exam folder is written as a whole at the end; an existing one is refused without "
    "--overwrite."
)


def register(subparsers):
    """Add ``import-dicom`` to the ``skperfusion`` sub-commands (``subparsers``).

    dcm2niix, an optional dependency, is needed only when the command runs.
    """
    parser = add_command(subparsers, "import-dicom", HELP, DETAILS, run,
                         inputs={"dicom_dir": "folder with the DICOM files of one DSC series"},
                         output={"dest": "exam_dir", "help": "exam folder to create (sub-<id>)"})
    parser.add_argument("--non-steady-state-volumes", type=int, default=0, metavar="N",
                        help="leading frames before steady state (from the protocol), written "
                             "to the sidecar as NonSteadyStateVolumes and left out of the "
                             "baseline")
    parser.add_argument("--allow-unusual-timing", action="store_true",
                        help="accept echo times outside 1-120 ms and repetition times outside "
                             "0.3-5 s (refused by default: almost always a unit error)")
    add_quiet_argument(parser)


def run(args):
    """Convert the series described by parsed ``args``."""
    from ..exam.dicom import import_dicom

    try:
        paths = import_dicom(args.dicom_dir, args.exam_dir,
                             non_steady_state=args.non_steady_state_volumes,
                             overwrite=args.overwrite,
                             allow_unusual_timing=args.allow_unusual_timing)
    except ImportError as exc:  # the optional dcm2niix: a user error, not a crash
        raise ValueError(str(exc)) from exc
    if not args.quiet:
        print(f"wrote {', '.join(path.name for path in paths)} to {args.exam_dir}")
