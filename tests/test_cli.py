"""The ``skperfusion`` command line: round trips, bad input, interrupted runs."""

import json

import nibabel as nib
import numpy as np
import pytest

import skperfusion
from skperfusion.cli import main
from skperfusion.deconvolution import PERFUSION_MAPS, OSVDDeconvolver
from skperfusion.derivatives import map_file_name, subject_folder
from skperfusion.exam import load_exam, write_exam
from skperfusion.exam_estimators import PerfusionMapper


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "cohort"
    status = main(["simulate", str(root), "--n-subjects", "3", "--shape", "10", "10", "2",
                   "--snr", "40", "--seed", "5"])
    assert status == 0
    return root


def _map(out, subject, name, method="osvd"):
    """Path of a map in the derivatives dataset ``out``."""
    return out / subject_folder(subject) / map_file_name(subject, name, method)


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if "error:" in line]) == 1
    assert "Traceback" not in "".join(err)
    return err[-1]


def test_help_explains_units_and_inputs(capsys):
    with pytest.raises(SystemExit) as info:
        main(["maps", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for needle in ("ml/100g/min", "ml/100g", "EchoTime", "seconds", "dsc.nii.gz", "--method",
                   "sub-<id>[_ses-<s>]_desc-<method>_<map>.nii.gz", "--participant-label"):
        assert needle in text
    assert "(default: None)" not in text


def test_simulate_writes_a_loadable_cohort(cohort, capsys):
    assert {p.name for p in cohort.iterdir()} >= {"participants.tsv", "sub-001", "sub-003"}
    assert load_exam(cohort / "sub-002").ground_truth is not None


@pytest.mark.slow
@pytest.mark.parametrize("method", ["osvd", "tikhonov"])
def test_maps_round_trip_keeps_geometry_and_values(cohort, tmp_path, method):
    out = tmp_path / method
    assert main(["maps", str(cohort / "sub-001"), str(out), "--method", method,
                 "--leakage", "none"]) == 0
    dsc = nib.load(cohort / "sub-001" / "dsc.nii.gz")
    exam = load_exam(cohort / "sub-001")
    brain = exam.masks["brain"]
    for name in PERFUSION_MAPS:
        image = nib.load(_map(out, "sub-001", name, method))
        assert image.shape == dsc.shape[:3]
        np.testing.assert_allclose(image.affine, dsc.affine)
        data = image.get_fdata()
        assert np.isnan(data[~brain]).all()
    if method == "osvd":
        expected = PerfusionMapper(OSVDDeconvolver()).fit([exam]).transform([exam])[0].maps
        np.testing.assert_allclose(nib.load(_map(out, "sub-001", "CBF")).get_fdata(),
                                   expected["CBF"], rtol=1e-5, equal_nan=True)
    cbf = nib.load(_map(out, "sub-001", "CBF", method)).get_fdata()
    # Perfused voxels get a finite, positive CBF.
    perfused = np.isfinite(exam.ground_truth["MTT"])
    assert np.isfinite(cbf[perfused]).mean() > 0.99 and np.nanmedian(cbf[perfused]) > 0


@pytest.mark.slow
def test_train_then_maps_with_phae(cohort, tmp_path):
    model = tmp_path / "phae.pt"
    assert main(["train", str(cohort), str(model), "--phae-epochs", "1", "--max-train-voxels",
                 "300", "--phae-width", "4", "--phae-batch-size", "128", "--quiet"]) == 0
    out = tmp_path / "phae_maps"
    assert main(["maps", str(cohort / "sub-003"), str(out), "--method", "phae", "--model",
                 str(model)]) == 0
    image = nib.load(_map(out, "sub-003", "MTT", "phae"))
    brain = load_exam(cohort / "sub-003").masks["brain"]
    assert image.shape == brain.shape and np.isfinite(image.get_fdata()[brain]).all()
    # The paper's PHAE estimates no Tmax: no all-NaN file, and the sidecars say so.
    assert not _map(out, "sub-003", "Tmax", "phae").exists()
    sidecar = json.loads(_map(out, "sub-003", "MTT", "phae").with_suffix("").with_suffix(
        ".json").read_text())
    assert "tmax" in sidecar["MapsNotWritten"] and sidecar["Method"]["ModelFile"] == str(model)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["maps", "{tmp}/nowhere", "{tmp}/out"], "exam folder .*nowhere does not exist"),
        (["maps", "{cohort}/sub-001", "{tmp}/out", "--method", "phae"], "needs --model"),
        (["maps", "{cohort}/sub-001", "{tmp}/out", "--method", "phae", "--model",
          "{tmp}/none.pt"], "none.pt does not exist"),
        (["maps", "{cohort}/sub-001", "{tmp}/out", "--model", "{tmp}/m.pt"],
         "only used with --method phae"),
        (["train", "{tmp}", "{tmp}/m.pt"], "missing .*participants.tsv"),
        (["simulate", "{cohort}"], "cohort exists; pass --overwrite"),
        (["maps", "{cohort}/sub-001", "{tmp}/out", "--desc", "../x"],
         "--desc '../x' must be letters and digits only"),
        (["maps", "{cohort}", "{tmp}/out", "--participant-label", "009"],
         "--participant-label: sub-009 not in the cohort"),
    ],
)
def test_bad_input_exits_2_with_one_line(cohort, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, cohort=cohort) for a in argv]
    assert main(argv) == 2
    import re

    assert re.search(message, _one_line_error(capsys))


def test_bad_exam_file_names_subject_and_file(cohort, tmp_path, capsys):
    broken = tmp_path / "sub-bad"
    write_exam(load_exam(cohort / "sub-001"), broken)
    (broken / "dsc.json").write_text('{"EchoTime": 0.03}')
    assert main(["maps", str(broken), str(tmp_path / "out")]) == 2
    line = _one_line_error(capsys)
    assert "subject sub-bad" in line and "dsc.json" in line and "RepetitionTime" in line


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["maps", "a", "b", "--method", "magic"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["simulate", "x", "--n-subjects", "0"])
    assert info.value.code == 2


def test_existing_maps_need_overwrite(cohort, tmp_path, capsys):
    out = tmp_path / "maps"
    argv = ["maps", str(cohort / "sub-002"), str(out), "--no-report"]
    assert main(argv) == 0
    assert main(argv) == 2
    assert "--overwrite" in _one_line_error(capsys)
    assert main([*argv, "--overwrite"]) == 0


@pytest.mark.parametrize(("failure", "status"), [(KeyboardInterrupt, 130),
                                                 (OSError("No space left on device"), 2)])
def test_interrupted_maps_leave_no_partial_output(cohort, tmp_path, monkeypatch, capsys,
                                                  failure, status):
    real_save, calls = nib.save, []

    def failing_save(image, path):
        calls.append(path)
        if len(calls) == 2:
            raise failure
        real_save(image, path)

    monkeypatch.setattr(nib, "save", failing_save)
    out = tmp_path / "maps"
    assert main(["maps", str(cohort / "sub-001"), str(out)]) == status
    assert len(calls) == 2  # the first map was fully written to its temp file
    assert not out.exists()  # nor the folder this run would have created
    assert "Traceback" not in capsys.readouterr().err


def _options(parser):
    """Every option string of a parser, with its action."""
    return {option: action for action in parser._actions for option in action.option_strings}


def test_one_consistent_command_line(capsys):
    import argparse

    from skperfusion.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions
                    if isinstance(a, argparse._SubParsersAction)).choices
    for name, command in commands.items():
        options = _options(command)
        for option, action in options.items():
            assert action.help, f"{name} {option} has no help"
        assert "--quiet" in options and "--out" in options and "--overwrite" in options, name
        text = command.format_help()
        assert "(default: None)" not in text and "(default: False)" not in text, name
    for name in ("maps", "train", "study"):
        assert "--device" in _options(commands[name]), name
    phae = {option for option in _options(commands["train"]) if option.startswith("--phae-")}
    assert phae == {option for option in _options(commands["study"])
                    if option.startswith("--phae-")} - {"--phae-cv-epochs"}
    assert len(phae) == 6
    assert "K2" not in _options(commands["train"])["--leakage"].help
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"skperfusion {skperfusion.__version__}"


def test_quiet_prints_nothing(cohort, tmp_path, capsys):
    capsys.readouterr()
    assert main(["maps", str(cohort / "sub-001"), str(tmp_path / "out"), "--quiet",
                 "--no-report"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
