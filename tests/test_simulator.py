"""The glioma cohort simulator and the noise model.

Statistics are checked over many draws, with tolerances of about four
standard errors, rather than on hand-picked seeds.
"""

import functools

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter
from sklearn.metrics import roc_auc_score, roc_curve

from skperfusion.datasets import (
    add_noise,
    cohort,
    draw_leakage_parameters,
    draw_subject_parameters,
    simulate_cohort,
    simulate_exam,
    tissue_labels,
)
from skperfusion.datasets.cohort import (
    BLOOD_RELAXIVITY,
    HARD_CASES,
    LABELS,
    RESIDUE_PROBABILITIES,
    TISSUE_RELAXIVITY,
    _arterial_concentration,
    territory_mask,
)
from skperfusion.physics import cbv_from_curves, residue_function

N_DRAWS = 2000


@pytest.fixture(scope="module")
def draws():
    rng = np.random.default_rng(12345)
    grades = np.array(["LGG", "HGG"] * (N_DRAWS // 2))
    table = pd.DataFrame([draw_subject_parameters(g, rng) for g in grades])
    table["grade"] = grades
    return table


def test_acquisition_ranges(draws):
    assert draws["te"].between(0.025, 0.035).all() and abs(draws["te"].mean() - 0.03) < 5e-4
    assert draws["tr"].between(1.0, 1.5).all()
    assert draws["n_times"].between(60, 120).all() and draws["n_times"].nunique() > 50
    assert draws["n_skip"].between(2, 10).all()
    # The overshoot left after the skipped frames is below 0.5 %.
    left = draws["nonsteady_amplitude"] * draws["nonsteady_decay"] ** draws["n_skip"]
    assert (left < 0.005).all()
    baseline_frames = (draws["bolus_arrival"] / draws["tr"]).astype(int) - draws["n_skip"]
    assert baseline_frames.between(5, 16).all()
    bolus_end = draws["bolus_arrival"] + 25.0
    assert (bolus_end < draws["n_times"] * draws["tr"]).all()


def test_normal_tissue_perfusion_matches_the_literature(draws):
    for region, cbf, cbv in (("gm", 60.0, 4.0), ("wm", 22.0, 2.0)):
        drawn_cbv = draws[f"cbf_{region}"] * draws[f"mtt_{region}"] / 60.0
        # Log-normal with 10 % CV: means within 1.5 % (4 standard errors).
        assert draws[f"cbf_{region}"].mean() == pytest.approx(cbf, rel=0.015)
        assert drawn_cbv.mean() == pytest.approx(cbv, rel=0.02)
        assert draws[f"cbf_{region}"].std() / cbf == pytest.approx(0.10, abs=0.01)


def test_residue_families_and_lorentzian_minority(draws):
    for region in ("gm", "wm", "tumor"):
        frequency = draws[f"residue_{region}"].value_counts(normalize=True)
        for family, p in RESIDUE_PROBABILITIES.items():
            assert frequency[family] == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / N_DRAWS))
    assert RESIDUE_PROBABILITIES["lorentzian"] < 0.25
    # Tumour and NAWM families are drawn independently.
    same = (draws["residue_tumor"] == draws["residue_wm"]).mean()
    expected = sum(p**2 for p in RESIDUE_PROBABILITIES.values())
    assert same == pytest.approx(expected, abs=0.05)


def test_tumour_delay_and_dispersion_differ_from_nawm(draws):
    assert draws["dispersion_tumor"].mean() > draws["dispersion_wm"].mean() + 0.4
    assert draws["delay_tumor"].std() > draws["delay_wm"].std()
    assert (draws["delay_wm"] > draws["delay_gm"]).all()


def test_grade_ratio_distributions_overlap_as_in_the_literature(draws):
    hgg = draws["grade"] == "HGG"
    ratio = draws["target_cbf_ratio"]
    auc = roc_auc_score(hgg, ratio)
    assert 0.86 < auc < 0.94
    false_positive, true_positive, thresholds = roc_curve(hgg, ratio)
    cutoff = thresholds[np.argmax(true_positive - false_positive)]
    assert 1.4 < cutoff < 1.9
    assert np.median(ratio[~hgg]) == pytest.approx(1.15, rel=0.05)
    grade3 = draws["who_grade"] == 3
    assert grade3[hgg].mean() == pytest.approx(0.25, abs=0.04)
    assert set(draws.loc[~hgg, "who_grade"]) == {2}
    # Grade-3-like HGG are often below the cut-off, grade 4 rarely.
    assert (ratio[grade3] < 1.6).mean() > 0.4 > 0.15 > (ratio[hgg & ~grade3] < 1.6).mean()


def test_phantom_regions():
    labels, nawm = tissue_labels((16, 16, 4))
    counts = {name: int((labels == value).sum()) for name, value in LABELS.items()}
    assert counts["gm"] > counts["wm"] / 2 > 0 and counts["tumor"] > 20
    assert counts["artery"] == 8 and counts["csf"] > 0 and counts["vein"] == 4
    assert nawm.sum() > 20 and (labels[nawm] == LABELS["wm"]).all()
    # NAWM is contralateral to the tumour.
    x = np.arange(16)[:, None, None] * np.ones((16, 16, 4))
    assert x[labels == LABELS["tumor"]].mean() < 7.5 < x[nawm].mean()
    with pytest.raises(ValueError, match="at least 8 voxels"):
        tissue_labels((4, 4, 2))


@pytest.fixture(scope="module")
def clean_exam():
    return simulate_exam("sub-001", "HGG", snr=np.inf, random_state=7)


def test_exam_is_reproducible_and_consistent(clean_exam):
    again, labels = simulate_exam("sub-001", "HGG", snr=np.inf, random_state=7,
                                  return_labels=True)
    np.testing.assert_array_equal(again.signal, clean_exam.signal)
    np.testing.assert_array_equal(labels == LABELS["tumor"], clean_exam.masks["tumor"])
    np.testing.assert_array_equal(labels == LABELS["artery"], clean_exam.masks["aif"])
    assert (clean_exam.ground_truth["CBF"][labels == LABELS["csf"]] == 0).all()
    # The same seed with noise: the same exam plus noise drawn last.
    noisy = simulate_exam("sub-001", "HGG", snr=30.0, random_state=7)
    np.testing.assert_array_equal(noisy.ground_truth["CBF"], clean_exam.ground_truth["CBF"])
    residual = (noisy.signal - clean_exam.signal)[clean_exam.masks["brain"]][:, 20:30]
    assert 0 < np.abs(residual).mean() < 0.1 * np.abs(clean_exam.signal).mean()
    truth = clean_exam.ground_truth
    brain, tumor, nawm = (clean_exam.masks[k] for k in ("brain", "tumor", "nawm"))
    perfused = np.isfinite(truth["MTT"])
    np.testing.assert_allclose(truth["CBV"][perfused],
                               truth["CBF"][perfused] * truth["MTT"][perfused] / 60.0)
    assert np.isnan(truth["CBF"][~brain]).all()
    assert np.isnan(truth["CBF"][clean_exam.masks["aif"]]).all()
    assert not (tumor & nawm).any() and (tumor | nawm).sum() < brain.sum()
    assert clean_exam.extra["true_cbf_ratio"] == pytest.approx(
        truth["CBF"][tumor].mean() / truth["CBF"][nawm].mean())
    assert (truth["Tmax"][perfused] >= 0).all()
    assert clean_exam.signal.dtype == np.float32 and (clean_exam.signal > 0).all()


def test_tissue_signal_encodes_the_ground_truth_cbv(monkeypatch):
    """Tissue ΔR2*/r_t against the true blood curve gives back the true CBV, less
    exactly what the acquisition window cuts off."""
    # The simulator's per-voxel draws (residue family and gamma shape, MTT, delay,
    # dispersion), recorded as they go into its fine-grid convolution.
    calls = []
    simulate = cohort.simulate_concentration

    def recorded(aif, tr, cbf, mtt, *, family, delay, **kwargs):
        calls.append({"dispersion": aif.keywords["dispersion"], "cbf": cbf, "mtt": mtt,
                      "family": family, "delay": delay, "shape": kwargs.get("shape")})
        return simulate(aif, tr, cbf, mtt, family=family, delay=delay, **kwargs)

    monkeypatch.setattr(cohort, "simulate_concentration", recorded)
    oversample = 100
    exam = simulate_exam("sub-001", "HGG", snr=np.inf, random_state=7, oversample=oversample)
    p = exam.extra
    frames = np.arange(exam.n_skip, exam.n_times)
    # The overshoot of the first kept frames is known: divided out, since it would
    # raise S0 by ~0.1 % and so every later concentration (CBV by 2-4 % here).
    overshoot = 1.0 + p["nonsteady_amplitude"] * p["nonsteady_decay"] ** frames
    signal = exam.signal[..., frames].astype(float) / overshoot
    s0 = signal[..., :5].mean(axis=-1, keepdims=True)
    concentration = -np.log(signal / s0) / exam.te / TISSUE_RELAXIVITY
    times = frames * exam.tr
    aif = functools.partial(_arterial_concentration, **{k: p[k] for k in (
        "bolus_arrival", "aif_alpha", "aif_beta", "aif_peak", "recirculation",
        "recirculation_delay")})
    blood = aif(times)
    perfused = np.isfinite(exam.ground_truth["MTT"])
    truth = {name: exam.ground_truth[name][perfused] for name in ("CBF", "MTT", "CBV")}
    relative = cbv_from_curves(concentration[perfused], blood) / truth["CBV"] - 1
    # Expected: CBV = CBF/60 · Σ_i w_i C(t_i)/f / Σ_i w_i Ca(t_i) (trapezoid weights
    # w_i over the window, f the flow rate) with C/f = (Ca ⊗ D ⊗ R)(t - d), D the unit
    # dispersion kernel: Σ_i w_i C(t_i)/f = ∫ R(w) S(d + w) dw, where S(u) = Σ_i w_i
    # (Ca ⊗ D)(t_i - u). The true CBV is CBF · MTT / 60, so the ratio is ∫ R S / (MTT
    # Σ w Ca): the window misses the residue's and the dispersion's tails, longest
    # for the late arterial mass (recirculation, plateau), here 1.5 % (gamma
    # residues) to 10.4 % (Lorentzian tumour). Evaluated on a grid du with exact
    # residues and, for D, the exact exponential filter of a piecewise-linear Ca.
    du = 0.01
    u = np.arange(0.0, times[-1] + du, du)
    losses = {}
    for call in calls:
        decay = np.exp(-du / call["dispersion"])
        step = (1.0 - decay) * call["dispersion"] / du
        dispersed = lfilter([1.0 - step, step - decay], [1.0, -decay], aif(u))
        window_sum = np.trapezoid(np.interp(times - u[:, None], u, dispersed, left=0.0),
                                  axis=1)
        shifted = np.interp(call["delay"][:, None] + u, u, window_sum, right=0.0)
        shape = {} if call["shape"] is None else {"shape": call["shape"][:, None]}
        residue = residue_function(call["family"])(u, call["mtt"][:, None], **shape)
        ratio = np.trapezoid(residue * shifted, dx=du, axis=1) / (
            call["mtt"] * np.trapezoid(blood))
        losses.update(zip(zip(call["cbf"], call["mtt"], strict=True), ratio - 1, strict=True))
    expected = np.array([losses[key] for key in zip(truth["CBF"], truth["MTT"], strict=True)])
    # Left: the simulator's own error, O((TR/oversample)²) relative to the squared
    # time scale of its curves, the AIF's β (curves.py), for the continuous residues
    # of this exam (gamma, Lorentzian; a boxcar's jump at MTT would be O(TR/oversample));
    # float32 rounding of the signal (~1e-7) and the grid du (~1e-7) are far below.
    tolerance = (exam.tr / oversample / p["aif_beta"]) ** 2
    np.testing.assert_allclose(relative, expected, rtol=0, atol=tolerance)


def test_arterial_signal_is_non_linear_in_concentration(clean_exam):
    a, b = BLOOD_RELAXIVITY
    assert b > 0 and TISSUE_RELAXIVITY > a
    aif = clean_exam.signal[clean_exam.masks["aif"]].mean(axis=0)[clean_exam.n_skip:]
    apparent = -np.log(aif / aif[:5].mean()) / clean_exam.te
    # Partial volume and the quadratic term: the apparent arterial ΔR2* peak
    # is far from the pure-blood value the methods would need.
    pure_peak = a * clean_exam.extra["aif_peak"] + b * clean_exam.extra["aif_peak"] ** 2
    assert apparent.max() < 0.8 * pure_peak


def test_noise_reaches_the_requested_snr():
    clean = np.full((4000, 30), 250.0)
    clean[:, 20:] = 100.0
    for noise in ("gaussian", "rician"):
        noisy = add_noise(clean, 25.0, n_baseline=10, n_skip=2, noise=noise, random_state=0)
        baseline = noisy[:, 2:12]
        assert baseline.mean() / baseline.std() == pytest.approx(25.0, rel=0.03)
    np.testing.assert_array_equal(add_noise(clean, np.inf, n_baseline=10), clean)


def test_rician_noise_is_positive_and_biased_at_low_signal():
    dark = np.concatenate([np.full((20000, 10), 100.0), np.zeros((20000, 1)) + 1e-9], axis=1)
    rician = add_noise(dark, 10.0, n_baseline=10, noise="rician", random_state=1)[:, -1]
    assert rician.mean() == pytest.approx(10.0 * np.sqrt(np.pi / 2), rel=0.03)
    gaussian = add_noise(dark, 10.0, n_baseline=10, noise="gaussian", random_state=1)[:, -1]
    assert (gaussian > 0).all() and gaussian.min() == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"snr": 0.0}, "snr must be a positive"),
        ({"noise": "poisson"}, "Unknown noise model"),
        ({"n_baseline": 40}, "n_baseline"),
        ({"n_baseline": 2.5}, "n_baseline"),
    ],
)
def test_add_noise_rejects_bad_arguments(kwargs, message):
    arguments = {"snr": 20.0, "n_baseline": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        add_noise(np.ones((3, 30)), **arguments)


def test_simulate_cohort_layout_and_protection(tmp_path):
    table = simulate_cohort(tmp_path, 5, lgg_fraction=0.4, shape=(8, 8, 2), snr=30.0,
                            random_state=0)
    assert list(table["grade"]).count("LGG") == 2
    assert list(table["participant_id"]) == [f"sub-00{i}" for i in range(1, 6)]
    for subject in table["participant_id"]:
        names = {p.name for p in (tmp_path / subject).iterdir()}
        assert {"dsc.nii.gz", "dsc.json", "aif_mask.nii.gz", "gt_Tmax.nii.gz"} <= names
    written = pd.read_csv(tmp_path / "participants.tsv", sep="\t")
    np.testing.assert_allclose(written["true_cbf_ratio"], table["true_cbf_ratio"])
    # A subject does not depend on the cohort size.
    bigger = simulate_cohort(tmp_path / "more", 7, shape=(8, 8, 2), snr=30.0, random_state=0)
    assert bigger["aif_peak"].iloc[0] == table["aif_peak"].iloc[0]
    with pytest.raises(FileExistsError, match="already holds a cohort"):
        simulate_cohort(tmp_path, 5, random_state=0)
    with pytest.raises(ValueError, match="lgg_fraction"):
        simulate_cohort(tmp_path / "x", 5, lgg_fraction=1.0)


# --- leakage, multi-echo, venous region (issue 10) ------------------------------------------------

def test_leakage_parameters_follow_the_grade_ranges():
    rng = np.random.default_rng(4)
    for grade, (low, high) in (("LGG", (0.0, 0.01)), ("HGG", (0.02, 0.12))):
        draws = pd.DataFrame([draw_leakage_parameters(grade, rng) for _ in range(300)])
        assert draws["ktrans_tumor"].between(low, high).all()
        assert draws["ktrans_tumor"].max() - draws["ktrans_tumor"].min() > 0.8 * (high - low)
        assert draws["flip_angle"].between(60, 90).all()
    with pytest.raises(ValueError, match="unknown grade"):
        draw_leakage_parameters("GBM")


@pytest.fixture(scope="module")
def leaky_pair():
    kwargs = {"shape": (10, 10, 2), "snr": np.inf, "random_state": 11}
    return simulate_exam("sub-1", "HGG", leakage=True, **kwargs), simulate_exam(
        "sub-1", "HGG", **kwargs)


def test_leakage_changes_only_the_tumour_signal_and_keeps_the_truth(leaky_pair):
    leaky, clean = leaky_pair
    tumor = clean.masks["tumor"]
    np.testing.assert_array_equal(leaky.signal[~tumor], clean.signal[~tumor])
    for name in ("CBF", "CBV", "MTT", "Tmax"):
        np.testing.assert_array_equal(leaky.ground_truth[name], clean.ground_truth[name])
    ktrans = leaky.ground_truth["Ktrans"]
    assert "Ktrans" not in clean.ground_truth
    assert np.nanmean(ktrans[tumor]) == pytest.approx(leaky.extra["ktrans_tumor"])
    assert (ktrans[clean.masks["nawm"]] == 0).all() and np.isnan(ktrans[clean.masks["aif"]]).all()
    # Single echo, no preload: the leaked agent's T1 shortening wins, the tail rises.
    late = slice(-10, None)
    assert (leaky.signal[tumor][:, late].mean() > 1.03 * clean.signal[tumor][:, late].mean())
    assert leaky.flip_angle == clean.flip_angle == leaky.extra["flip_angle"]


def test_dual_echo_cancels_the_t1_effect_and_keeps_the_t2star_one():
    from skperfusion.datasets.cohort import EXTRAVASCULAR_RELAXIVITY

    kwargs = {"shape": (10, 10, 2), "snr": np.inf, "random_state": 11,
              "echo_times": (0.012, 0.035)}
    leaky = simulate_exam("s", "HGG", leakage=True, **kwargs)
    clean = simulate_exam("s", "HGG", **kwargs)
    assert leaky.signal.shape[-1] == 2 and leaky.echo_times == (0.012, 0.035)
    tumor = leaky.masks["tumor"]

    def dual_echo_delta_r2(exam):
        s = exam.signal[tumor][..., exam.n_skip:, :].astype(float)
        s0 = s[:, :3].mean(axis=1, keepdims=True)
        return np.log((s[..., 0] / s0[..., 0]) / (s[..., 1] / s0[..., 1])) / (0.035 - 0.012)

    extra = dual_echo_delta_r2(leaky) - dual_echo_delta_r2(clean)
    # What is left is the extravascular T2* term: positive, growing, below r_e · ve · Cp,max.
    assert (extra[:, -1] > 0).all()
    bound = EXTRAVASCULAR_RELAXIVITY * leaky.extra["ve_tumor"] * leaky.extra["aif_peak"] / 0.55
    assert extra.max() < bound
    single = -np.log(leaky.signal[tumor][:, -1, 0] / clean.signal[tumor][:, -1, 0]) / 0.012
    assert (single < 0).all()  # each echo alone sees the T1 effect


def test_preload_shrinks_the_t1_effect(leaky_pair):
    _, clean = leaky_pair
    rise = {}
    for preload in (0.0, 1.0):
        exam = simulate_exam("sub-1", "HGG", shape=(10, 10, 2), snr=np.inf, random_state=11,
                             leakage=True, preload=preload)
        tumor = exam.masks["tumor"]
        rise[preload] = exam.signal[tumor][:, -5:].mean() / clean.signal[tumor][:, -5:].mean()
    # With a full preload the weaker T2* effect of the leaked agent can even win.
    assert rise[1.0] < rise[0.0] and rise[0.0] > 1.0
    with pytest.raises(ValueError, match="preload"):
        simulate_exam(preload=-1.0)


def test_leakage_overrides_and_bad_echo_times():
    exam = simulate_exam("s", "LGG", shape=(8, 8, 2), snr=np.inf, random_state=0,
                         leakage={"ktrans_tumor": 0.05, "ve_tumor": 0.3})
    assert exam.extra["ktrans_tumor"] == 0.05 and exam.extra["ve_tumor"] == 0.3
    with pytest.raises(ValueError, match="unknown leakage parameter"):
        simulate_exam(leakage={"kep": 1.0})
    exam = simulate_exam("s", "LGG", shape=(8, 8, 2), snr=np.inf, random_state=0,
                         parameters={"mtt_tumor": 5.0})
    assert exam.extra["mtt_tumor"] == 5.0
    with pytest.raises(ValueError, match="unknown subject parameter"):
        simulate_exam(parameters={"mtt": 1.0})
    for bad in ((0.03, 0.01), (0.03, 0.03), (30.0,)):
        with pytest.raises(ValueError, match="echo_times"):
            simulate_exam(echo_times=bad)


def test_venous_region_has_known_truth(clean_exam):
    vof = clean_exam.masks["vof"]
    assert vof.sum() == clean_exam.shape[2]  # one sinus voxel per slice
    assert not (vof & (clean_exam.masks["aif"] | clean_exam.masks["tumor"])).any()
    assert np.isnan(clean_exam.ground_truth["CBF"][vof]).all()
    # Same tracer amount: the venous area equals the arterial one up to the cut tail.
    assert 0.85 < clean_exam.extra["vof_area_ratio"] <= 1.0
    vein, artery = (clean_exam.signal[clean_exam.masks[k]].mean(axis=0) for k in ("vof", "aif"))
    assert np.argmin(vein) > np.argmin(artery)  # the venous bolus comes later
    # Pure blood: the venous signal drop is deeper than the partial-volumed arterial one.
    frames = slice(clean_exam.n_skip, None)
    assert (vein[frames].min() / vein[frames][:3].mean()
            < artery[frames].min() / artery[frames][:3].mean())


def test_multi_echo_cohort_round_trip(tmp_path):
    from skperfusion.exam import load_cohort

    simulate_cohort(tmp_path, 2, shape=(8, 8, 2), snr=30.0, random_state=0, leakage=True,
                    echo_times=(0.015, 0.04))
    names = {p.name for p in (tmp_path / "sub-001").iterdir()}
    assert {"dsc_echo-1.nii.gz", "dsc_echo-2.json", "vof_mask.nii.gz", "gt_Ktrans.nii.gz"} <= names
    exams = load_cohort(tmp_path)
    assert exams[0].echo_times == (0.015, 0.04) and exams[0].signal.ndim == 5
    assert exams[0].flip_angle == pytest.approx(exams[0].extra["flip_angle"])


def test_simulate_command_leaks_by_default(tmp_path, capsys):
    from skperfusion.cli import main

    main(["simulate", str(tmp_path / "leaky"), "--n-subjects", "2", "--shape", "8", "8", "2"])
    assert "leaky tumours" in capsys.readouterr().out
    assert (tmp_path / "leaky" / "sub-001" / "gt_Ktrans.nii.gz").is_file()
    main(["simulate", str(tmp_path / "clean"), "--n-subjects", "2", "--shape", "8", "8", "2",
          "--no-leakage", "--echo-times", "0.012", "0.035"])
    names = {p.name for p in (tmp_path / "clean" / "sub-001").iterdir()}
    assert "gt_Ktrans.nii.gz" not in names and "dsc_echo-2.nii.gz" in names
    participants = pd.read_csv(tmp_path / "clean" / "participants.tsv", sep="\t")
    assert not participants["leakage"].any()


def _min_arterial_fraction(exam):
    signal = exam.signal[exam.masks["aif"]][:, exam.n_skip:]
    return signal.min(axis=1) / signal[:, :3].mean(axis=1)


def test_saturation_hard_case_puts_the_arteries_at_the_noise_floor():
    clean = simulate_exam(shape=(12, 12, 2), snr=np.inf, random_state=3)
    saturated = simulate_exam(shape=(12, 12, 2), snr=np.inf, random_state=3,
                              hard_cases=["saturation"])
    # Pure blood at 10 mM and TE 45 ms: S/S0 = exp(-0.045 (7.6 · 10 + 0.574 · 100)) = 0.0025
    # at the peak (the sampled peak is a little lower); partial-volumed arteries stay above.
    assert np.all(_min_arterial_fraction(saturated) < 0.02)
    assert np.all(_min_arterial_fraction(clean) > 0.02)
    assert saturated.te == 0.045 and saturated.extra["hard_cases"] == "saturation"


def test_delayed_territory_hard_case_delays_only_its_lobe():
    plain, labels = simulate_exam(shape=(16, 16, 2), random_state=4, return_labels=True)
    delayed = simulate_exam(shape=(16, 16, 2), random_state=4,
                            hard_cases=["delayed_territory"])
    lobe = territory_mask(labels, plain.masks["nawm"])
    assert lobe.any() and not (lobe & (plain.masks["tumor"] | plain.masks["nawm"])).any()
    shift = delayed.ground_truth["Tmax"] - plain.ground_truth["Tmax"]
    np.testing.assert_allclose(shift[lobe], 4.0)
    np.testing.assert_array_equal(delayed.ground_truth["Tmax"][~lobe],
                                  plain.ground_truth["Tmax"][~lobe])
    # Outside the lobe and the arteries (which mix with the cortex outside it) nothing
    # changes; inside, the bolus comes later: the first moment of ΔR2* moves by ~4 s.
    keep = ~lobe & ~plain.masks["aif"]
    np.testing.assert_array_equal(delayed.signal[keep], plain.signal[keep])
    times = np.arange(plain.n_times) * plain.tr

    def first_moment(exam):
        signal = exam.signal[lobe]
        drop = -np.log(signal / signal[:, plain.n_skip:plain.n_skip + 3].mean(1)[:, None])
        return np.sum(drop * times, axis=1) / np.sum(drop, axis=1)

    assert np.median(first_moment(delayed) - first_moment(plain)) > 3.0


def test_partial_volume_and_strong_leakage_hard_cases():
    plain = simulate_exam(shape=(12, 12, 2), snr=np.inf, random_state=5)
    thin = simulate_exam(shape=(12, 12, 2), snr=np.inf, random_state=5,
                         hard_cases=["partial_volume"])
    assert thin.extra["partial_volume"] == 0.3 < plain.extra["partial_volume"]
    assert np.all(_min_arterial_fraction(thin) > _min_arterial_fraction(plain).max())
    leaky = simulate_exam(shape=(12, 12, 2), random_state=5, hard_cases=["strong_leakage"])
    assert leaky.extra["leakage"] and leaky.extra["ktrans_tumor"] == 0.15
    np.testing.assert_allclose(leaky.ground_truth["Ktrans"][leaky.masks["tumor"]].mean(), 0.15)
    with pytest.raises(ValueError, match="unknown hard case"):
        simulate_exam(shape=(8, 8, 1), hard_cases=["stenosis"])


def test_simulate_command_writes_hard_cases(tmp_path, capsys):
    from skperfusion.cli import build_parser, main

    main(["simulate", str(tmp_path / "hard"), "--n-subjects", "2", "--shape", "8", "8", "1",
          "--hard-case", "saturation", "--hard-case", "delayed_territory"])
    participants = pd.read_csv(tmp_path / "hard" / "participants.tsv", sep="\t")
    assert set(participants["hard_cases"]) == {"saturation,delayed_territory"}
    assert set(participants["te"]) == {0.045} and set(participants["territory_delay"]) == {4.0}
    for name in HARD_CASES:  # the command offers every hard case, and nothing else
        build_parser().parse_args(["simulate", "out", "--hard-case", name])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "out", "--hard-case", "stenosis"])
    assert "invalid choice" in capsys.readouterr().err
