"""DICOM in: dcm2niix conversion into the exam layout, refusals."""

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("dcm2niix")

from skperfusion.cli import main  # noqa: E402
from skperfusion.exam import Exam, ExamToCurves, load_exam  # noqa: E402
from skperfusion.exam.dicom import import_dicom, write_dicom  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_multi_echo import _dual_echo_exam  # noqa: E402


@pytest.fixture(scope="module")
def dual_echo_series(tmp_path_factory):
    exam = _dual_echo_exam()
    folder = tmp_path_factory.mktemp("dicom") / "series"
    write_dicom(exam, folder)
    return exam, folder


def test_synthetic_series_carries_dicom_units(dual_echo_series):
    exam, folder = dual_echo_series
    files = sorted(folder.iterdir())
    assert len(files) == exam.n_echoes * exam.n_times * exam.shape[2]
    last = pydicom.dcmread(files[-1])
    assert (float(last.EchoTime), float(last.RepetitionTime), int(last.EchoNumbers)) == (
        30.0, 1000.0, 2)  # milliseconds in DICOM


def test_multi_echo_series_becomes_a_bids_exam(dual_echo_series, tmp_path):
    exam, folder = dual_echo_series
    paths = import_dicom(folder, tmp_path / "sub-me")
    assert [p.name for p in paths] == ["dsc_echo-1.json", "dsc_echo-1.nii.gz",
                                       "dsc_echo-2.json", "dsc_echo-2.nii.gz"]
    sidecars = [json.loads((tmp_path / "sub-me" / f"dsc_echo-{n}.json").read_text())
                for n in (1, 2)]
    assert [s["EchoTime"] for s in sidecars] == list(exam.echo_times)  # seconds
    assert all(s["RepetitionTime"] == exam.tr and s["FlipAngle"] == 60 for s in sidecars)
    for n in (1, 2):
        data = nib.load(tmp_path / "sub-me" / f"dsc_echo-{n}.nii.gz").get_fdata()
        # 12-bit storage: within half a quantisation step of 1/4000 of the maximum.
        np.testing.assert_allclose(data, exam.signal[..., n - 1],
                                   atol=0.51 * exam.signal.max() / 4000)
    grid = nib.load(tmp_path / "sub-me" / "dsc_echo-1.nii.gz")
    for name, mask in exam.masks.items():
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), grid.affine),
                 tmp_path / "sub-me" / f"{name}_mask.nii.gz")
    loaded = load_exam(tmp_path / "sub-me", require_rois=False)
    assert loaded.echo_times == exam.echo_times and loaded.flip_angle == 60.0
    np.testing.assert_allclose(ExamToCurves().transform(loaded).X,
                               ExamToCurves().transform(exam).X, atol=0.05)


def test_single_echo_series_and_cli_refusals(tmp_path, capsys):
    exam = _dual_echo_exam()
    single = Exam(exam.signal[..., 1], te=0.03, tr=1.0, affine=np.eye(4), masks=exam.masks)
    write_dicom(single, tmp_path / "series")
    out = tmp_path / "sub-01"
    assert main(["import-dicom", str(tmp_path / "series"), str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dsc.json", "dsc.nii.gz"]
    assert json.loads((out / "dsc.json").read_text())["EchoTime"] == 0.03
    assert main(["import-dicom", str(tmp_path / "series"), str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["import-dicom", str(tmp_path / "series"), str(out), "--overwrite",
                 "--non-steady-state-volumes", "3"]) == 0
    nib.save(nib.Nifti1Image(exam.masks["brain"].astype(np.uint8),
                             nib.load(out / "dsc.nii.gz").affine), out / "brain_mask.nii.gz")
    assert load_exam(out, require_rois=False, require_aif=False).n_skip == 3
    (tmp_path / "empty").mkdir()
    assert main(["import-dicom", str(tmp_path / "empty"), str(tmp_path / "sub-02")]) == 2
    assert "no convertible DICOM series" in capsys.readouterr().err
    assert not (tmp_path / "sub-02").exists()
    assert main(["import-dicom", str(tmp_path / "series"), str(tmp_path / "series" / "x")]) == 2


@pytest.fixture(scope="module")
def single_echo_exam():
    exam = _dual_echo_exam()
    return Exam(exam.signal[..., 1], te=0.03, tr=1.0, affine=np.eye(4), masks=exam.masks)


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_series_with_a_missing_or_damaged_frame_is_refused(single_echo_exam, tmp_path, capsys,
                                                              damage):
    paths = write_dicom(single_echo_exam, tmp_path / "series")
    frame = paths[20]  # one slice per frame: the 21st frame, at 20 s
    if damage == "missing":
        frame.unlink()
    else:
        frame.write_bytes(frame.read_bytes()[:-200])
    out = tmp_path / "sub-01"
    assert main(["import-dicom", str(tmp_path / "series"), str(out)]) == 2
    error = capsys.readouterr().err
    assert "incomplete" in error and "time between volumes varies" in error, error
    if damage == "missing":
        assert "gaps: 2 s after the frame at 19 s (TR 1 s)" in error, error
    else:
        assert "converted 59 of the 60 DICOM files" in error, error
    assert not out.exists()


def test_an_echo_time_stored_in_seconds_is_refused_naming_the_series(single_echo_exam, tmp_path,
                                                                     capsys):
    paths = write_dicom(single_echo_exam, tmp_path / "series")
    for path in paths:
        header = pydicom.dcmread(path)
        header.EchoTime = 0.03  # seconds where DICOM wants milliseconds
        header.save_as(path)
    out = tmp_path / "sub-01"
    assert main(["import-dicom", str(tmp_path / "series"), str(out)]) == 2
    error = capsys.readouterr().err
    assert "EchoTime=3e-05 s in the DICOM headers of" in error, error
    assert str(tmp_path / "series") in error and "1000 times too small" in error, error
    assert "skperfusion-dcm2niix" not in error  # no temporary file named
    assert not out.exists()
    assert main(["import-dicom", str(tmp_path / "series"), str(out),
                 "--allow-unusual-timing"]) == 0
    assert json.loads((out / "dsc.json").read_text())["EchoTime"] == pytest.approx(3e-05)
