"""The AIF: automatic selection, venous-output scaling, output files, errors."""

import dataclasses
import functools

import nibabel as nib
import numpy as np
import pytest
from sklearn.base import clone

from skperfusion.aif import select_arterial_voxels, vof_scale
from skperfusion.datasets import simulate_exam
from skperfusion.datasets.cohort import LABELS
from skperfusion.datasets.curves import gamma_variate, simulate_concentration
from skperfusion.deconvolution import OSVDDeconvolver
from skperfusion.exam import Exam, ExamToCurves
from skperfusion.exam_estimators import PerfusionMapper, ROIRatio, normalized_maps

TE, TR, N_TIMES = 0.03, 1.0, 90


@pytest.fixture(scope="module", params=[0, 1])
def simulated(request):
    return simulate_exam("sub-001", "HGG", shape=(16, 16, 4), snr=50.0,
                         random_state=request.param, return_labels=True)


def _ratio(exam, aif):
    mapper = PerfusionMapper(OSVDDeconvolver(), curves=ExamToCurves(aif=aif)).fit([exam])
    return ROIRatio("CBF").transform(mapper.transform([exam]))[0, 0]


def test_automatic_aif_picks_arteries_and_keeps_the_cbf_ratio(simulated):
    exam, labels = simulated
    aif = ExamToCurves(aif="auto").transform(exam).aif
    arterial = labels == LABELS["artery"]
    assert aif.voxels.sum() >= 2
    assert (aif.voxels & arterial).sum() / aif.voxels.sum() > 0.5  # most chosen are arteries
    assert aif.candidates[aif.voxels].all() and aif.candidate_curves.shape[0] > aif.voxels.sum()
    assert abs(_ratio(exam, "auto") / _ratio(exam, "mask") - 1) < 0.05


def test_no_arterial_candidates_is_a_clear_error():
    exam, _ = simulate_exam("sub-flat", "LGG", shape=(8, 8, 1), random_state=0,
                            return_labels=True)
    flat = exam.with_signal(np.full(exam.signal.shape, 100.0, np.float32))
    with pytest.raises(ValueError, match="subject sub-flat: no arterial candidates"):
        ExamToCurves(aif="auto").transform(flat)


def test_selection_leaves_out_saturated_and_noisy_voxels():
    t = np.arange(40.0)
    artery = gamma_variate(t, t0=8.0, peak=60.0)
    tissue = 0.05 * np.convolve(artery, np.exp(-t / 4))[:40]
    scale = np.random.default_rng(0).uniform(0.5, 1.5, (60, 1))
    curves = np.vstack([np.tile(artery, (6, 1)), scale * tissue])
    min_fraction = np.full(66, 0.5)
    min_fraction[:3] = 0.001  # three arteries at the noise floor
    chosen, _ = select_arterial_voxels(curves, 1.0, min_fraction=min_fraction)
    np.testing.assert_array_equal(np.flatnonzero(chosen), [3, 4, 5])
    noisy = np.full(66, 0.0)
    noisy[3:6] = 20.0  # peak below 5 baseline sd
    chosen, _ = select_arterial_voxels(curves, 1.0, baseline_sd=noisy)
    np.testing.assert_array_equal(np.flatnonzero(chosen), [0, 1, 2])


def _venous_exam(blood_fraction=0.25, vein=True):
    """Exam with a partial-volumed artery, a full-volume vein and tissue of known CBF.

    ΔR2* is linear in the concentration (1/s), so a voxel's ΔR2* is the
    volume-weighted sum of its blood and tissue parts.
    """
    arterial = functools.partial(gamma_variate, t0=10.0, alpha=3.0, beta=1.5, peak=60.0)
    cbf = np.array([60.0, 40.0, 25.0, 20.0])
    tissue, blood = simulate_concentration(arterial, TR, cbf, np.array([4.0, 5.0, 5.0, 6.0]),
                                           n_times=N_TIMES)
    t = np.arange(N_TIMES) * TR
    # The vein: the arterial bolus delayed and dispersed, same area.
    kernel = np.exp(-t / 3.0) / np.sum(np.exp(-t / 3.0))
    venous = np.convolve(np.interp(t - 4.0, t, blood, left=0.0), kernel)[:N_TIMES]
    measured_artery = blood_fraction * blood + (1 - blood_fraction) * tissue[0]
    delta_r2 = np.zeros((3, 3, 1, N_TIMES))
    delta_r2[0, 0, 0] = measured_artery
    delta_r2[0, 2, 0] = venous if vein else 0.1 * venous
    delta_r2[1:, 1:, 0] = tissue.reshape(2, 2, N_TIMES)
    masks = {name: np.zeros((3, 3, 1), bool) for name in ("aif", "brain", "vof", "nawm")}
    masks["aif"][0, 0, 0] = masks["vof"][0, 2, 0] = True
    masks["brain"][1:, 1:, 0] = True
    masks["nawm"][2, 2, 0] = True
    truth = np.full((3, 3, 1), np.nan)
    truth[1:, 1:, 0] = cbf.reshape(2, 2)
    return Exam(300.0 * np.exp(-TE * delta_r2), te=TE, tr=TR, affine=np.eye(4), masks=masks,
                subject_id="sub-vof", ground_truth={"CBF": truth})


def test_vof_scaling_restores_absolute_cbf():
    exam = _venous_exam()
    brain, truth = exam.masks["brain"], exam.ground_truth["CBF"][exam.masks["brain"]]
    errors = {}
    for scaling in ("none", "vof"):
        mapper = PerfusionMapper(OSVDDeconvolver(), curves=ExamToCurves(aif_scaling=scaling))
        result = mapper.fit([exam]).transform([exam])[0]
        errors[scaling] = result.maps["CBF"][brain] / truth
    assert np.all((errors["none"] > 3) & (errors["none"] < 6)), errors["none"]
    assert np.all(np.abs(errors["vof"] - 1) < 0.2), errors["vof"]
    np.testing.assert_allclose(errors["none"] / errors["vof"], result.aif.scale, rtol=1e-6)
    # rCBF does not depend on the AIF scale.
    np.testing.assert_allclose(normalized_maps(result)["rCBF"][brain],
                               truth / exam.ground_truth["CBF"][2, 2, 0], rtol=0.1)


def test_automatic_vof_finds_the_vein():
    exam = _venous_exam()
    del exam.masks["vof"]
    exam.masks["brain"][0, 2, 0] = True  # the sinus lies in the brain mask
    curves = ExamToCurves(aif_scaling="vof").transform(exam)
    assert curves.aif.venous_voxels[0, 2, 0] and curves.aif.venous_voxels.sum() == 1


def test_vof_smaller_than_the_aif_is_refused():
    with pytest.raises(ValueError, match=r"subject sub-vof: .*smaller than the AIF"):
        ExamToCurves(aif_scaling="vof").transform(_venous_exam(blood_fraction=1.0, vein=False))
    with pytest.raises(ValueError, match="smaller than"):
        vof_scale(np.ones(5), 0.5 * np.ones(5), 1.0)


def test_maps_cli_writes_auto_aif_files_and_relative_maps(simulated, tmp_path):
    from skperfusion.cli import main
    from skperfusion.exam import write_exam

    exam, _ = simulated
    del exam.masks["aif"]
    write_exam(exam, tmp_path / "sub-001")
    assert main(["maps", str(tmp_path / "sub-001"), str(tmp_path / "none")]) == 2
    out = tmp_path / "maps"
    assert main(["maps", str(tmp_path / "sub-001"), str(out), "--aif", "auto",
                 "--aif-plot", "--no-report"]) == 0
    out = out / "sub-001" / "perf"
    names = {p.name.removeprefix("sub-001_desc-osvd_") for p in out.iterdir()}
    assert names == {f"{m}.{e}" for m in ("cbf", "cbv", "mtt", "tmax", "rcbf", "rcbv")
                     for e in ("nii.gz", "json")} | {"aifmask.nii.gz", "aif.tsv", "aif.png"}
    out = {name: out / f"sub-001_desc-osvd_{name}" for name in
           ("aif.tsv", "aifmask.nii.gz", "rcbf.nii.gz", "aif.png")}
    table = np.loadtxt(out["aif.tsv"], skiprows=1)
    assert table.shape == (exam.n_times - exam.n_skip, 2) and table[:, 1].max() > 0
    np.testing.assert_allclose(np.diff(table[:, 0]), exam.tr, rtol=1e-5)
    chosen = nib.load(out["aifmask.nii.gz"]).get_fdata() > 0
    assert chosen.any() and not (chosen & ~exam.masks["brain"]).any()
    rcbf = nib.load(out["rcbf.nii.gz"]).get_fdata()
    assert np.nanmean(rcbf[exam.masks["nawm"]]) == pytest.approx(1.0, rel=1e-4)
    assert out["aif.png"].read_bytes()[:4] == b"\x89PNG"


def _median_ratio(maps, exam, name):
    truth = exam.ground_truth[name]
    known = np.isfinite(truth) & (truth > 0) & np.isfinite(maps[name])
    return float(np.median(maps[name][known] / truth[known]))


def test_vof_with_blood_relaxivity_gives_absolute_cbv_and_cbf_on_the_simulator():
    # The simulator's arteries are partial-volumed in signal space and its blood
    # relaxivity is quadratic (van Osch 2003), the tissue's linear: the default
    # curves (ΔR2* in both) leave absolute maps several times too high.
    default = PerfusionMapper(curves=ExamToCurves())
    absolute = PerfusionMapper(curves=ExamToCurves(aif_scaling="vof", relaxivity="van_osch"))
    cbf = []
    for seed in range(6):
        exam = simulate_exam(shape=(16, 16, 4), snr=50, random_state=seed)
        before = default.fit([exam]).transform([exam])[0].maps
        after = absolute.fit([exam]).transform([exam])[0]
        assert after.aif.unit == "mM" and after.aif.scale > 1
        assert _median_ratio(before, exam, "CBF") > 3 and _median_ratio(before, exam, "CBV") > 3
        # CBV is a ratio of areas: the vein's is 92-97 % of the artery's over the
        # kept frames (extra["vof_area_ratio"]), so 10 % bounds it with noise.
        assert _median_ratio(after.maps, exam, "CBV") == pytest.approx(1.0, abs=0.1)
        cbf.append(_median_ratio(after.maps, exam, "CBF"))
    # CBF also carries the deconvolver's own bias (oSVD with the exact simulated
    # AIF gives 0.54-0.82 of the truth on these exams, dispersion): per exam
    # within a factor 1.5, and the cohort median within 20 %.
    assert np.all((np.array(cbf) > 1 / 1.5) & (np.array(cbf) < 1.5))
    assert np.median(cbf) == pytest.approx(1.0, abs=0.2)


def test_relaxivity_converts_tissue_linearly_and_blood_quadratically():
    from skperfusion.physics import blood_concentration, tissue_concentration

    exam = simulate_exam(shape=(8, 8, 2), snr=np.inf, random_state=0)
    relative = ExamToCurves().transform(exam)
    absolute = ExamToCurves(relaxivity="van_osch").transform(exam)
    assert absolute.X.dtype == exam.signal.dtype == np.float32
    np.testing.assert_allclose(absolute.X[:, 0], tissue_concentration(relative.X[:, 0]),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(absolute.X[:, 1], blood_concentration(relative.X[:, 1]),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(absolute.aif.curve, absolute.X[0, 1])


def test_maps_cli_relaxivity_gives_absolute_cbv_and_no_png_by_default(tmp_path):
    from skperfusion.cli import main
    from skperfusion.exam import write_exam

    exam = simulate_exam(shape=(16, 16, 4), snr=50, random_state=3)
    write_exam(exam, tmp_path / "sub-001")
    out = tmp_path / "maps"
    assert main(["maps", str(tmp_path / "sub-001"), str(out), "--aif-scaling", "vof",
                 "--relaxivity", "van_osch", "--no-report"]) == 0
    out = out / "sub-001" / "perf"
    assert not (out / "sub-001_desc-osvd_aif.png").exists()
    assert (out / "sub-001_desc-osvd_aif.tsv").exists()
    cbv = nib.load(out / "sub-001_desc-osvd_cbv.nii.gz").get_fdata()
    truth = exam.ground_truth["CBV"]
    known = np.isfinite(truth) & (truth > 0)
    assert np.median(cbv[known] / truth[known]) == pytest.approx(1.0, abs=0.1)


def test_noise_robustness_without_an_aif_mask_keeps_the_clean_arteries(simulated):
    from skperfusion.study.evaluation import _clean_arteries, degrade_exam

    exam, labels = simulated
    exam = dataclasses.replace(exam, masks={k: v for k, v in exam.masks.items() if k != "aif"})
    with pytest.raises(ValueError, match="no aif mask"):
        ExamToCurves().transform(exam)
    with pytest.raises(ValueError, match="no 'aif' mask"):
        degrade_exam(exam, 10, random_state=0)
    mapper = PerfusionMapper(curves=ExamToCurves(aif="auto")).fit([exam])
    clean = mapper.curves_.transform(exam).aif.voxels
    assert (clean & (labels == LABELS["artery"])).sum() == clean.sum() > 0
    # The noise experiment keeps the arteries selected on the clean exam.
    _, arteries = _clean_arteries([exam], {"oSVD": mapper})
    np.testing.assert_array_equal(arteries[0], clean)
    degraded = degrade_exam(exam, 10, arterial=clean, random_state=0)
    brain = exam.masks["brain"]
    assert not np.allclose(degraded.signal[brain], exam.signal[brain])
    np.testing.assert_array_equal(degraded.signal[~brain], exam.signal[~brain])
    # They become the degraded exam's aif mask, which the noise draws read: the
    # AIF curve is the noisy signal of those voxels.
    np.testing.assert_array_equal(degraded.masks["aif"], clean)
    pinned = clone(mapper.curves_).set_params(aif="mask")
    result = mapper.transform([pinned.transform(degraded)])[0]
    np.testing.assert_array_equal(result.aif.voxels, clean)
    assert np.isfinite(ROIRatio().transform([result])).all()
