"""Study statistics against sklearn, scipy, hand-computable cases and ground truth."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from scipy.stats import mannwhitneyu
from sklearn.metrics import roc_auc_score

from skperfusion.datasets import simulate_exam
from skperfusion.deconvolution import OSVDDeconvolver
from skperfusion.exam_estimators import ExamMaps, PerfusionMapper
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
    n_baseline = int(detect_baseline_frames(exam.aif_signal()[None, exam.n_skip:])[0])
    baseline = exam.signal[brain][:, exam.n_skip:exam.n_skip + n_baseline].mean(axis=1)
    assert np.median(baseline / noise_sd) == pytest.approx(20, rel=0.05)
    outside = ~(brain | exam.masks["aif"])
    np.testing.assert_array_equal(degraded.signal[outside], exam.signal[outside])
    # The AIF follows the degraded arterial voxels.
    assert not np.allclose(degraded.aif_signal(), exam.aif_signal())


def test_noise_robustness_table(exams):
    mapper = PerfusionMapper(OSVDDeconvolver()).fit(exams)
    table = noise_robustness(exams, {"oSVD": mapper}, snrs=(30, 10), n_boot=50,
                             random_state=0)
    assert table[["snr", "method"]].values.tolist() == [
        [30, "oSVD"], [30, TRUTH], [10, "oSVD"], [10, TRUTH]]
    truth = table[table["method"] == TRUTH]
    y = np.array([exam.grade for exam in exams])
    true_ratio = [exam.extra["true_cbf_ratio"] for exam in exams]
    assert truth["auc"].tolist() == [roc_auc_score(y == "HGG", true_ratio)] * 2
    assert table["auc"].between(0, 1).all()
    # Noise makes oSVD's MTT and relative CBF worse (its absolute CBF is off
    # by the simulator's AIF scale, arterial partial volume and relaxivity).
    osvd = table[table["method"] == "oSVD"].set_index("snr")
    for column in ("MTT_abs_error_pct", "rCBF_abs_error_pct"):
        assert osvd.loc[10, column] > osvd.loc[30, column]
    again = noise_robustness(exams, {"oSVD": mapper}, snrs=(30, 10), n_boot=50, random_state=0)
    pd.testing.assert_frame_equal(table, again)


def test_figures_show_the_tables(tmp_path):
    from skperfusion.study import figures

    scores, y = _random_grades(2, n=16)
    ratios = pd.DataFrame({"A": scores, TRUTH: np.sort(scores)})
    roc = figures.plot_roc_curves(ratios, y)
    legend = [text.get_text() for text in roc.axes[0].get_legend().get_texts()]
    assert legend[0] == f"A (AUC {roc_auc_score(y == 'HGG', scores):.2f})"
    boxes = figures.plot_ratio_boxplots(ratios, y, {"A": 1.5})
    (lines,) = [c for c in boxes.axes[0].collections if isinstance(c, LineCollection)]
    (cutoff,) = lines.get_segments()
    np.testing.assert_allclose(cutoff[:, 1], [1.5, 1.5])
    noise = pd.DataFrame({"snr": [30, 10, 30, 10], "method": ["A", "A", TRUTH, TRUTH],
                          "auc": [0.9, 0.7, 1.0, 1.0], "auc_low": [0.8, 0.5, 1.0, 1.0],
                          "auc_high": [1.0, 0.9, 1.0, 1.0]})
    curves = figures.plot_auc_vs_snr(noise).axes[0].get_lines()
    np.testing.assert_array_equal(curves[0].get_xydata(), [[10, 0.7], [30, 0.9]])
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
