"""oSVD and Tikhonov against the simulator's ground truth, and memory of ``maps``.

Part 1 simulates a cohort (in memory) at SNR ∞ and 30 — the same subjects,
the noise drawn last — and prints voxel-wise CBF and MTT errors per tissue
and per residue family, and the grading AUC of the tumour/NAWM CBF ratio:

- ``CBF scale``: median of estimated / true CBF. DSC-MRI CBF is not
  absolute: the unknown tissue-to-blood relaxivity ratio, the quadratic
  blood relaxivity and arterial partial volume scale every voxel of an exam
  alike, so this is mostly calibration, not deconvolution error;
- ``rCBF``: relative error of CBF normalised per subject by its NAWM
  (``(est/true) / median_NAWM(est/true) - 1``), the quantity grading uses;
  median (bias) and median absolute value;
- ``MTT``: relative error (scale-free), median and median absolute value.

Part 2 writes a 128×128×20×120 exam and runs ``skperfusion maps`` on it in
a fresh process per method, reporting the process's peak RSS and wall time.

Run: ``python benchmarks/bench_cohort.py [--n-subjects 24] [--skip-memory]``.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _timing import run_command
from sklearn.metrics import roc_auc_score

from skperfusion.datasets import draw_subject_parameters, simulate_exam
from skperfusion.datasets.cohort import LABELS
from skperfusion.deconvolution import OSVDDeconvolver, TikhonovDeconvolver
from skperfusion.exam import Exam, write_exam
from skperfusion.exam_estimators import PerfusionMapper

METHODS = {"oSVD": OSVDDeconvolver, "Tikhonov": TikhonovDeconvolver}
REGIONS = ("gm", "wm", "tumor")


def _voxel_table(exam, labels, maps, method, snr):
    truth, extra = exam.ground_truth, exam.extra
    nawm = exam.masks["nawm"]
    with np.errstate(divide="ignore", invalid="ignore"):  # CSF has CBF = 0
        ratio = maps["CBF"] / truth["CBF"]
    scale = np.nanmedian(ratio[nawm])
    rows = []
    for region in REGIONS:
        voxels = labels == LABELS[region]
        tissues = {region: voxels}
        if region == "wm":
            tissues["nawm"] = nawm
        for tissue, mask in tissues.items():
            rows.append(pd.DataFrame({
                "method": method, "snr": snr, "tissue": tissue,
                "family": extra[f"residue_{region}"],
                "cbf_scale": ratio[mask],
                "rcbf_error": ratio[mask] / scale - 1.0,
                "mtt_error": maps["MTT"][mask] / truth["MTT"][mask] - 1.0,
            }))
    return pd.concat(rows)


def _summary(voxels, keys):
    grouped = voxels.groupby(keys, sort=False)
    return pd.DataFrame({
        "voxels": grouped.size(),
        "CBF scale": grouped["cbf_scale"].median(),
        "rCBF bias %": 100 * grouped["rcbf_error"].median(),
        "rCBF |err| %": 100 * grouped["rcbf_error"].apply(lambda e: e.abs().median()),
        "MTT bias %": 100 * grouped["mtt_error"].median(),
        "MTT |err| %": 100 * grouped["mtt_error"].apply(lambda e: e.abs().median()),
        "non-finite %": 100 * grouped["mtt_error"].apply(lambda e: (~np.isfinite(e)).mean()),
    }).round(2).reset_index()


def accuracy(n_subjects, seed):
    seeds = np.random.SeedSequence(seed).spawn(n_subjects)
    grades = ["LGG" if k % 5 in (0, 2) else "HGG" for k in range(n_subjects)]
    voxels, ratios = [], []
    start = time.perf_counter()
    for k, (child, grade) in enumerate(zip(seeds, grades, strict=True)):
        for snr in (np.inf, 30.0):
            exam, labels = simulate_exam(f"sub-{k:03d}", grade, snr=snr, random_state=child,
                                         return_labels=True)
            for method, cls in METHODS.items():
                maps = PerfusionMapper(cls()).fit([exam]).transform([exam])[0].maps
                voxels.append(_voxel_table(exam, labels, maps, method, snr))
                tumor, nawm = exam.masks["tumor"], exam.masks["nawm"]
                ratios.append({"method": method, "snr": snr, "grade": grade,
                               "true": exam.extra["true_cbf_ratio"],
                               "estimated": np.nanmean(maps["CBF"][tumor])
                               / np.nanmean(maps["CBF"][nawm])})
    voxels, ratios = pd.concat(voxels), pd.DataFrame(ratios)
    print(f"## Accuracy on {n_subjects} simulated subjects (16x16x4), "
          f"{time.perf_counter() - start:.0f} s\n")
    print("### Per tissue\n")
    print(_summary(voxels, ["snr", "method", "tissue"]).to_markdown(index=False))
    print("\n### Per residue family (GM, WM and tumour regions pooled)\n")
    regional = voxels[voxels["tissue"] != "nawm"]
    print(_summary(regional, ["snr", "method", "family"]).to_markdown(index=False))
    print("\n### Grading with the tumour/NAWM CBF ratio\n")
    rows = []
    for (snr, method), group in ratios.groupby(["snr", "method"], sort=False):
        hgg = group["grade"] == "HGG"
        rows.append({"snr": snr, "method": method,
                     "AUC true ratio": roc_auc_score(hgg, group["true"]),
                     "AUC estimated ratio": roc_auc_score(hgg, group["estimated"]),
                     "median est/true ratio": (group["estimated"] / group["true"]).median(),
                     "Spearman est vs true": group["estimated"].corr(group["true"],
                                                                     method="spearman")})
    print(pd.DataFrame(rows).round(3).to_markdown(index=False))


def _big_exam(folder, shape, tiles, seed):
    """A large exam tiled from a simulated one with exactly 120 frames."""
    while draw_subject_parameters("HGG", np.random.default_rng(seed))["n_times"] != 120:
        seed += 1
    small = simulate_exam("sub-big", "HGG", shape=shape, snr=30.0, random_state=seed)
    big = Exam(signal=np.tile(small.signal, (*tiles, 1)), te=small.te, tr=small.tr,
               affine=small.affine @ np.diag([1 / t for t in tiles] + [1.0]),
               masks={k: np.tile(m, tiles) for k, m in small.masks.items()},
               subject_id="sub-big", n_skip=small.n_skip)
    write_exam(big, folder)
    return big


def memory(shape, tiles):
    with tempfile.TemporaryDirectory() as tmp:
        big = _big_exam(Path(tmp) / "sub-big", shape, tiles, seed=0)
        print(f"\n## Peak memory of `skperfusion maps` on a {big.signal.shape} exam "
              f"({int(big.masks['brain'].sum())} brain voxels)\n")
        print("| method | wall s | peak RSS MB |\n|---|---|---|")
        for method in ("osvd", "tikhonov"):
            wall, peak_mb = run_command(["maps", Path(tmp) / "sub-big", Path(tmp) / method,
                                         "--method", method])
            print(f"| {method} | {wall:.1f} | {peak_mb:.0f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-subjects", type=int, default=24)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--memory-tiles", type=int, nargs=3, default=(8, 8, 5),
                        help="tiles of a 16x16x4 exam (default 128x128x20)")
    args = parser.parse_args()
    if not args.skip_accuracy:
        accuracy(args.n_subjects, args.seed)
    if not args.skip_memory:
        memory((16, 16, 4), tuple(args.memory_tiles))


if __name__ == "__main__":
    main()
