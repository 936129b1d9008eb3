"""The AIF: automatic selection, venous-output scaling, output files, errors."""

import dataclasses
import functools

import nibabel as nib
import numpy as np
import pytest
from sklearn.base import clone

from skperfusion.aif import (
    recover_first_pass,
    saturated_samples,
    select_aif,
    select_arterial_voxels,
    vof_scale,
)
from skperfusion.aif.selection import MIN_PEAK_RATIO, PEAK_SNR
from skperfusion.datasets import simulate_exam
from skperfusion.datasets.cohort import LABELS
from skperfusion.datasets.curves import gamma_variate, simulate_concentration
from skperfusion.deconvolution import OSVDDeconvolver
from skperfusion.exam import Exam, ExamToCurves
from skperfusion.exam_estimators import PerfusionMapper, ROIRatio, normalized_maps
from skperfusion.preprocessing import detect_baseline_frames

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


def test_selection_leaves_out_noisy_voxels_and_keeps_several():
    t = np.arange(40.0)
    artery = gamma_variate(t, t0=8.0, peak=60.0)
    tissue = 0.05 * np.convolve(artery, np.exp(-t / 4))[:40]
    scale = np.random.default_rng(0).uniform(0.5, 1.5, (60, 1))
    curves = np.vstack([np.tile(artery, (6, 1)), scale * tissue])
    noisy = np.full(66, 0.0)
    noisy[3:6] = 20.0  # peak below 5 baseline sd
    chosen, _ = select_arterial_voxels(curves, 1.0, baseline_sd=noisy)
    np.testing.assert_array_equal(np.flatnonzero(chosen), [0, 1, 2])
    # Two arteries only: the cluster is completed to three voxels by shape, never one.
    chosen, _ = select_arterial_voxels(curves[4:], 1.0)
    assert chosen.sum() == 3 and chosen[:2].all()


def test_saturated_samples_are_those_at_the_noise_floor():
    te, sd = 0.04, np.array([0.5, 0.05])
    ratio = np.array([[1.0, 0.5, 0.015, 0.06, 0.3], [1.0, 0.5, 0.015, 0.06, 0.3]])
    # Floors: max(0.02, 3.5 · 0.04 · sd) = 0.07 for the noisy voxel, 0.02 for the clean one.
    np.testing.assert_array_equal(saturated_samples(-np.log(ratio) / te, sd, te),
                                  [[False, False, True, True, False],
                                   [False, False, True, False, False]])


@pytest.mark.parametrize("tr", [1.0, 1.5, 2.0])
@pytest.mark.parametrize("level", [50.0, 70.0])
def test_recover_first_pass_restores_a_clipped_gamma_variate(tr, level):
    # Noise-free gamma variates (t0 on and off the grid) clipped below their peak
    # of 100: with two rising samples or more the log-linear fit is exact (t0 to
    # TR/48), so the recovered curve is the true one; with fewer the upslope is
    # free and the curve is left clipped.
    t = np.arange(60) * tr
    true = np.stack([gamma_variate(t, t0=t0, alpha=a, beta=b, peak=100.0) for t0, a, b in
                     [(10.0, 3.0, 1.5), (10.3, 2.5, 1.2), (11.1, 4.0, 1.0), (9.6, 3.5, 2.0)]])
    clipped = np.minimum(true, level)
    sd = np.full(len(true), 0.1)
    saturated = clipped >= level
    n_rising = np.sum((clipped > PEAK_SNR * sd[:, None]) & (np.cumsum(saturated, 1) == 0), 1)
    recovered, fitted = recover_first_pass(clipped, saturated, tr, sd)
    np.testing.assert_array_equal(fitted, n_rising >= 2)
    np.testing.assert_allclose(recovered[fitted], true[fitted], atol=1.0)
    np.testing.assert_array_equal(recovered[~fitted], clipped[~fitted])
    untouched, _ = recover_first_pass(clipped, np.zeros_like(saturated), tr, sd)
    np.testing.assert_array_equal(untouched, clipped)


@pytest.fixture(scope="module")
def saturated_exams():
    return [simulate_exam(f"sub-sat{seed}", "HGG", shape=(16, 16, 3), snr=100.0,
                          random_state=seed, return_labels=True,
                          hard_cases=["saturation", "delayed_territory"]) for seed in range(3)]


@pytest.mark.slow
def test_saturated_arteries_are_chosen_and_arrive_before_the_tissue(saturated_exams):
    for exam, labels in saturated_exams:
        # Every artery saturates (S/S0 < 0.02 at SNR 100, where the old rule left
        # none of them and chose cortex, arriving after most of the brain).
        aif = ExamToCurves(aif="auto").transform(exam).aif
        arterial = labels == LABELS["artery"]
        assert aif.voxels.sum() >= 3 and not (aif.voxels & ~arterial).any()
        quality = aif.quality
        assert quality.n_saturated == aif.voxels.sum() >= quality.n_recovered
        assert aif.saturated_samples.any() and quality.earlier_fraction <= 0.1
        assert quality.peak_ratio > MIN_PEAK_RATIO and 0 < quality.score <= 1
        assert abs(_ratio(exam, "auto") / _ratio(exam, "mask") - 1) < 0.10


def test_first_choice_arriving_late_is_chosen_again_among_the_earliest():
    t = np.arange(60.0)
    artery = gamma_variate(t, t0=8.0, peak=20.0)
    tissue = np.convolve(artery, 0.03 * np.exp(-t / 4))[:60]
    vein = gamma_variate(t, t0=14.0, beta=2.5, peak=60.0)
    scale = np.random.default_rng(0).uniform(0.5, 1.5, (100, 1))
    # Fifteen veins peak highest: the top-10 % candidates are all veins, late.
    curves = np.vstack([np.tile(artery, (3, 1)), np.tile(vein, (15, 1)), scale * tissue])
    selection = select_aif(curves, 1.0, 0.03, np.full(len(curves), 0.01))
    assert selection.quality.reselected and selection.voxels[:3].all()
    assert selection.voxels.sum() == 3 and selection.quality.earlier_fraction <= 0.1


def test_exam_without_arteries_is_refused_naming_the_subject():
    exam = simulate_exam("sub-noartery", shape=(16, 16, 3), random_state=0,
                         hard_cases=["no_arteries"])
    with pytest.raises(ValueError, match=r"subject sub-noartery: no arterial AIF: .*peak only"):
        ExamToCurves(aif="auto").transform(exam)


def test_aif_table_round_trip_and_errors(simulated, tmp_path):
    exam, _ = simulated
    written = ExamToCurves().transform(exam)
    table = tmp_path / "aif.tsv"
    np.savetxt(table, np.column_stack([written.aif.times, written.aif.curve]), delimiter="\t",
               header="time_s\tconcentration", comments="")
    given = ExamToCurves(aif=table).transform(exam)
    np.testing.assert_allclose(given.X[:, 1], written.X[:, 1], rtol=1e-6)
    # Without arterial voxels the baseline frames are detected on the mean brain
    # signal instead of the mean arterial one, so each tissue curve -ln(S/S0)/TE
    # moves by the constant ln(S0_brain/S0_arterial)/TE, with S0 the mean of the
    # voxel's first n frames (0 where both detections agree).
    kept = slice(exam.n_skip, None)
    n_arterial, n_brain = (
        detect_baseline_frames(exam.signal[exam.masks[mask]].mean(axis=0)[None, kept])[0]
        for mask in ("aif", "brain"))
    tissue = exam.signal[exam.masks["brain"], kept].astype(float)
    expected = np.log(tissue[:, :n_brain].mean(axis=1)
                      / tissue[:, :n_arterial].mean(axis=1)) / exam.te
    # float32 rounding (unit u) of each curve: the sum of n baseline frames and the
    # quotient S/S0, (n + 2) u / TE, then the logarithm and the 1/TE scaling, 2 u |C|.
    u = np.finfo(np.float32).eps / 2
    tolerance = u * ((n_arterial + n_brain + 4) / exam.te + 4 * np.abs(written.X[:, 0]).max())
    difference = given.X[:, 0] - written.X[:, 0]
    np.testing.assert_allclose(difference, np.broadcast_to(expected[:, None], difference.shape),
                               rtol=0, atol=tolerance)
    assert given.aif.source == str(table) and not given.aif.voxels.any()
    bad = tmp_path / "bad.tsv"
    for text, message in [("0\t1\n1\t2\n", "at least 3 rows"), ("0\t1\n2\t2\n1\t0\n",
                                                                   "strictly increase"),
                          ("0\t0\n1\tx\n2\t0\n", "two numbers")]:
        bad.write_text(text)
        with pytest.raises(ValueError, match=rf"subject sub-001: AIF table {bad}: .*{message}"):
            ExamToCurves(aif=bad).transform(exam)
    with pytest.raises(ValueError, match="does not exist"):
        ExamToCurves(aif=tmp_path / "missing.tsv").transform(exam)


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
    # Leakage is corrected by default: K2 comes with the maps.
    assert names == {f"{m}.{e}" for m in ("cbf", "cbv", "mtt", "tmax", "rcbf", "rcbv", "k2")
                     for e in ("nii.gz", "json")} | {"aifmask.nii.gz", "aif.tsv", "aif.png",
                                                     "qc.json"}
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


@pytest.mark.slow
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
