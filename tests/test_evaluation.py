"""Study statistics against sklearn, scipy, hand-computable cases and ground truth."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from scipy.stats import mannwhitneyu, norm
from sklearn.metrics import roc_auc_score

from skperfusion.datasets import simulate_exam
from skperfusion.deconvolution import OSVDDeconvolver
from skperfusion.exam_estimators import ExamMaps, PerfusionMapper, ROIRatio
from skperfusion.grading import youden_cutoff
from skperfusion.preprocessing import detect_baseline_frames
from skperfusion.study.evaluation import (
    TRUTH,
    auc_ci,
    degrade_exam,
    grading_metrics,
    grading_table,
    map_errors,
    noise_robustness,
)


def _random_grades(seed, n=30, shift=0.7):
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.5, "HGG", "LGG")
    y[:2] = ["HGG", "LGG"]
    return np.round(rng.lognormal(shift * (y == "HGG"), 0.4), 2), y


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_sklearn_and_its_interval_brackets_it(seed):
    scores, y = _random_grades(seed)
    auc, low, high = auc_ci(scores, y, n_boot=500, random_state=seed)
    assert auc == pytest.approx(roc_auc_score(y == "HGG", scores))
    assert low <= auc <= high
    assert (low, high) == auc_ci(scores, y, n_boot=500, random_state=seed)[1:]


def test_bootstrap_auc_of_each_resample_matches_sklearn():
    # The vectorised bootstrap AUC must equal sklearn's on an explicit resample.
    from skperfusion.study.evaluation import _bootstrap_counts, _weighted_auc

    scores, y = _random_grades(0, n=12)
    high, low = scores[y == "HGG"], scores[y == "LGG"]
    counts_high, counts_low = _bootstrap_counts(np.random.RandomState(1), 5, high.size, low.size)
    for ch, cl, auc in zip(counts_high, counts_low,
                           _weighted_auc(high, low, counts_high, counts_low), strict=True):
        resampled = np.r_[np.repeat(high, ch), np.repeat(low, cl)]
        labels = np.r_[np.ones(ch.sum()), np.zeros(cl.sum())]
        assert auc == pytest.approx(roc_auc_score(labels, resampled))


def test_perfectly_separated_grades_have_a_degenerate_interval():
    scores = [1.0, 1.2, 1.4, 2.0, 2.5, 3.0]
    y = ["LGG"] * 3 + ["HGG"] * 3
    assert auc_ci(scores, y, n_boot=200, random_state=0) == (1.0, 1.0, 1.0)
    metrics = grading_metrics(scores, y, n_boot=200, random_state=0)
    assert metrics["cutoff"] == pytest.approx(1.7)
    assert metrics[["sensitivity", "specificity", "accuracy"]].tolist() == [1.0, 1.0, 1.0]
    # Every resample still separates the grades, at a cut-off inside the gap.
    assert 1.2 <= metrics["cutoff_low"] <= metrics["cutoff_high"] <= 2.5


def test_grading_metrics_hand_case():
    # LGG 1, 1.5, 2.5 / HGG 2, 3, 4: Youden cut-off 1.75 (sens 1, spec 2/3),
    # accuracy 5/6, AUC 8/9 (one discordant pair: 2.5 > 2).
    scores = [1.0, 1.5, 2.5, 2.0, 3.0, 4.0]
    y = ["LGG"] * 3 + ["HGG"] * 3
    metrics = grading_metrics(scores, y, n_boot=300, random_state=0)
    assert metrics["cutoff"] == 1.75
    assert metrics["sensitivity"] == 1.0
    assert metrics["specificity"] == pytest.approx(2 / 3)
    assert metrics["accuracy"] == pytest.approx(5 / 6)
    assert metrics["auc"] == pytest.approx(8 / 9)
    assert (metrics["n_high"], metrics["n_low"]) == (3, 3)
    for name in ("auc", "cutoff", "sensitivity", "specificity"):
        assert metrics[f"{name}_low"] <= metrics[name] <= metrics[f"{name}_high"]


def test_mann_whitney_exact_p_value_by_hand_and_scipy():
    # Complete separation of 3 vs 3: U = 9, exact two-sided p = 2 / C(6, 3).
    metrics = grading_metrics([4.0, 5.0, 6.0, 1.0, 2.0, 3.0], ["HGG"] * 3 + ["LGG"] * 3,
                              n_boot=10, random_state=0)
    assert metrics["mannwhitney_p"] == pytest.approx(0.1)
    scores, y = _random_grades(3)
    expected = mannwhitneyu(scores[y == "HGG"], scores[y == "LGG"]).pvalue
    p = grading_metrics(scores, y, n_boot=10, random_state=0)["mannwhitney_p"]
    assert p == pytest.approx(expected)


def test_grading_table_rows_per_method_and_times():
    scores, y = _random_grades(1)
    ratios = pd.DataFrame({"A": scores, "B": scores[::-1], "C": scores})
    times = pd.DataFrame({"A": np.linspace(1, 3, scores.size)})
    table = grading_table(ratios, y, times=times, n_boot=100, random_state=0)
    assert table.index.tolist() == ["A", "B", "C"]
    # Every method sees the same resamples: equal ratios, equal intervals.
    pd.testing.assert_series_equal(table.loc["A"].drop(table.filter(like="time").columns),
                                   table.loc["C"].drop(table.filter(like="time").columns),
                                   check_names=False)
    assert table.loc["A", "auc"] == pytest.approx(roc_auc_score(y == "HGG", scores))
    assert table.loc["A", ["time_mean", "time_min", "time_max"]].tolist() == [2.0, 1.0, 3.0]
    assert np.isnan(table.loc["B", "time_mean"])
    assert table.loc["B", "auc_low"] != table.loc["A", "auc_low"]


@pytest.mark.parametrize("scores, y, match", [
    ([1.0, np.nan], ["LGG", "HGG"], "NaN"),
    ([1.0, 2.0], ["HGG", "HGG"], "two classes"),
    ([1.0, 2.0], ["LGG", "GBM"], "two classes including"),
])
def test_metrics_reject_bad_input(scores, y, match):
    with pytest.raises(ValueError, match=match):
        grading_metrics(scores, y, n_boot=10)


@pytest.fixture(scope="module")
def exams():
    return [simulate_exam(f"sub-{i:02d}", grade, shape=(10, 10, 2), snr=np.inf, random_state=i)
            for i, grade in enumerate(["LGG", "HGG"] * 4)]


def test_map_errors_of_scaled_truth(exams):
    scaled = []
    for exam in exams[:2]:
        maps = {name: volume * 1.1 for name, volume in exam.ground_truth.items()}
        maps["MTT"] = exam.ground_truth["MTT"] * 0.8
        maps["Tmax"] = exam.ground_truth["Tmax"] + np.where(exam.masks["tumor"], 2.0, 0.5)
        scored = exam.masks["brain"] & (exam.ground_truth["MTT"] > 0)
        maps["MTT"][tuple(np.argwhere(scored)[0])] = np.nan  # one failed voxel
        scaled.append(ExamMaps(exam, maps))
    errors = map_errors(scaled)
    assert errors["CBF_bias_pct"] == pytest.approx(10.0)
    assert errors["CBF_abs_error_pct"] == pytest.approx(10.0)
    assert errors["MTT_bias_pct"] == pytest.approx(-20.0)
    assert errors["MTT_abs_error_pct"] == pytest.approx(20.0)
    n_scored = sum(int(np.sum(e.masks["brain"] & (e.ground_truth["MTT"] > 0))) for e in exams[:2])
    assert errors["MTT_failed_pct"] == pytest.approx(100 * 2 / n_scored)
    assert errors["CBF_failed_pct"] == 0.0
    # Tmax errors are differences in seconds; a region restricts the voxels.
    assert errors["Tmax_bias_s"] == pytest.approx(0.5)
    assert map_errors(scaled, ("Tmax",), region="tumor")["Tmax_abs_error_s"] == pytest.approx(2.0)
    # Relative maps: a global scale error cancels.
    assert map_errors(scaled, ("CBF",), normalize_by="nawm")["CBF_abs_error_pct"] == (
        pytest.approx(0.0, abs=1e-9))


def test_map_errors_need_ground_truth(exams):
    bare = dataclasses.replace(exams[0], ground_truth=None)
    with pytest.raises(ValueError, match="no ground truth"):
        map_errors([ExamMaps(bare, exams[0].ground_truth)])


def test_degraded_exam_has_the_requested_baseline_snr(exams):
    exam = exams[0]
    degraded = degrade_exam(exam, 20, random_state=0)
    brain = exam.masks["brain"]
    # Additive noise of constant sd per voxel: its sd over all frames,
    # against the mean of the baseline frames (the paper's SNR definition).
    noise_sd = (degraded.signal[brain] - exam.signal[brain]).std(axis=1, ddof=1)
    arterial_signal = exam.signal[exam.masks["aif"]].mean(axis=0)
    n_baseline = int(detect_baseline_frames(arterial_signal[None, exam.n_skip:])[0])
    baseline = exam.signal[brain][:, exam.n_skip:exam.n_skip + n_baseline].mean(axis=1)
    assert np.median(baseline / noise_sd) == pytest.approx(20, rel=0.05)
    outside = ~(brain | exam.masks["aif"])
    np.testing.assert_array_equal(degraded.signal[outside], exam.signal[outside])
    # The AIF follows the degraded arterial voxels.
    assert not np.allclose(degraded.signal[exam.masks["aif"]].mean(axis=0), arterial_signal)


@pytest.mark.slow
def test_noise_robustness_table(exams):
    mapper = PerfusionMapper(OSVDDeconvolver()).fit(exams)
    table, errors = noise_robustness(exams, {"oSVD": mapper}, snrs=(30, 10), n_draws=2,
                                     n_boot=50, random_state=0)
    assert table[["snr", "method", "n_draws"]].values.tolist() == [
        [30, "oSVD", 2], [30, TRUTH, 0], [10, "oSVD", 2], [10, TRUTH, 0]]
    truth = table[table["method"] == TRUTH]
    y = np.array([exam.grade for exam in exams])
    true_ratio = [exam.extra["true_cbf_ratio"] for exam in exams]
    assert truth["auc"].tolist() == [roc_auc_score(y == "HGG", true_ratio)] * 2
    # Noise makes oSVD's MTT and relative CBF worse (its absolute CBF is off
    # by the simulator's AIF scale, arterial partial volume and relaxivity).
    osvd = errors[(errors["method"] == "oSVD") & (errors["region"] == "brain")].set_index("snr")
    for column in ("MTT_abs_error_pct", "rCBF_abs_error_pct", "Tmax_abs_error_s"):
        assert osvd.loc[10, column] > osvd.loc[30, column]
    assert set(errors["region"]) == {"brain", "tumor", "nawm"}
    # Same seed, same table, whether the draws run in one process or two.
    again = noise_robustness(exams, {"oSVD": mapper}, snrs=(30, 10), n_draws=2, n_boot=50,
                             random_state=0, n_jobs=2)
    pd.testing.assert_frame_equal(table, again[0])
    pd.testing.assert_frame_equal(errors, again[1])


def test_noise_robustness_at_negligible_noise_is_the_noise_free_auc(exams):
    # One draw at SNR 1e6 maps (almost) the acquired exams: the AUC is the
    # noise-free one, computed here independently; its interval pools one
    # draw's resamples, so it is the bootstrap interval of that AUC.
    mapper = PerfusionMapper(OSVDDeconvolver()).fit(exams)
    y = np.array([exam.grade for exam in exams])
    clean = ROIRatio().transform(mapper.transform(exams)).ravel()
    table, _ = noise_robustness(exams, {"oSVD": mapper}, snrs=(1e6,), n_draws=1, n_boot=50,
                                error_regions=(), random_state=0)
    row = table.set_index("method").loc["oSVD"]
    assert row["auc"] == pytest.approx(roc_auc_score(y == "HGG", clean))
    assert row["auc_draw_sd"] == 0.0
    # More draws at a real SNR: independent noise draws, so their AUCs differ.
    table, _ = noise_robustness(exams, {"oSVD": mapper}, snrs=(5,), n_draws=3, n_boot=50,
                                error_regions=(), random_state=1)
    row = table.set_index("method").loc["oSVD"]
    assert row["n_draws"] == 3 and row["auc_draw_sd"] > 0


def test_figures_show_the_tables(tmp_path):
    from skperfusion.study import figures

    scores, y = _random_grades(2, n=16)
    ratios = pd.DataFrame({"A": scores, TRUTH: np.sort(scores)})
    roc = figures.plot_roc_curves(ratios, y)
    legend = [text.get_text() for text in roc.axes[0].get_legend().get_texts()]
    assert legend[0] == f"A (AUC {roc_auc_score(y == 'HGG', scores):.2f})"
    boxes = figures.plot_ratio_boxplots(ratios, y, {"A": 1.5})
    segments = [segment for c in boxes.axes[0].collections if isinstance(c, LineCollection)
                for segment in c.get_segments()]
    # The cut-off is a horizontal segment at its ratio (no patient has 1.5 exactly).
    assert 1.5 not in scores
    assert any(np.allclose(segment[:, 1], [1.5, 1.5]) for segment in segments)
    noise = pd.DataFrame({"snr": [30, 10, 30, 10], "method": ["A", "A", TRUTH, TRUTH],
                          "auc": [0.9, 0.7, 1.0, 1.0], "auc_low": [0.8, 0.5, 1.0, 1.0],
                          "auc_high": [1.0, 0.9, 1.0, 1.0]})
    curves = figures.plot_auc_vs_snr(noise).axes[0].get_lines()
    np.testing.assert_array_equal(curves[0].get_xydata(), [[10, 0.7], [30, 0.9]])
    # The ROC marks each method's Youden operating point.
    _, sensitivity, specificity = youden_cutoff(scores, y == "HGG")
    points = [line.get_xydata() for line in roc.axes[0].get_lines() if line.get_marker() == "o"]
    assert [[1 - specificity, sensitivity]] in [p.tolist() for p in points]
    path = figures.save_figure(roc, tmp_path / "roc.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["roc.png"]


def test_report_tables_are_formatted_like_the_paper():
    from skperfusion.study.report import noise_auc_table, table1

    row = {"auc": 0.87, "auc_low": 0.69, "auc_high": 0.99, "cutoff": 1.77, "cutoff_low": 1.04,
           "cutoff_high": 2.25, "sensitivity": 0.692, "sensitivity_low": 0.5,
           "sensitivity_high": 1.0, "specificity": 1.0, "specificity_low": 0.692,
           "specificity_high": 1.0, "accuracy": 0.84, "mannwhitney_p": 0.007,
           "time_mean": 11.8, "time_min": 7.09, "time_max": 17.33}
    formatted = table1(pd.DataFrame([row], index=["oSVD"]))
    assert formatted.loc["oSVD"].tolist() == [
        "0.87 (0.69-0.99)", "1.77 (1.04-2.25)", "69.2 (50.0-100.0)", "100.0 (69.2-100.0)",
        "84.0", "0.007", "11.8 (7.09-17.3)"]
    noise = pd.DataFrame({"snr": [50, 50, 10, 10], "method": ["PHAE", TRUTH, "PHAE", TRUTH],
                          "auc": [0.9, 0.95, 0.8, 0.95], "auc_low": [0.7, 0.8, 0.6, 0.8],
                          "auc_high": [1.0, 1.0, 0.9, 1.0]})
    table = noise_auc_table(noise)
    assert table.index.tolist() == [50, 10] and table.columns.tolist() == ["PHAE", TRUTH]
    assert table.loc[10, "PHAE"] == "0.80 (0.60-0.90)"


def test_map_comparison_shares_one_colour_scale_per_row(exams):
    from skperfusion.study import figures

    exam = exams[1]
    maps = {"A": ExamMaps(exam, {k: v * 3.0 for k, v in exam.ground_truth.items()}),
            "B": ExamMaps(exam, exam.ground_truth)}
    figure = figures.plot_map_comparison(maps)
    images = [ax.images[0] for ax in figure.axes if ax.images]
    assert len(images) == 2 * 3  # rCBF and MTT rows; A, B and the truth columns
    limits = [image.get_clim() for image in images]
    assert limits[:3] == [limits[0]] * 3 and limits[3:] == [limits[3]] * 3
    # rCBF: a global scale of 3 cancels, A's panel equals the truth's.
    np.testing.assert_allclose(images[0].get_array(), images[2].get_array())


def _slow_delong(scores, is_high):
    """DeLong's covariance by direct double sums over the patient pairs (reference)."""
    high, low = scores[is_high], scores[~is_high]
    m, n = len(high), len(low)
    psi = np.array([[[1.0 if x > z else 0.5 if x == z else 0.0 for z in low[:, k]]
                     for x in high[:, k]] for k in range(scores.shape[1])])  # (k, m, n)
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    s10 = np.array([[np.sum((v10[a] - v10[a].mean()) * (v10[b] - v10[b].mean())) / (m - 1)
                     for b in range(len(psi))] for a in range(len(psi))])
    s01 = np.array([[np.sum((v01[a] - v01[a].mean()) * (v01[b] - v01[b].mean())) / (n - 1)
                     for b in range(len(psi))] for a in range(len(psi))])
    return psi.mean(axis=(1, 2)), s10 / m + s01 / n


@pytest.mark.parametrize("seed", range(3))
def test_delong_fast_algorithm_matches_the_double_sum_reference(seed):
    from skperfusion.study.comparison import delong_covariance, delong_table

    rng = np.random.default_rng(seed)
    is_high = rng.random(23) < 0.5
    is_high[:2] = [True, False]
    # Rounding makes ties within and between the groups.
    scores = np.round(rng.normal(is_high[:, None] * [0.9, 0.6, 0.0], 1.0, (23, 3)), 1)
    auc, covariance = delong_covariance(scores, is_high)
    expected_auc, expected = _slow_delong(scores, is_high)
    np.testing.assert_allclose(auc, expected_auc)
    np.testing.assert_allclose(auc, [roc_auc_score(is_high, s) for s in scores.T])
    np.testing.assert_allclose(covariance, expected)
    table = delong_table(pd.DataFrame(scores, columns=["A", "B", "C"]),
                         np.where(is_high, "HGG", "LGG"))
    row = table.set_index(["method_a", "method_b"]).loc[("A", "C")]
    z = (expected_auc[0] - expected_auc[2]) / np.sqrt(
        expected[0, 0] + expected[2, 2] - 2 * expected[0, 2])
    assert row["z"] == pytest.approx(z)
    assert row["p"] == pytest.approx(2 * (1 - norm.cdf(abs(z))))


def test_delong_of_identical_methods_is_not_significant():
    from skperfusion.study.comparison import delong_table

    scores, y = _random_grades(4)
    table = delong_table(pd.DataFrame({"A": scores, "B": scores}), y)
    assert table.loc[0, ["difference", "p"]].tolist() == [0.0, 1.0]


def _cv_mappers(exams):
    from skperfusion.deconvolution import PHAEDeconvolver

    tr = min(exam.tr for exam in exams)
    n_times = int(min((e.n_times - e.n_skip - 1) * e.tr for e in exams) // tr) + 1
    phae = PHAEDeconvolver(max_epochs=1, module__width=4, batch_size=128, random_state=0)
    return {"oSVD": PerfusionMapper(OSVDDeconvolver(), tr=tr, n_times=n_times),
            "PHAE": PerfusionMapper(phae, tr=tr, n_times=n_times, max_train_voxels=128,
                                    random_state=0)}


@pytest.mark.slow
def test_cross_validation_never_lets_the_test_fold_reach_training(exams):
    # Two folds given explicitly: changing the held-out patients' grades and
    # signals leaves the cut-offs learned on the training folds unchanged,
    # and so the grades predicted for the held-out patients.
    from skperfusion.study.cv import cross_validated_grading

    splits = [(np.arange(0, 4), np.arange(4, 8)), (np.arange(4, 8), np.arange(0, 4))]
    first = cross_validated_grading(exams, _cv_mappers(exams), trainable={"PHAE"}, cv=splits,
                                    n_splits=2)
    changed = list(exams)
    for i in splits[0][1]:
        changed[i] = dataclasses.replace(degrade_exam(exams[i], 5, random_state=int(i)),
                                         grade={"LGG": "HGG", "HGG": "LGG"}[exams[i].grade])
    second = cross_validated_grading(changed, _cv_mappers(exams), trainable={"PHAE"},
                                     cv=splits, n_splits=2)
    for method in ("oSVD", "PHAE"):
        a = first[(first["method"] == method) & (first["fold"] == 0)].iloc[0]
        b = second[(second["method"] == method) & (second["fold"] == 0)].iloc[0]
        assert a["cutoff"] == b["cutoff"]
        # The held-out ratios did change: the test fold was used, for testing only.
        assert not np.allclose(a["ratio"], b["ratio"])
        np.testing.assert_array_equal(b["predicted"], np.where(b["ratio"] > b["cutoff"],
                                                               "HGG", "LGG"))
        # The other fold trained on the changed patients: its cut-off moved.
        assert first.loc[(first["method"] == method) & (first["fold"] == 1), "cutoff"].item() \
            != second.loc[(second["method"] == method) & (second["fold"] == 1), "cutoff"].item()


@pytest.mark.slow
def test_cross_validation_does_not_depend_on_the_workers(exams):
    # The fixed methods' maps are computed in batches of exams in the pool of the trainable
    # folds: each exam's maps, hence every fold's ratios and cut-off, are those of one
    # process mapping them all in order.
    from skperfusion.study.cv import cross_validated_grading

    folds = [cross_validated_grading(exams, _cv_mappers(exams), trainable={"PHAE"},
                                     n_splits=2, n_repeats=2, trainable_repeats=1,
                                     random_state=0, n_jobs=n_jobs) for n_jobs in (None, 2)]
    pd.testing.assert_frame_equal(*folds)
    assert list(folds[1]["method"]) == ["oSVD"] * 4 + ["PHAE"] * 2
    mapper = _cv_mappers(exams)["oSVD"]
    ratios = ROIRatio("CBF").transform(mapper.fit(exams).transform(exams)).ravel()
    for _, fold in folds[1][folds[1]["method"] == "oSVD"].iterrows():
        np.testing.assert_array_equal(fold["ratio"], ratios[fold["test"]])


@pytest.mark.slow
def test_repeated_folds_and_their_summary(exams):
    from sklearn.model_selection import RepeatedStratifiedKFold

    from skperfusion.study.cv import cross_validated_grading, summarize_cv

    y = np.array([exam.grade for exam in exams])
    folds = cross_validated_grading(exams, _cv_mappers(exams), trainable={"PHAE"},
                                    n_splits=2, n_repeats=3, trainable_repeats=1,
                                    random_state=0)
    # The trainable method runs the first repeat of the same partitions.
    assert folds.groupby("method")["repeat"].nunique().to_dict() == {"PHAE": 1, "oSVD": 3}
    expected = [test for _, test in RepeatedStratifiedKFold(
        n_splits=2, n_repeats=3, random_state=0).split(np.zeros(8), y)]
    osvd = folds[folds["method"] == "oSVD"]
    for (_, row), test in zip(osvd.iterrows(), expected, strict=True):
        np.testing.assert_array_equal(row["test"], test)
        assert row["auc"] == pytest.approx(roc_auc_score(y[test] == "HGG", row["ratio"]))
    summary = summarize_cv(folds, y)
    first = osvd[osvd["repeat"] == 0]
    per_repeat = [osvd.loc[osvd["repeat"] == r, "auc"].mean() for r in range(3)]
    assert summary.loc["oSVD", "auc"] == pytest.approx(np.mean(per_repeat))
    # The interval is the 2.5-97.5 % quantile of the 3 per-repeat AUCs (linear
    # interpolation: 0.05 of the way from the lowest to the middle one, and back).
    low, middle, high = sorted(per_repeat)
    assert summary.loc["oSVD", "auc_low"] == pytest.approx(low + 0.05 * (middle - low))
    assert summary.loc["oSVD", "auc_high"] == pytest.approx(high - 0.05 * (high - middle))
    assert summary.loc["PHAE", "n_repeats"] == 1
    assert summary.loc["PHAE", "sensitivity"] == pytest.approx(np.mean(
        np.concatenate(folds.loc[folds["method"] == "PHAE", "predicted"].to_list())[
            y[np.concatenate(folds.loc[folds["method"] == "PHAE", "test"].to_list())]
            == "HGG"] == "HGG"))
    # Each repeat's test folds hold every patient once; accuracy is over those calls.
    np.testing.assert_array_equal(np.sort(np.concatenate(first["test"].to_list())), np.arange(8))
    accuracy = [np.mean(np.concatenate(run["predicted"].to_list())
                        == y[np.concatenate(run["test"].to_list())])
                for _, run in osvd.groupby("repeat")]
    assert summary.loc["oSVD", "accuracy"] == pytest.approx(np.mean(accuracy))


def test_cv_table_gives_an_interval_only_over_several_repeats():
    from skperfusion.study.report import cv_table

    columns = {"n_repeats": [5, 1], "cutoff": [1.5, 1.6], "cutoff_min": [1.2, 1.3],
               "cutoff_max": [1.8, 1.9]}
    for name in ("auc", "sensitivity", "specificity", "accuracy"):
        columns |= {name: [0.8, 0.7], f"{name}_low": [0.7, 0.7], f"{name}_high": [0.9, 0.7]}
    formatted = cv_table(pd.DataFrame(columns, index=["A", "B"]))
    assert formatted.loc["A"].tolist() == ["5", "0.80 (0.70-0.90)", "80.0 (70.0-90.0)",
                                           "80.0 (70.0-90.0)", "80.0 (70.0-90.0)",
                                           "1.50 (1.20-1.80)"]
    assert formatted.loc["B", ["AUC", "Accuracy (%)"]].tolist() == ["0.70", "70.0"]


def test_the_study_converts_each_exam_once_per_configuration(exams, monkeypatch):
    # Every method, split, fold and noise draw shares the curves of an exam: the
    # tissue conversion stage runs once per exam and exam-to-curves configuration
    # (and once per noisy copy), however many methods are compared.
    from collections import Counter

    from skperfusion.exam import ExamToCurves, pipeline
    from skperfusion.study.run import compute_study

    conversions, convert = Counter(), pipeline._convert

    def counted(step, exam, signals, aif_signal, *, blood=False):
        if not blood:  # tissue rows; the AIF (and VOF) go through with blood=True
            conversions[exam.subject_id] += 1
        return convert(step, exam, signals, aif_signal, blood=blood)

    monkeypatch.setattr(pipeline, "_convert", counted)
    snrs, n_draws = (30, 10), 2
    results = compute_study(
        exams, methods=("osvd", "tikhonov"), test_size=0.5, snrs=snrs, n_draws=n_draws,
        n_splits=2, n_repeats=1, n_boot=20, n_jobs=1, progress=False,
        compare_curves={"van Osch": ExamToCurves(relaxivity="van_osch")})
    test = set(results.tables["ratios"].index)
    # Training or test exam, main configuration: once; test exams also once with the
    # compared configuration and once per noise draw.
    expected = {exam.subject_id: 1 + (exam.subject_id in test) * (1 + len(snrs) * n_draws)
                for exam in exams}
    assert dict(conversions) == expected
    # The exam-to-curves time is the shared conversion's: the same for every method.
    curve_times = results.tables["table1"]["curves_time_mean"].drop(TRUTH)
    assert curve_times.nunique() == 1 and curve_times.iloc[0] > 0


@pytest.mark.parametrize("settings, match", [
    ({"test_size": 1.0}, r"test_size must be a number in \(0, 1\); got 1.0"),
    ({"n_splits": 1}, "n_splits must be an integer >= 2"),
    ({"n_draws": 2.5}, "n_draws must be an integer >= 1"),
    ({"parameter": "rCBF"}, "parameter must be one of"),
    ({"noise": "poisson"}, "noise must be one of"),
    ({"snrs": (30, -1)}, "snrs must be a non-empty sequence of SNRs > 0"),
    ({"n_jobs": 0}, "n_jobs must be None or a non-zero integer"),
    ({"methods": ("osvd", "nope")}, "unknown deconvolver 'nope'"),
    ({"method_params": {"osvd": 3}}, "method_params must be a dict of registry name"),
    ({"curves": "auto"}, r"curves must be exam-to-curves steps"),
])
def test_study_config_names_the_bad_setting(settings, match):
    from skperfusion.study.run import StudyConfig

    with pytest.raises(ValueError, match=match):
        StudyConfig(**settings)


def test_study_config_normalises_method_names_and_overrides():
    from skperfusion.study.run import StudyConfig

    config = StudyConfig(methods=["oSVD", "phae"], method_params={"PHAE": {"max_epochs": 2}},
                         snrs=[30, 10])
    assert config.methods == ("osvd", "phae") and config.snrs == (30, 10)
    assert config.method_params == {"phae": {"max_epochs": 2}}
    assert config.labels == {"osvd": "oSVD", "phae": "PHAE"} and config.trainable == {"PHAE"}
    with pytest.raises(ValueError, match="n_boot must be"):
        dataclasses.replace(config, n_boot=0)  # overrides are validated too
