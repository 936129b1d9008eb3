"""Exams on disk: model, loading, curves, atomic map output."""

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from skperfusion.datasets import simulate_cohort, simulate_exam
from skperfusion.deconvolution import PERFUSION_MAPS
from skperfusion.exam import (
    Exam,
    ExamToCurves,
    load_cohort,
    load_exam,
    resample_curves,
    save_maps,
    time_grid,
    write_exam,
)
from skperfusion.preprocessing import ConcentrationTransformer, DegenerateVoxelWarning

SHAPE = (10, 10, 2)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    simulate_cohort(root, 4, shape=SHAPE, snr=40.0, random_state=3)
    return root


@pytest.fixture
def exam_dir(cohort, tmp_path):
    """A writable copy of one simulated exam."""
    exam = load_exam(cohort / "sub-001")
    write_exam(exam, tmp_path / "sub-001")
    return tmp_path / "sub-001"


def _hand_exam(n_times=40, te=0.03, n_skip=0):
    """Exam whose concentrations are known: S = 200 · exp(-TE · C)."""
    t = np.arange(n_times, dtype=float)
    aif = np.where(t >= 10, (t - 10) ** 2 * np.exp(-(t - 10) / 2.0), 0.0)
    tissue = 0.2 * np.convolve(aif, np.exp(-t / 4.0))[:n_times]
    concentration = np.zeros((3, 3, 1, n_times))
    concentration[0, 0, 0] = aif
    concentration[1:, 1:, 0] = tissue
    signal = 200.0 * np.exp(-te * concentration)
    masks = {"aif": np.zeros((3, 3, 1), bool), "brain": np.zeros((3, 3, 1), bool)}
    masks["aif"][0, 0, 0] = True
    masks["brain"][1:, 1:, 0] = True
    exam = Exam(signal, te=te, tr=1.0, affine=np.eye(4), masks=masks, subject_id="sub-hand",
                n_skip=n_skip)
    return exam, tissue, aif


def _curves(exam, **params):
    """The voxel curves ``X`` of the brain mask, through the one exam-to-curves step."""
    return ExamToCurves(**params).transform(exam).X


def test_curves_recover_known_concentrations():
    exam, tissue, aif = _hand_exam()
    X = _curves(exam)
    assert X.shape == (4, 2, 40)
    np.testing.assert_allclose(X[:, 0], np.tile(tissue, (4, 1)), atol=1e-9)
    np.testing.assert_allclose(X[:, 1], np.tile(aif, (4, 1)), atol=1e-9)


def test_curves_skip_non_steady_frames_and_accept_a_transformer():
    exam, tissue, _ = _hand_exam(n_skip=3)
    exam.signal[..., :3] *= 1.5  # the overshoot that must not enter the baseline
    X = _curves(exam)
    assert X.shape == (4, 2, 37)
    np.testing.assert_allclose(X[0, 0], tissue[3:], atol=1e-9)
    X_norm = _curves(exam, transformer=ConcentrationTransformer(te=0.03, n_skip=3,
                                                                normalize_by_aif_peak=True))
    np.testing.assert_allclose(X_norm[:, 1].max(axis=1), 1.0)


def test_aif_is_the_mean_arterial_signal_converted_after_averaging():
    exam, _, _ = _hand_exam()
    exam.masks["aif"][0, 1, 0] = True  # second arterial voxel, flat signal
    mean_signal = exam.signal[exam.masks["aif"]].mean(axis=0)
    expected = -np.log(mean_signal / mean_signal[:10].mean()) / exam.te
    np.testing.assert_allclose(_curves(exam)[0, 1], expected, atol=1e-9)


def test_curves_resample_onto_a_time_grid():
    exam, _, aif = _hand_exam()
    X = _curves(exam, tr=0.5, n_times=100)
    assert X.shape == (4, 2, 100)
    np.testing.assert_allclose(X[0, 1, ::2][:40], aif, atol=1e-9)
    np.testing.assert_allclose(X[0, 1, 1:79:2], 0.5 * (aif[:-1] + aif[1:]), atol=1e-9)
    np.testing.assert_allclose(X[0, 1, 79:], 0.0)  # nothing acquired past the end
    original = _curves(exam)
    # Zero past the end keeps the acquired areas, hence CBV (eq. 2), up to the
    # triangle of the step to zero, half a new interval wide.
    step_to_zero = 0.5 * 0.5 * original[..., -1]
    np.testing.assert_allclose(np.trapezoid(X, dx=0.5, axis=-1),
                               np.trapezoid(original, dx=exam.tr, axis=-1) + step_to_zero,
                               rtol=1e-9)


def test_resample_is_exact_on_a_ramp_and_validates():
    ramp = np.arange(10.0)[None] * 2.0
    np.testing.assert_allclose(resample_curves(ramp, 1.5, 1.0, 13), [np.arange(13) * 4 / 3])
    with pytest.raises(ValueError, match="new_tr"):
        resample_curves(ramp, 1.0, 0.0, 5)


def test_to_volume_scatters_in_mask_order_with_nan_outside():
    exam, _, _ = _hand_exam()
    volume = exam.to_volume(np.arange(4.0))
    assert np.isnan(volume[0]).all() and np.isnan(volume[:, 0]).all()
    np.testing.assert_array_equal(volume[1:, 1:, 0], [[0, 1], [2, 3]])
    assert exam.to_volume(np.ones((4, 3))).shape == (3, 3, 1, 3)
    with pytest.raises(ValueError, match="4 voxels"):
        exam.to_volume(np.ones(5))


def test_with_signal_copies_everything_else():
    exam, _, _ = _hand_exam()
    noisy = exam.with_signal(exam.signal * 1.01)
    assert noisy.te == exam.te and noisy.masks["brain"] is exam.masks["brain"]
    assert "sub-hand" in repr(noisy) and "200" not in repr(noisy)
    np.testing.assert_allclose(noisy.signal, exam.signal * 1.01)
    with pytest.raises(ValueError, match="expected"):
        exam.with_signal(exam.signal[..., :5])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"signal": np.ones((3, 3, 40))}, "must be 4-D"),
        ({"te": 0.0}, "TE must be a positive"),
        ({"tr": -1.0}, "TR must be a positive"),
        ({"grade": "GBM"}, "unknown grade 'GBM'"),
        ({"masks": {"aif": np.ones((3, 3, 2), bool)}}, "aif mask has shape"),
        ({"masks": {"aif": np.zeros((3, 3, 1), bool)}}, "aif mask is empty"),
        ({"masks": {"lesion": np.ones((3, 3, 1), bool)}}, "unknown mask"),
        ({"signal": np.full((3, 3, 1, 40), np.nan)}, "NaN"),
    ],
)
def test_exam_validates_its_fields(change, message):
    exam, _, _ = _hand_exam()
    fields = {"signal": exam.signal, "te": 0.03, "tr": 1.0, "affine": np.eye(4),
              "masks": exam.masks, "subject_id": "sub-x"}
    with pytest.raises(ValueError, match=message) as info:
        Exam(**{**fields, **change})
    assert "sub-x" in str(info.value)


def test_curves_nan_for_a_non_positive_voxel_and_reject_a_flat_aif():
    # A degenerate voxel gives NaN with one warning; the others are unchanged.
    exam, _, _ = _hand_exam()
    clean = _curves(exam)
    exam.signal[1, 1, 0, 5] = 0.0
    with pytest.warns(DegenerateVoxelWarning, match=r"1 of \d+ selected voxel\(s\) \(first: "
                                                    r"voxel \(1, 1, 0\)\)") as record:
        X = _curves(exam)
    assert len(record) == 1
    assert np.isnan(X[0]).all()  # voxel (1, 1, 0) is the first of the brain mask
    np.testing.assert_array_equal(X[1:], clean[1:])
    exam, _, _ = _hand_exam()
    exam.signal[0, 0, 0] = 100.0
    with pytest.raises(ValueError, match="flat"):
        _curves(exam)


def test_write_then_load_round_trips(tmp_path):
    exam = simulate_exam("sub-007", "LGG", shape=SHAPE, random_state=1)
    write_exam(exam, tmp_path / "sub-007")
    loaded = load_exam(tmp_path / "sub-007", grade="LGG")
    assert loaded.subject_id == "sub-007" and loaded.grade == "LGG"
    np.testing.assert_array_equal(loaded.signal, exam.signal)
    np.testing.assert_allclose(loaded.affine, exam.affine)
    assert (loaded.te, loaded.tr, loaded.n_skip) == (exam.te, exam.tr, exam.n_skip)
    for name in exam.masks:
        np.testing.assert_array_equal(loaded.masks[name], exam.masks[name])
    for name in PERFUSION_MAPS:
        np.testing.assert_allclose(loaded.ground_truth[name], exam.ground_truth[name],
                                   rtol=1e-6, equal_nan=True)
    assert not list(tmp_path.glob("sub-007/.*"))  # no temp files left


def test_load_cohort_gives_grades_extra_and_ground_truth_back(cohort):
    exams = load_cohort(cohort, n_jobs=2)
    import pandas as pd

    table = pd.read_csv(cohort / "participants.tsv", sep="\t")
    assert [e.subject_id for e in exams] == list(table["participant_id"])
    assert [e.grade for e in exams] == list(table["grade"])
    for exam, ratio in zip(exams, table["true_cbf_ratio"], strict=True):
        assert exam.extra["true_cbf_ratio"] == pytest.approx(ratio)
        truth = exam.ground_truth["CBF"]
        assert truth[exam.masks["tumor"]].mean() / truth[exam.masks["nawm"]].mean() == (
            pytest.approx(ratio, rel=1e-5))


def _remove(folder, name):
    (folder / name).unlink()


def _write_sidecar(folder, content):
    (folder / "dsc.json").write_text(content)


def _replace_image(folder, name, data):
    # On the exam's grid: only the content is wrong.
    nib.save(nib.Nifti1Image(data, nib.load(folder / "dsc.nii.gz").affine), folder / name)


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        (lambda f: _remove(f, "dsc.nii.gz"), FileNotFoundError, "missing DSC file .*dsc.nii.gz"),
        (lambda f: _remove(f, "dsc.json"), FileNotFoundError, "missing sidecar .*dsc.json"),
        (lambda f: _remove(f, "aif_mask.nii.gz"), FileNotFoundError,
         "missing aif mask file .*aif_mask"),
        (lambda f: _remove(f, "tumor_mask.nii.gz"), FileNotFoundError, "tumor_mask"),
        (lambda f: _write_sidecar(f, '{"EchoTime": 0.03}'), ValueError,
         "dsc.json has no 'RepetitionTime'"),
        (lambda f: _write_sidecar(f, '{"EchoTime": 30, "RepetitionTime": 1.2}'), ValueError,
         "looks like milliseconds"),
        (lambda f: _write_sidecar(f, '{"EchoTime": -0.03, "RepetitionTime": 1.2}'),
         ValueError, "positive number of seconds"),
        (lambda f: _write_sidecar(f, "{not json"), ValueError, "not valid JSON"),
        (lambda f: _replace_image(f, "dsc.nii.gz", np.ones(SHAPE, np.float32)), ValueError,
         "must be 4-D"),
        (lambda f: _replace_image(f, "brain_mask.nii.gz", np.ones((9, 10, 2), np.uint8)),
         ValueError, r"brain mask .*brain_mask.nii.gz has shape \(9, 10, 2\)"),
        (lambda f: _replace_image(f, "aif_mask.nii.gz", np.zeros(SHAPE, np.uint8)),
         ValueError, "aif mask .*aif_mask.nii.gz is empty"),
        (lambda f: _replace_image(f, "nawm_mask.nii.gz", np.zeros(SHAPE, np.uint8)),
         ValueError, "nawm mask .*nawm_mask.nii.gz is empty"),
        (lambda f: (f / "dsc.nii.gz").write_bytes(b"\x1f\x8b not really gzip"), ValueError,
         "cannot read DSC file .*dsc.nii.gz"),
        (lambda f: (f / "tumor_mask.nii.gz").write_bytes(b"garbage"), ValueError,
         "cannot read tumor mask file"),
    ],
)
def test_bad_exam_files_raise_naming_subject_and_file(exam_dir, damage, error, message):
    damage(exam_dir)
    with pytest.raises(error, match=message) as info:
        load_exam(exam_dir)
    assert "subject sub-001" in str(info.value)


def test_rois_are_optional_for_maps(exam_dir):
    _remove(exam_dir, "tumor_mask.nii.gz")
    exam = load_exam(exam_dir, require_rois=False)
    assert set(exam.masks) == {"aif", "brain", "nawm", "vof"}  # the simulator writes a vof mask


def test_bad_cohort_tables(cohort, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"participants\.tsv"):
        load_cohort(tmp_path)
    (tmp_path / "participants.tsv").write_text("participant_id\tgrade\nsub-001\tGBM\n")
    with pytest.raises(ValueError, match="subject sub-001: unknown grade 'GBM'"):
        load_cohort(tmp_path)
    (tmp_path / "participants.tsv").write_text("participant_id\tage\nsub-001\t50\n")
    with pytest.raises(ValueError, match="no 'grade' column"):
        load_cohort(tmp_path)
    (tmp_path / "participants.tsv").write_text("participant_id\tgrade\nsub-009\tLGG\n")
    with pytest.raises(FileNotFoundError, match="subject sub-009: exam folder"):
        load_cohort(tmp_path)


def test_save_maps_keeps_geometry(cohort, tmp_path):
    exam = load_exam(cohort / "sub-002")
    maps = {name: exam.ground_truth[name] for name in PERFUSION_MAPS}
    paths = save_maps(maps, exam, tmp_path / "maps", prefix="gt_")
    assert sorted(p.name for p in paths) == sorted(f"gt_{n}.nii.gz" for n in PERFUSION_MAPS)
    image = nib.load(tmp_path / "maps" / "gt_CBF.nii.gz")
    assert image.shape == exam.shape
    np.testing.assert_allclose(image.affine, nib.load(cohort / "sub-002" / "dsc.nii.gz").affine)
    np.testing.assert_allclose(image.get_fdata(), exam.ground_truth["CBF"], rtol=1e-6,
                               equal_nan=True)
    with pytest.raises(ValueError, match="CBF map has shape"):
        save_maps({"CBF": np.ones((2, 2, 2))}, exam, tmp_path / "maps")


def test_failed_save_leaves_no_partial_output(cohort, tmp_path, monkeypatch):
    exam = load_exam(cohort / "sub-002")
    out = tmp_path / "maps"
    save_maps({"CBF": np.zeros(exam.shape)}, exam, out)
    before = (out / "CBF.nii.gz").read_bytes()
    real_save, calls = nib.save, []

    def failing_save(image, path):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt  # interrupted while writing the third map
        real_save(image, path)

    monkeypatch.setattr(nib, "save", failing_save)
    maps = {name: np.ones(exam.shape) for name in PERFUSION_MAPS}
    with pytest.raises(KeyboardInterrupt):
        save_maps(maps, exam, out)
    assert sorted(os.listdir(out)) == ["CBF.nii.gz"]  # nothing new, no temp files
    assert (out / "CBF.nii.gz").read_bytes() == before
    assert all(Path(p).parent == out for p in calls)  # temp files in the target folder


def test_sidecar_records_non_steady_frames(exam_dir):
    sidecar = json.loads((exam_dir / "dsc.json").read_text())
    exam = load_exam(exam_dir)
    assert sidecar["NonSteadyStateVolumes"] == exam.n_skip > 0


def test_exam_to_curves_is_a_scikit_learn_style_step():
    from sklearn.base import clone
    from sklearn.utils._param_validation import InvalidParameterError

    from skperfusion.exam import ExamToCurves

    step = ExamToCurves(aif="auto", aif_scaling="vof", tr=0.5, n_times=100)
    assert clone(step).get_params() == step.get_params()
    exam, _, aif = _hand_exam()
    curves = ExamToCurves(tr=0.5, n_times=100).transform(exam)
    np.testing.assert_allclose(curves.aif.curve[::2][:40], aif, atol=1e-9)
    # One value per brain voxel goes back to its voxel (C order), NaN elsewhere.
    volume = curves.to_volume(np.arange(4.0))
    np.testing.assert_array_equal(volume[exam.masks["brain"]], np.arange(4.0))
    assert np.isnan(volume[~exam.masks["brain"]]).all() and curves.exam is exam
    with pytest.raises(ValueError, match="sub-hand: values of shape"):
        curves.to_volume(np.arange(5.0))
    assert curves.tr == 0.5 and curves.aif.voxels[0, 0, 0] and curves.k2 is None
    with pytest.raises(InvalidParameterError, match="aif"):
        ExamToCurves(aif=3).transform(exam)
    with pytest.raises(ValueError, match="sub-hand: AIF table guess does not exist"):
        ExamToCurves(aif="guess").transform(exam)
    del exam.masks["aif"]
    with pytest.raises(ValueError, match=r"sub-hand: no aif mask.*aif='auto'"):
        ExamToCurves().transform(exam)


def test_a_single_echo_must_be_4d():
    exam, _, _ = _hand_exam()
    with pytest.raises(ValueError, match="give a single echo as a 4-D signal"):
        Exam(exam.signal[..., None], te=(0.03,), tr=1.0, affine=np.eye(4), masks=exam.masks)
    with pytest.raises(ValueError, match=r"4-D .* takes one echo time"):
        Exam(exam.signal, te=(0.01, 0.03), tr=1.0, affine=np.eye(4), masks=exam.masks)


def test_transform_chunks_match_transform_row_for_row():
    exam = simulate_exam("sub-001", "HGG", shape=(8, 8, 2), random_state=1)
    brain = np.argwhere(exam.masks["brain"])
    exam.signal[tuple(brain[5])][exam.n_skip + 3] = 0.0  # one degenerate voxel
    step = ExamToCurves(aif_scaling="vof", relaxivity="van_osch")
    with pytest.warns(DegenerateVoxelWarning):
        whole = step.transform(exam)
    with pytest.warns(DegenerateVoxelWarning):
        blocks = list(step.transform_chunks(exam, chunk_voxels=7))
    assert len(blocks) == -(-len(whole.X) // 7)
    stacked = np.concatenate([curves.X for _, curves in blocks])
    np.testing.assert_array_equal(stacked, whole.X)
    assert np.isnan(whole.X[5]).all() and np.isfinite(np.delete(whole.X, 5, axis=0)).all()
    assert all(curves.aif.scale == whole.aif.scale for _, curves in blocks)


@pytest.mark.parametrize("tr, n_times, n_skip, grid_tr, expected", [
    (1.0, 40, 0, None, 40), (1.0, 40, 3, None, 37),  # the exam's own kept frames
    (1.7, 80, 0, None, 80),  # (80 - 1) · 1.7 / 1.7 rounds to 78.99999999999999
    (1.0, 40, 0, 0.5, 79),   # 39 s acquired: t = 0, 0.5, ..., 39
    (1.0, 40, 0, 0.7, 56),   # 55 · 0.7 = 38.5 s is the last sample before 39 s
])
def test_time_grid_covers_the_kept_acquisition(tr, n_times, n_skip, grid_tr, expected):
    exam = Exam(np.ones((1, 1, 1, n_times)), te=0.03, tr=tr, affine=np.eye(4),
                masks={"brain": np.ones((1, 1, 1), bool)}, n_skip=n_skip)
    assert time_grid([exam], grid_tr) == (tr if grid_tr is None else grid_tr, expected)
    longer = Exam(np.ones((1, 1, 1, 2 * n_times)), te=0.03, tr=tr / 2, affine=np.eye(4),
                  masks={"brain": np.ones((1, 1, 1), bool)}, n_skip=n_skip)
    # A cohort takes the smallest TR and the shortest acquisition (that of ``exam``).
    cohort = ((tr / 2, 2 * (n_times - n_skip - 1) + 1) if grid_tr is None
              else (grid_tr, expected))
    assert time_grid([exam, longer], grid_tr) == cohort


@pytest.mark.parametrize("shape", [(5, 4, 3, 7), (5, 4, 3, 7, 2)])
@pytest.mark.parametrize("layout", ["F", "view"])
def test_exam_signal_is_stored_in_c_order_whatever_its_layout(shape, layout):
    from skperfusion.exam.model import _c_order

    values = np.random.default_rng(0).random((2 * shape[0], *shape[1:]))
    signal = np.asfortranarray(values[:shape[0]]) if layout == "F" else values[::2]
    ordered = _c_order(signal)
    assert ordered.flags.c_contiguous and ordered.dtype == signal.dtype
    np.testing.assert_array_equal(ordered, signal)
    assert _c_order(ordered) is ordered  # no copy of a C-order signal
