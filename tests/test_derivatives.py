"""Maps as a BIDS derivatives dataset: names, sidecars, dataset_description, re-runs."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from skperfusion.cli import main
from skperfusion.datasets import simulate_exam
from skperfusion.derivatives import (
    BIDS_VERSION,
    map_file_name,
    rerun_settings,
    subject_folder,
    write_dataset_description,
    write_derivatives,
)
from skperfusion.exam import ExamToCurves, load_exam, write_exam
from skperfusion.exam_estimators import ExamMaps, PerfusionMapper


@pytest.fixture(scope="module")
def cohort(simulate_cli_cohort):
    return simulate_cli_cohort("derivatives", 3)


@pytest.fixture(scope="module")
def mapped(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("derivatives") / "out"
    assert main(["maps", str(cohort), str(out), "--participant-label", "001", "sub-003",
                 "--leakage", "bsw", "--quiet"]) == 0
    return out


@pytest.mark.slow
def test_cohort_maps_form_a_derivatives_dataset(mapped):
    description = json.loads((mapped / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["BIDSVersion"] == BIDS_VERSION
    assert description["GeneratedBy"][0]["Name"] == "skperfusion" and description["Name"]
    # --participant-label chose two of the three subjects.
    assert sorted(p.name for p in mapped.glob("sub-*") if p.is_dir()) == ["sub-001", "sub-003"]
    maps = sorted(mapped.glob("sub-*/perf/*.nii.gz"))
    images = [p for p in maps if not p.name.endswith(("_aifmask.nii.gz",))]
    suffixes = {p.name.split("_")[-1].removesuffix(".nii.gz") for p in images}
    assert suffixes == {"cbf", "cbv", "mtt", "tmax", "rcbf", "rcbv", "k2"}
    for image in images:
        assert image.name.startswith(image.parts[-3] + "_desc-osvd_")
        sidecar = json.loads(image.with_name(image.name.replace(".nii.gz", ".json")).read_text())
        assert sidecar["Units"] and sidecar["Description"]
        assert sidecar["ExamToCurves"]["leakage"] == "bsw"
        assert sidecar["Method"]["Name"] == "osvd"
        assert {"numpy", "torch", "skorch", "scikit-learn"} <= set(sidecar["SoftwareVersions"])
        assert any(source.endswith("dsc.nii.gz") for source in sidecar["Sources"])
        assert sidecar["CommandLine"].startswith("skperfusion maps ")
    # Every JSON file but the QC record (qc.json) is a map's sidecar.
    units = {p.name.split("_")[-1]: json.loads(p.read_text())["Units"]
             for p in mapped.glob("sub-001/perf/*.json") if not p.name.endswith("_qc.json")}
    assert units == {"cbf.json": "ml/100g/min", "cbv.json": "ml/100g", "mtt.json": "s",
                     "tmax.json": "s", "rcbf.json": "dimensionless",
                     "rcbv.json": "dimensionless", "k2.json": "1/s"}
    index = (mapped / "index.html").read_text()
    assert "sub-001_desc-osvd_report.html" in index and "sub-003_desc-osvd_report.html" in index


@pytest.mark.slow
def test_pybids_indexes_the_derivatives_with_their_metadata(mapped):
    bids = pytest.importorskip("bids", reason="pybids is not installed (the test extra has it)")
    layout = bids.BIDSLayout(mapped, validate=True, is_derivative=True)
    assert layout.get_subjects() == ["001", "003"]
    cbf = layout.get(suffix="cbf", desc="osvd", extension=".nii.gz")
    assert len(cbf) == 2
    assert all(image.get_metadata()["Units"] == "ml/100g/min" for image in cbf)
    suffixes = set(layout.get(return_type="id", target="suffix", extension=".nii.gz"))
    assert suffixes == {"cbf", "cbv", "mtt", "tmax", "rcbf", "rcbv", "k2", "aifmask"}


@pytest.mark.slow
def test_rerun_from_a_sidecar_gives_identical_maps(cohort, mapped):
    folder = mapped / subject_folder("sub-003")
    sidecar = folder / map_file_name("sub-003", "CBF", "osvd", extension=".json")
    exam = load_exam(cohort / "sub-003")
    again = rerun_settings(sidecar).fit([exam]).transform([exam])[0].maps
    for name in ("CBF", "CBV", "MTT", "Tmax", "K2"):
        written = nib.load(folder / map_file_name("sub-003", name, "osvd")).get_fdata()
        np.testing.assert_array_equal(written, again[name].astype(np.float32))


@pytest.mark.slow
def test_sessions_are_read_and_written(cohort, tmp_path):
    subject = tmp_path / "cohort" / "sub-007"
    for session in ("ses-01", "ses-02"):
        shutil.copytree(cohort / "sub-002", subject / session)
    out = tmp_path / "out"
    assert main(["maps", str(tmp_path / "cohort"), str(out), "--no-report", "--quiet"]) == 0
    for session in ("01", "02"):
        folder = out / "sub-007" / f"ses-{session}" / "perf"
        assert (folder / f"sub-007_ses-{session}_desc-osvd_cbf.nii.gz").is_file()
        assert (folder / f"sub-007_ses-{session}_desc-osvd_cbf.json").is_file()
    assert not list(out.glob("*.html"))  # --no-report
    # One session given as the input: the same names.
    single = tmp_path / "single"
    assert main(["maps", str(subject / "ses-02"), str(single), "--quiet"]) == 0
    assert (single / "sub-007" / "ses-02" / "perf" / "sub-007_ses-02_desc-osvd_mtt.nii.gz"
            ).is_file()
    page = (single / "sub-007_ses-02_desc-osvd_report.html").read_text()
    assert "<h1>sub-007 ses-02: oSVD perfusion maps (desc-osvd)</h1>" in page


def _mapped_exam():
    exam = simulate_exam("sub-042", "HGG", shape=(8, 8, 1), random_state=0)
    mapper = PerfusionMapper(curves=ExamToCurves()).fit([exam])
    return exam, mapper, mapper.transform([exam])[0]


def test_a_map_the_method_does_not_estimate_is_not_written(tmp_path):
    exam, mapper, result = _mapped_exam()
    no_tmax = ExamMaps(exam, {**result.maps, "Tmax": np.full(exam.shape, np.nan)},
                       result.seconds, result.mask, result.aif)
    paths = write_derivatives(no_tmax, tmp_path, mapper, report=False,
                              qc={"flags": {"aif_late": False}})
    names = {p.name for p in paths}
    assert "sub-042_desc-osvd_tmax.nii.gz" not in names
    assert "sub-042_desc-osvd_cbf.nii.gz" in names
    sidecar = json.loads((tmp_path / "sub-042" / "perf" / "sub-042_desc-osvd_cbf.json")
                         .read_text())
    assert "tmax" in sidecar["MapsNotWritten"]
    assert sidecar["QC"] == {"flags": {"aif_late": False}}
    # A later run that has the map again writes it; the stale-name list covers it.
    write_derivatives(result, tmp_path, mapper, report=False)
    assert (tmp_path / "sub-042" / "perf" / "sub-042_desc-osvd_tmax.nii.gz").is_file()


def test_another_datasets_description_is_refused(tmp_path):
    (tmp_path / "dataset_description.json").write_text(
        json.dumps({"Name": "raw", "BIDSVersion": "1.8.0"}))
    with pytest.raises(FileExistsError, match="not written by skperfusion"):
        write_dataset_description(tmp_path)
    # Its own description is rewritten in place.
    (tmp_path / "dataset_description.json").unlink()
    write_dataset_description(tmp_path)
    write_dataset_description(tmp_path)
    assert json.loads((tmp_path / "dataset_description.json").read_text())["DatasetType"] == (
        "derivative")


def test_maps_refuses_an_output_inside_its_input(cohort, tmp_path, capsys):
    exam = tmp_path / "sub-001"
    write_exam(load_exam(cohort / "sub-001"), exam)
    assert main(["maps", str(exam), str(exam / "derivatives")]) == 2
    assert "inside an exam or cohort folder" in capsys.readouterr().err
    assert sorted(p.name for p in exam.iterdir() if p.is_dir()) == []
