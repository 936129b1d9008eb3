"""``skperfusion study``: a tiny end-to-end demo run and its bad-input errors."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from skperfusion.cli import main
from skperfusion.datasets import simulate_cohort, simulate_exam
from skperfusion.study.run import OUTPUT_FILES, run_study

TINY = ["--n-subjects", "10", "--shape", "10", "10", "2", "--snrs", "20", "--n-boot", "50",
        "--max-train-voxels", "500", "--phae-epochs", "1", "--phae-width", "4",
        "--phae-batch-size", "256", "--phae-epoch-voxels", "256", "--noise-draws", "2",
        "--cv-splits", "2", "--cv-repeats", "2", "--phae-cv-epochs", "1",
        "--methods", "osvd", "tikhonov", "phae"]


@pytest.mark.slow
def test_demo_study_writes_report_tables_and_figures(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["study", "--demo", "--out", str(out), *TINY]) == 0
    assert "report in" in capsys.readouterr().out
    written = {p.name for p in out.iterdir()}
    assert written == {"demo_cohort", *OUTPUT_FILES}
    assert {"table1_cv.csv", "auc_comparison.csv", "cv_folds.csv", "study.json"} <= written
    table1 = pd.read_csv(out / "table1.csv", index_col="method")
    assert table1.index.tolist() == ["oSVD", "Tikhonov", "PHAE", "ground truth"]
    assert (table1["auc_low"] <= table1["auc"]).all()
    # The ground-truth ratios are the simulator's own tumour/NAWM CBF ratios.
    participants = pd.read_csv(out / "demo_cohort" / "participants.tsv", sep="\t",
                               index_col="participant_id")
    ratios = pd.read_csv(out / "ratios.csv", index_col="participant_id")
    assert len(ratios) == 4 and set(ratios["grade"]) == {"LGG", "HGG"}
    np.testing.assert_allclose(ratios["ground truth"],
                               participants.loc[ratios.index, "true_cbf_ratio"], rtol=1e-5)
    # Table 1's AUCs are those of the written ratios.
    for method in table1.index:
        assert table1.loc[method, "auc"] == pytest.approx(
            roc_auc_score(ratios["grade"] == "HGG", ratios[method]))
    # Cross-validation: every patient held out once per repeat, the PHAE in one repeat.
    folds = pd.read_csv(out / "cv_folds.csv")
    counts = folds.groupby(["method", "repeat"])["participant_id"].agg(["size", "nunique"])
    assert (counts["size"] == 10).all() and (counts["nunique"] == 10).all()
    cv = pd.read_csv(out / "table1_cv.csv", index_col="method")
    assert cv["n_repeats"].to_dict() == {"oSVD": 2, "Tikhonov": 2, "PHAE": 1}
    # 4 test patients: the exact permutation test, not DeLong's; no p below 2 / 2^4.
    comparison = pd.read_csv(out / "auc_comparison.csv")
    assert len(comparison) == 6 and set(comparison["test"]) == {"permutation (exact)"}
    assert comparison["p"].between(2 / 2 ** 4, 1).all()
    study = json.loads((out / "study.json").read_text())
    assert set(study["tables"]) >= {"table1", "auc_comparison", "ratios", "noise_robustness"}
    assert [row["method"] for row in study["tables"]["table1"]] == table1.index.tolist()
    assert study["settings"]["command"].startswith("skperfusion study --demo")
    noise = pd.read_csv(out / "noise_robustness.csv")
    assert noise["method"].tolist() == ["oSVD", "Tikhonov", "PHAE", "ground truth"]
    assert noise["n_draws"].tolist() == [2, 2, 2, 0]
    errors = pd.read_csv(out / "map_errors.csv")
    assert errors["snr"].tolist() == ["acquired"] * 9 + ["20"] * 9
    assert {"CBV_bias_pct", "Tmax_bias_s", "rCBF_abs_error_pct"} <= set(errors.columns)
    report = (out / "report.md").read_text()
    for text in ("## Summary", "**Ceiling**", "Caveats:", "none is significant",
                 "## Table 1", "| PHAE ", "## Cross-validated grading", "## Paired comparison",
                 "paired permutation test", "2 independent noise draws", "leakage",
                 "## Noise robustness", "fig5_auc_vs_snr.png", "rCBF abs. error (%)",
                 "Tmax bias (s)", "- **seed**: 0"):
        assert text in report
    # The paper's order: Fig. 3 (maps), then Table 1 and Fig. 4, then Fig. 5.
    positions = [report.index(name) for name in ("fig3_maps.png", "## Table 1",
                                                  "fig4_ratio_boxplots.png",
                                                  "fig5_auc_vs_snr.png")]
    assert positions == sorted(positions)
    # An earlier report is only replaced with --overwrite.
    assert main(["study", "--demo", "--out", str(out), *TINY]) == 2
    assert "report.md exists; pass --overwrite" in capsys.readouterr().err
    # The README's main command can be run again: same settings reuse the same patients.
    assert main(["study", "--demo", "--out", str(out), *TINY, "--overwrite"]) == 0
    assert "reusing the demo cohort" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_csv(out / "ratios.csv", index_col="participant_id"),
                                  ratios)
    assert main(["study", "--demo", "--out", str(out), *TINY, "--seed", "1"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_study_gives_variants_and_torch_methods_the_device_and_precision(tmp_path, monkeypatch):
    import skperfusion.study.run

    configs = []
    monkeypatch.setattr(skperfusion.study.run, "run_study",
                        lambda exams, out, config: configs.append(config))
    argv = ["study", "--demo", "--out", str(tmp_path / "study"), "--quiet", *TINY[:-4],
            "--methods", "osvd", "parametric", "phae-gamma", "--device", "cpu:0",
            "--precision", "bfloat16"]
    assert main(argv) == 0
    (config,) = configs
    assert config.methods == ("osvd", "parametric", "phae-gamma")
    assert config.method_params["parametric"] == {"device": "cpu:0"}  # no precision there
    assert config.method_params["phae-gamma"]["device"] == "cpu:0"
    assert config.method_params["phae-gamma"]["precision"] == "bfloat16"
    assert "osvd" not in config.method_params  # no torch, no device


def test_study_needs_a_cohort_or_demo(tmp_path, capsys):
    assert main(["study", "--out", str(tmp_path / "out")]) == 2
    assert "either COHORT_DIR or --demo" in capsys.readouterr().err


def test_one_grade_cohort_is_rejected_without_output(tmp_path, capsys):
    cohort = tmp_path / "cohort"
    simulate_cohort(cohort, 4, shape=(10, 10, 2), random_state=0)
    table = pd.read_csv(cohort / "participants.tsv", sep="\t")
    table.assign(grade="HGG").to_csv(cohort / "participants.tsv", sep="\t", index=False)
    out = tmp_path / "out"
    assert main(["study", str(cohort), "--out", str(out)]) == 2
    assert "at least 2 patients of each grade ({'LGG': 0, 'HGG': 4})" in (
        capsys.readouterr().err)
    assert not out.exists()


def test_an_eight_patient_cohort_is_refused_before_any_training(tmp_path, capsys):
    cohort = tmp_path / "cohort"
    simulate_cohort(cohort, 8, shape=(8, 8, 1), random_state=0)
    out = tmp_path / "out"
    # The output as the second positional, as in every other command.
    assert main(["study", str(cohort), str(out)]) == 2
    captured = capsys.readouterr()
    assert "--cv-splits" in captured.err and "Nothing was trained" in captured.err
    assert "training" not in captured.out + captured.err.replace("Nothing was trained", "")
    assert not out.exists()


def test_study_output_positional_or_out(tmp_path, capsys):
    assert main(["study", "--demo", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "give only the output folder" in capsys.readouterr().err
    assert main(["study", str(tmp_path), str(tmp_path / "a"), "--out", str(tmp_path / "b")]) == 2
    assert "the output is given twice" in capsys.readouterr().err


def test_bad_options_are_rejected(tmp_path, capsys):
    assert main(["study", "--demo", "--out", str(tmp_path / "out"), "--test-size", "1.5"]) == 2
    assert "--test-size must be in (0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        main(["study", "--demo", "--out", str(tmp_path / "out"), "--snrs", "0"])
    (tmp_path / "out" / "demo_cohort").mkdir(parents=True)
    assert main(["study", "--demo", "--out", str(tmp_path / "out")]) == 2
    assert "exists from an earlier demo with other settings or unfinished" in (
        capsys.readouterr().err)


@pytest.mark.slow
def test_study_of_a_cohort_without_ground_truth(tmp_path):
    exams = [dataclasses.replace(
        simulate_exam(f"sub-{i}", grade, shape=(10, 10, 2), random_state=i), ground_truth=None)
        for i, grade in enumerate(["LGG", "HGG"] * 4)]
    tables = run_study(exams, tmp_path, methods=("osvd", "tikhonov", "phae"), test_size=0.5,
                       max_train_voxels=300, snrs=(20,), n_draws=1, n_splits=2, n_repeats=1,
                       n_boot=20, progress=False,
                       method_params={"phae": {"max_epochs": 1, "module__width": 4,
                                               "batch_size": 256}})
    assert tables["table1"].index.tolist() == ["oSVD", "Tikhonov", "PHAE"]
    assert tables["map_errors"].empty
    assert set(tables["noise_robustness"]["method"]) == {"oSVD", "Tikhonov", "PHAE"}
    report = (tmp_path / "report.md").read_text()
    assert "ground truth" not in report and "map errors" not in report.lower()
