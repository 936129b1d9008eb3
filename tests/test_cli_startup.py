"""The command line starts without the heavy libraries (`skperfusion --help` under 1 s)."""

import subprocess
import sys

import pytest

HEAVY = ("torch", "skorch", "sklearn", "matplotlib", "nibabel", "pandas", "scipy")


def _loaded_after(code):
    probe = (f"{code}\nimport sys\n"
             f"print('loaded:', *(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    return result.stdout.splitlines()[-1].split()[1:]


@pytest.mark.subprocess
@pytest.mark.parametrize("code", [
    "import skperfusion.cli",
    "from skperfusion.cli import build_parser; build_parser()",
    "from skperfusion.cli import main\n"
    "try:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    "from skperfusion.cli import main\n"
    "for command in ('simulate', 'import-dicom', 'maps', 'train', 'study'):\n"
    "    try:\n        main([command, '--help'])\n    except SystemExit:\n        pass",
])
def test_help_imports_no_heavy_library(code):
    assert _loaded_after(code) == []


@pytest.mark.slow
@pytest.mark.subprocess
def test_package_import_is_lazy_but_complete():
    assert _loaded_after("import skperfusion, skperfusion.deconvolution as d\n"
                         "assert d.available_deconvolvers()") == []
    # The public names still resolve (and then import what they need).
    loaded = _loaded_after("from skperfusion import OSVDDeconvolver, PerfusionMapper, Exam\n"
                           "import skperfusion\nassert 'OSVDDeconvolver' in dir(skperfusion)")
    assert "sklearn" in loaded


def test_unknown_name_is_an_attribute_error():
    import skperfusion

    with pytest.raises(AttributeError, match="no attribute 'NotAThing'"):
        skperfusion.NotAThing  # noqa: B018


@pytest.mark.parametrize(("argv", "expected"), [
    (["maps", "EXAM", "--method", "tikhonov", "OUT"],
     {"out_dir": "OUT", "method": "tikhonov"}),
    (["maps", "--method", "tikhonov", "EXAM", "OUT", "--overwrite"],
     {"out_dir": "OUT", "overwrite": True}),
    (["import-dicom", "DICOM", "--non-steady-state-volumes", "3", "OUT"],
     {"dicom_dir": "DICOM", "exam_dir": "OUT", "non_steady_state_volumes": 3}),
    (["train", "COHORT", "--epochs", "2", "MODEL"], {"cohort_dir": "COHORT", "model": "MODEL"}),
])
def test_options_are_accepted_between_the_positionals(argv, expected):
    from skperfusion.cli import build_parser
    from skperfusion.cli._args import resolve_output

    parser = build_parser()
    args = parser.parse_args(argv)
    resolve_output(parser, args)
    assert {name: getattr(args, name) for name in expected} == expected
