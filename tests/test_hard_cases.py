"""Real-acquisition hard cases end to end: saturated arteries, a delayed territory, no brain
mask, a user's AIF table."""

import dataclasses
import json

import nibabel as nib
import numpy as np
import pytest

from skperfusion.datasets import simulate_exam
from skperfusion.datasets.cohort import LABELS, territory_mask
from skperfusion.deconvolution import OSVDDeconvolver, TikhonovDeconvolver
from skperfusion.exam import ExamToCurves, load_exam, write_exam
from skperfusion.exam.brain_mask import compute_brain_mask, otsu_threshold
from skperfusion.exam_estimators import PerfusionMapper, ROIRatio
from skperfusion.qc import exam_qc


@pytest.fixture(scope="module")
def hard():
    return simulate_exam("sub-hard", "HGG", shape=(16, 16, 3), random_state=7,
                         return_labels=True, hard_cases=["saturation", "delayed_territory"])


@pytest.mark.slow
@pytest.mark.parametrize("deconvolver", [OSVDDeconvolver, TikhonovDeconvolver])
def test_hard_case_exam_with_the_automatic_aif(hard, deconvolver):
    exam, labels = hard
    results = {}
    for aif in ("mask", "auto"):
        mapper = PerfusionMapper(deconvolver(), curves=ExamToCurves(aif=aif)).fit([exam])
        results[aif] = mapper.transform([exam])[0]
    auto = results["auto"]
    # The chosen voxels are the (saturated) arteries, the QC says so and finds them early.
    assert auto.aif.voxels.sum() >= 3 and not (auto.aif.voxels & (labels != LABELS["artery"])).any()
    record = exam_qc(exam, auto.aif, auto.maps)
    flags = record.to_dict()["flags"]
    assert flags["aif_saturated"] and not flags["aif_late"] and not flags["aif_few_voxels"]
    ratios = {aif: ROIRatio("CBF").transform([result])[0, 0] for aif, result in results.items()}
    assert abs(ratios["auto"] / ratios["mask"] - 1) < 0.10
    # Tmax: the territory's 4 s more delay (plus up to its 2 s more dispersion) shows.
    lobe = territory_mask(labels, exam.masks["nawm"])
    normal = np.isin(labels, (LABELS["gm"], LABELS["wm"])) & ~lobe
    tmax = auto.maps["Tmax"]
    assert 4.0 - exam.tr / 2 < np.median(tmax[lobe]) - np.median(tmax[normal]) < 6.0 + exam.tr
    assert np.mean(tmax[normal] < -0.5) < 0.05


def test_brain_mask_from_the_baseline_images():
    exam = simulate_exam(shape=(32, 32, 2), snr=20, random_state=2)
    brain, truth = compute_brain_mask(exam.signal, exam.n_skip), exam.masks["brain"]
    assert 2 * (brain & truth).sum() / (brain.sum() + truth.sum()) > 0.95
    with pytest.raises(ValueError, match="no contrast"):
        compute_brain_mask(np.full((8, 8, 2, 20), 100.0))
    # Two classes: the threshold lies between them, nearer to neither than half the gap.
    assert otsu_threshold(np.r_[np.full(30, 2.0), np.full(70, 10.0)]) == pytest.approx(6.0,
                                                                                       abs=4.0)


def test_exam_without_a_brain_mask_gets_one_computed(tmp_path):
    exam = simulate_exam("sub-nobrain", shape=(24, 24, 2), random_state=1)
    masks = {name: mask for name, mask in exam.masks.items() if name != "brain"}
    write_exam(dataclasses.replace(exam, masks=masks), tmp_path / "sub-nobrain")
    loaded = load_exam(tmp_path / "sub-nobrain", require_rois=False)
    assert loaded.extra["brain_mask"] == "computed"
    np.testing.assert_array_equal(loaded.masks["brain"],
                                  compute_brain_mask(loaded.signal, loaded.n_skip))
    assert "brain_mask" not in load_exam(_with_brain(exam, tmp_path)).extra


def _with_brain(exam, tmp_path):
    write_exam(exam, tmp_path / "sub-brain")
    return tmp_path / "sub-brain"


@pytest.mark.slow
def test_maps_with_a_users_aif_table(hard, tmp_path):
    from skperfusion.cli import main

    exam, _ = hard
    write_exam(exam, tmp_path / "sub-hard")
    assert main(["maps", str(tmp_path / "sub-hard"), str(tmp_path / "auto"), "--aif", "auto",
                 "--no-report", "--quiet"]) == 0
    perf = tmp_path / "auto" / "sub-hard" / "perf"
    table = perf / "sub-hard_desc-osvd_aif.tsv"
    assert main(["maps", str(tmp_path / "sub-hard"), str(tmp_path / "table"), "--aif",
                 str(table), "--no-report", "--quiet"]) == 0
    given = tmp_path / "table" / "sub-hard" / "perf"
    record = json.loads((given / "sub-hard_desc-osvd_qc.json").read_text())
    assert record["aif"]["source"] == str(table) and record["aif"]["voxels"] == 0
    # Same AIF curve: the same CBF up to the tissue baseline (detected on the brain mean
    # signal instead of the arteries' without arterial voxels: a percent or so).
    cbf = [nib.load(folder / "sub-hard_desc-osvd_cbf.nii.gz").get_fdata()[exam.masks["brain"]]
           for folder in (perf, given)]
    assert np.nanmedian(np.abs(cbf[1] / cbf[0] - 1)) < 0.05
    with pytest.raises(SystemExit):
        main(["maps", str(tmp_path / "sub-hard"), str(tmp_path / "bad"), "--aif", "nothere"])
