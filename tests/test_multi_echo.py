"""Multi-echo DSC: ΔR2* free of T1 effects, exams on disk, bad input."""

import json

import numpy as np
import pytest
from sklearn_checks import check_odd_column_substitutes

from skperfusion.datasets import simulate_exam
from skperfusion.datasets.cohort import LABELS
from skperfusion.datasets.curves import gamma_variate
from skperfusion.exam import Exam, ExamToCurves, load_exam, write_exam
from skperfusion.physics import cbv_from_curves, delta_r2star_from_echoes
from skperfusion.preprocessing import MultiEchoTransformer

TE = (0.002, 0.03)
N_TIMES = 60


def _curves():
    """True ΔR2* of an AIF and of two tissues (1/s), and a T1 signal factor of the tissue."""
    t = np.arange(N_TIMES, dtype=float)
    aif = gamma_variate(t, t0=10.0, alpha=3.0, beta=1.5, peak=80.0)
    tissue = np.stack([f * np.convolve(aif, np.exp(-t / m))[:N_TIMES]
                       for f, m in ((0.04, 4.0), (0.02, 6.0))])
    # Leaked agent shortens T1: the tissue signal rises up to 25 % after the bolus.
    t1_factor = 1.0 + 0.25 * np.clip(1.0 - np.exp(-(t - 12.0) / 15.0), 0.0, None)
    return aif, tissue, t1_factor


def _signals(echo_times=TE):
    aif, tissue, t1 = _curves()
    te = np.asarray(echo_times)[:, None]
    tissue_signal = 500.0 * t1 * np.exp(-te[None] * tissue[:, None])   # (2, E, T)
    aif_signal = 800.0 * np.exp(-te * aif)                              # (E, T)
    return tissue_signal, aif_signal


def _dual_echo_exam():
    tissue_signal, aif_signal = _signals()
    signal = np.full((3, 3, 1, N_TIMES, 2), 500.0)
    signal[0, 0, 0] = aif_signal.T
    signal[1, 1, 0], signal[2, 2, 0] = tissue_signal[0].T, tissue_signal[1].T
    masks = {name: np.zeros((3, 3, 1), bool) for name in ("aif", "brain")}
    masks["aif"][0, 0, 0] = True
    masks["brain"][1, 1, 0] = masks["brain"][2, 2, 0] = True
    return Exam(signal, te=TE, tr=1.0, affine=np.eye(4), masks=masks, subject_id="sub-me",
                flip_angle=60.0)


def test_two_echo_formula_and_log_linear_fit_recover_delta_r2star():
    rng = np.random.default_rng(0)
    r2 = rng.uniform(0, 50, (4, 7))
    for te in ((0.01, 0.04), (0.01, 0.025, 0.04)):
        te = np.asarray(te)
        log_ratio = np.log(rng.uniform(0.5, 1.5, (4, 1, 7))) - te[:, None] * r2[:, None]
        np.testing.assert_allclose(delta_r2star_from_echoes(log_ratio, te), r2, atol=1e-9)
    s1, s2 = rng.uniform(0.2, 1.0, (2, 5))  # S/S0 of two echoes
    np.testing.assert_allclose(delta_r2star_from_echoes(np.log([s1, s2]), [0.01, 0.04]),
                               np.log(s1 / s2) / 0.03)
    with pytest.raises(ValueError, match="two distinct"):
        delta_r2star_from_echoes(np.zeros((2, 3)), [0.03, 0.03])


def test_dual_echo_cbv_within_5_percent_where_single_echo_is_over_30_percent_off():
    aif, tissue, _ = _curves()
    truth = cbv_from_curves(tissue, aif)
    exam = _dual_echo_exam()
    dual = ExamToCurves().transform(exam).X
    single_exam = Exam(exam.signal[..., 1], te=TE[1], tr=1.0, affine=np.eye(4),
                       masks=exam.masks)
    single = ExamToCurves().transform(single_exam).X
    dual_error = np.abs(cbv_from_curves(dual[:, 0], dual[:, 1]) / truth - 1)
    single_error = np.abs(cbv_from_curves(single[:, 0], single[:, 1]) / truth - 1)
    assert np.all(dual_error < 0.05), dual_error
    assert np.all(single_error > 0.30), single_error


def test_transformer_cancels_t1_with_three_echoes_and_skips_frames():
    tissue_signal, aif_signal = _signals((0.01, 0.02, 0.035))
    X = np.stack([tissue_signal, np.broadcast_to(aif_signal, tissue_signal.shape)], axis=1)
    aif, tissue, _ = _curves()
    C = MultiEchoTransformer(te=(0.01, 0.02, 0.035), n_skip=2).fit_transform(X)
    assert C.shape == (2, 2, N_TIMES - 2)
    np.testing.assert_allclose(C[:, 0], tissue[:, 2:], atol=1e-6)
    np.testing.assert_allclose(C[:, 1], np.broadcast_to(aif[2:], (2, N_TIMES - 2)), atol=1e-6)


def test_degenerate_samples_are_nan_without_touching_the_others():
    from skperfusion.preprocessing import DegenerateVoxelWarning

    tissue_signal, aif_signal = _signals()
    X = np.stack([tissue_signal, np.broadcast_to(aif_signal, tissue_signal.shape)], axis=1)
    transformer = MultiEchoTransformer(te=TE).fit(X)
    clean = transformer.transform(X)
    X[1, 0, 1, 20] = 0.0
    with pytest.warns(DegenerateVoxelWarning, match="1 of 2 sample"):
        damaged = transformer.transform(X)
    assert np.isnan(damaged[1]).all()
    np.testing.assert_array_equal(damaged[0], clean[0])


@pytest.mark.parametrize(("X", "te", "message"), [
    (np.ones((2, 2, 3, 10)), (0.01, 0.03), r"shape \(n_samples, 2, 2, n_times\)"),
    (-np.ones((2, 2, 2, 10)), (0.01, 0.03), "Negative values"),
    (np.ones((2, 2, 2, 10)), (0.03, 0.03), "strictly increasing"),
])
def test_transformer_rejects_bad_input(X, te, message):
    with pytest.raises(ValueError, match=message):
        MultiEchoTransformer(te=te).fit(X)


def test_multi_echo_exam_round_trips_in_bids_layout_and_maps_use_all_echoes(tmp_path):
    exam = _dual_echo_exam()
    write_exam(exam, tmp_path / "sub-me")
    names = sorted(p.name for p in (tmp_path / "sub-me").iterdir())
    assert names == ["aif_mask.nii.gz", "brain_mask.nii.gz", "dsc_echo-1.json",
                     "dsc_echo-1.nii.gz", "dsc_echo-2.json", "dsc_echo-2.nii.gz"]
    sidecar = json.loads((tmp_path / "sub-me" / "dsc_echo-2.json").read_text())
    assert sidecar == {"EchoTime": 0.03, "RepetitionTime": 1.0, "FlipAngle": 60.0}
    loaded = load_exam(tmp_path / "sub-me", require_rois=False)
    assert loaded.echo_times == TE and loaded.n_echoes == 2 and loaded.flip_angle == 60.0
    np.testing.assert_allclose(loaded.signal, exam.signal, rtol=1e-6)
    np.testing.assert_allclose(ExamToCurves().transform(loaded).X,
                               ExamToCurves().transform(exam).X, rtol=1e-4, atol=1e-4)


def _edit_sidecar(folder, n, **changes):
    path = folder / f"dsc_echo-{n}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize(("damage", "message"), [
    (lambda f: _edit_sidecar(f, 2, RepetitionTime=1.5),
     r"disagree in RepetitionTime \(dsc_echo-1.json: 1 s, dsc_echo-2.json: 1.5 s\)"),
    (lambda f: _edit_sidecar(f, 2, EchoTime=0.002), "echo times .* must be distinct"),
    (lambda f: [(f / f"dsc_echo-2.{ext}").unlink() for ext in ("nii.gz", "json")],
     "single echo, dsc_echo-1.nii.gz"),
    (lambda f: (f / "dsc_echo-2.nii.gz").rename(f / "dsc_echo-3.nii.gz"), "without gaps"),
])
def test_bad_multi_echo_folders_name_subject_and_files(tmp_path, damage, message):
    write_exam(_dual_echo_exam(), tmp_path / "sub-me")
    damage(tmp_path / "sub-me")
    with pytest.raises(ValueError, match=message) as info:
        load_exam(tmp_path / "sub-me", require_rois=False)
    assert "subject sub-me" in str(info.value)


def test_echoes_of_different_length_are_refused(tmp_path):
    import nibabel as nib

    write_exam(_dual_echo_exam(), tmp_path / "sub-me")
    path = tmp_path / "sub-me" / "dsc_echo-2.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((3, 3, 1, 50), np.float32), np.eye(4)), path)
    with pytest.raises(ValueError, match=r"dsc_echo-2.nii.gz has shape \(3, 3, 1, 50\)"):
        load_exam(tmp_path / "sub-me", require_rois=False)


@pytest.mark.parametrize(("te", "message"), [
    ((0.03, 0.03), "strictly increasing"), (0.03, "2 echoes but te gives 1"),
    ((0.002, -0.03), "positive number"),
])
def test_exam_validates_echo_times(te, message):
    exam = _dual_echo_exam()
    with pytest.raises(ValueError, match=message):
        Exam(exam.signal, te=te, tr=1.0, affine=np.eye(4), masks=exam.masks)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:only 2 non-enhancing voxel")
def test_maps_cli_uses_every_echo_and_writes_the_leakage_map(tmp_path):
    import nibabel as nib

    from skperfusion.cli import main

    aif, tissue, _ = _curves()
    write_exam(_dual_echo_exam(), tmp_path / "sub-me")
    assert main(["maps", str(tmp_path / "sub-me"), str(tmp_path / "maps"), "--no-report",
                 "--leakage", "none"]) == 0
    cbv = nib.load(tmp_path / "maps" / "sub-me" / "perf" / "sub-me_desc-osvd_cbv.nii.gz"
                   ).get_fdata()
    # oSVD's CBV is the area ratio of eq. 2: positive and true despite the T1 rise.
    np.testing.assert_allclose([cbv[1, 1, 0], cbv[2, 2, 0]], cbv_from_curves(tissue, aif),
                               rtol=0.02)
    assert main(["maps", str(tmp_path / "sub-me"), str(tmp_path / "leak"), "--leakage",
                 "bsw", "--no-report"]) == 0
    k2 = nib.load(tmp_path / "leak" / "sub-me" / "perf" / "sub-me_desc-osvd_k2.nii.gz"
                  ).get_fdata()
    assert np.isnan(k2[0, 0, 0]) and np.isfinite(k2[1, 1, 0])


def test_automatic_aif_and_vof_on_a_dual_echo_exam():
    # The selection reads the longest echo after the non-steady-state frames.
    exam, labels = simulate_exam(shape=(16, 16, 4), echo_times=(0.01, 0.03), random_state=0,
                                 return_labels=True)
    assert exam.n_skip > exam.n_echoes
    del exam.masks["aif"], exam.masks["vof"]
    curves = ExamToCurves(aif="auto", aif_scaling="vof").transform(exam)
    chosen = curves.aif.voxels
    assert chosen.any() and (chosen & (labels == LABELS["artery"])).sum() == chosen.sum()
    assert (curves.aif.venous_voxels & (labels == LABELS["vein"])).any()
    assert curves.aif.scale > 1 and np.isfinite(curves.X).all()


def test_scikit_learn_conventions_on_multi_echo_signals():
    # Four-dimensional input: scikit-learn's generic checks (2-D data) do not
    # run here, so their properties are checked on valid multi-echo signals.
    tissue, aif = _signals()
    tissue = np.concatenate([tissue] * 10)
    X = np.stack([tissue, np.broadcast_to(aif, tissue.shape)], axis=1)
    check_odd_column_substitutes(MultiEchoTransformer(te=TE), X)
