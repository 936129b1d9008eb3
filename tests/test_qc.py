"""Quality control: each flag raised by a case that calls for it, and not by one that does not."""

import dataclasses
import json
import warnings

import numpy as np
import pytest

from skperfusion.datasets import simulate_exam
from skperfusion.deconvolution import OSVDDeconvolver
from skperfusion.exam import ExamToCurves
from skperfusion.exam_estimators import PerfusionMapper
from skperfusion.qc import (
    MAX_FIT_BOUNDS_FRACTION,
    MAX_NEGATIVE_FRACTION,
    QCWarning,
    exam_qc,
)

SHAPE = (16, 16, 2)


def _mapped(exam, **curves):
    step = ExamToCurves(**curves)
    result = PerfusionMapper(OSVDDeconvolver(), curves=step).fit([exam]).transform([exam])[0]
    return exam_qc(exam, result.aif, result.maps, leakage=step.leakage,
                   relaxivity=step.relaxivity, aif_scaling=step.aif_scaling)


def _flag(record, name):
    return next(flag for flag in record.flags if flag.name == name)


@pytest.fixture(scope="module")
def clean():
    exam = simulate_exam("sub-clean", "HGG", shape=SHAPE, random_state=0)
    return exam, _mapped(exam)


@pytest.fixture(scope="module")
def leaky():
    return simulate_exam("sub-leaky", "HGG", shape=SHAPE, random_state=0,
                         hard_cases=["strong_leakage"])


def test_clean_exam_raises_only_the_relative_only_flag(clean):
    _, record = clean
    assert [flag.name for flag in record.raised] == ["relative_only"]
    assert len(record.flags) == 7 and _flag(record, "aif_few_voxels").value >= 3
    # Recorded, JSON-ready, summarised in a line per raised flag.
    data = json.loads(record.to_json())
    assert data["subject"] == "sub-clean" and data["flags"]["relative_only"] is True
    assert data["checks"]["aif_late"]["threshold"] == 0.1 and data["aif"]["source"] == "mask"
    assert record.summary().splitlines()[0] == "QC sub-clean: 1 of 7 flag(s) raised:"
    assert record.summary().splitlines()[1].startswith("  - relative_only: ")


def test_relative_only_is_not_raised_for_absolute_curves(clean):
    exam, _ = clean
    record = _mapped(exam, aif_scaling="vof", relaxivity="van_osch")
    assert not _flag(record, "relative_only").raised


def test_aif_of_white_matter_is_late_and_arteries_are_not(clean):
    exam, record = clean
    assert not _flag(record, "aif_late").raised
    # White matter: its bolus comes after the cortex's and the arteries'.
    wm = exam.masks["nawm"]
    late = _mapped(dataclasses.replace(exam, masks={**exam.masks, "aif": wm}))
    flag = _flag(late, "aif_late")
    assert flag.raised and flag.value > 0.1 and "not arterial" in flag.message


def test_one_voxel_aif_is_flagged(clean):
    exam, _ = clean
    single = np.zeros(SHAPE, bool)
    single[tuple(np.argwhere(exam.masks["aif"])[0])] = True
    record = _mapped(dataclasses.replace(exam, masks={**exam.masks, "aif": single}))
    assert _flag(record, "aif_few_voxels").raised and _flag(record, "aif_few_voxels").value == 1


def test_saturated_arteries_are_flagged_with_their_handling(clean):
    _, record = clean
    assert not _flag(record, "aif_saturated").raised
    exam = simulate_exam("sub-sat", "HGG", shape=SHAPE, random_state=0,
                         hard_cases=["saturation"])
    masked, auto = _mapped(exam), _mapped(exam, aif="auto")
    assert _flag(masked, "aif_saturated").raised and "left clipped" in _flag(
        masked, "aif_saturated").message
    assert _flag(auto, "aif_saturated").raised and "gamma-variate" in _flag(
        auto, "aif_saturated").message
    assert any(auto.to_dict()["aif_saturated_samples"])


def test_leakage_signature_and_negative_maps_without_correction(clean, leaky):
    _, record = clean
    assert not _flag(record, "leakage_signature").raised
    assert not _flag(record, "negative_cbv_mtt").raised
    uncorrected = _mapped(leaky)
    flag = _flag(uncorrected, "leakage_signature")
    assert flag.raised and "--leakage" in flag.message and "tumour" in flag.message
    assert _flag(uncorrected, "negative_cbv_mtt").value > MAX_NEGATIVE_FRACTION
    # Asked for, the correction clears the flag (the signature stays measured).
    corrected = _flag(_mapped(leaky, leakage="bidirectional"), "leakage_signature")
    assert not corrected.raised and corrected.value == flag.value


def test_fit_bounds_from_nan_cbf_with_finite_cbv(clean):
    exam, _ = clean
    aif = ExamToCurves().transform(exam).aif
    brain = exam.masks["brain"]
    maps = {name: np.where(brain, 1.0, np.nan) for name in ("CBF", "CBV", "MTT")}
    assert not _flag(exam_qc(exam, aif, maps, bounded_fit=True), "fit_bounds").raised
    assert _flag(exam_qc(exam, aif, maps), "fit_bounds").value is None
    # One voxel in ten at a bound: NaN CBF (and MTT), finite CBV.
    at_bound = brain & (np.arange(brain.size).reshape(brain.shape) % 10 == 0)
    maps["CBF"][at_bound] = maps["MTT"][at_bound] = np.nan
    flag = _flag(exam_qc(exam, aif, maps, bounded_fit=True), "fit_bounds")
    assert flag.raised and flag.value == pytest.approx(at_bound.sum() / brain.sum())
    assert flag.value > MAX_FIT_BOUNDS_FRACTION


def test_warn_issues_one_warning_per_raised_flag_naming_the_subject(leaky):
    record = _mapped(leaky)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record.warn()
    messages = [str(item.message) for item in caught if item.category is QCWarning]
    assert len(messages) == len(record.raised) >= 2
    assert all(message.startswith("subject sub-leaky: QC ") for message in messages)


@pytest.mark.slow
def test_maps_writes_the_qc_record_and_the_computed_brain_mask(leaky, tmp_path, capsys):
    import nibabel as nib

    from skperfusion.cli import main
    from skperfusion.exam import write_exam

    masks = {k: v for k, v in leaky.masks.items() if k not in ("brain", "aif")}
    write_exam(dataclasses.replace(leaky, masks=masks), tmp_path / "sub-leaky")
    assert not (tmp_path / "sub-leaky" / "brain_mask.nii.gz").exists()
    assert main(["maps", str(tmp_path / "sub-leaky"), str(tmp_path / "out"), "--aif", "auto",
                 "--leakage", "none", "--no-report"]) == 0
    err = capsys.readouterr().err
    assert "QC sub-leaky: " in err and "leakage_signature" in err
    perf = tmp_path / "out" / "sub-leaky" / "perf"
    record = json.loads((perf / "sub-leaky_desc-osvd_qc.json").read_text())
    assert record["flags"]["leakage_signature"] and record["aif"]["source"] == "auto"
    assert record["aif"]["quality"]["n_voxels"] >= 3
    sidecar = json.loads((perf / "sub-leaky_desc-osvd_cbf.json").read_text())
    assert sidecar["QC"]["flags"] == record["flags"]
    # The brain mask computed from the baseline images is written with the maps.
    brain = nib.load(perf / "sub-leaky_desc-osvd_brainmask.nii.gz").get_fdata() > 0
    truth = leaky.masks["brain"]
    assert 2 * (brain & truth).sum() / (brain.sum() + truth.sum()) > 0.95
