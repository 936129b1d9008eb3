"""Accuracy of every deconvolver on simulated exams, grading AUC, parametric-fit speed.

1. Voxel errors: ``N_EXAMS`` simulated glioma exams
   (:func:`skperfusion.datasets.simulate_exam`: mixed residue families per
   region, delays 0-3.5 s, dispersion, a partial-volume AIF, non-linear blood
   relaxivity), noise-free and with Gaussian noise added at SNR 50, 30, 20
   and 10 (:func:`skperfusion.study.evaluation.degrade_exam`). Printed: the
   median over the brain voxels of ``|estimate / truth - 1|`` in % for CBF,
   rCBF (both divided by their NAWM mean first, free of the global scale no
   deconvolver can recover here) and MTT, and of ``|Tmax - delay|`` in s.
   The PHAE (the paper's Lorentzian decoder, and with a learned delay) is
   trained self-supervised on the exams it maps, briefly (``PHAE_PARAMS``).
2. Grading: AUC of the tumour/NAWM CBF ratio for HGG against LGG on the
   demo cohort of ``skperfusion study --demo`` (64 subjects, 16x16x4, SNR
   100; ``N_COHORT`` to shorten), next to the AUC of the true ratios.
3. Speed of :class:`~skperfusion.deconvolution.ParametricDeconvolver` on
   ``N_SPEED`` voxels of 60 frames (process CPU time and wall time, 1 and 2
   threads): the cores may be shared, the CPU time is the stable figure.

Run: ``python benchmarks/bench_accuracy.py [--quick]`` (``--quick``: 4 exams,
16-subject cohort).
"""

import sys
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from skperfusion.datasets import simulate_exam
from skperfusion.deconvolution import (
    OSVDDeconvolver,
    ParametricDeconvolver,
    PHAEDeconvolver,
    TikhonovDeconvolver,
)
from skperfusion.exam_estimators import PerfusionMapper, ROIRatio
from skperfusion.study.evaluation import degrade_exam

QUICK = "--quick" in sys.argv
N_EXAMS = 4 if QUICK else 8
N_COHORT = 16 if QUICK else 64
N_SPEED = 20_000
SNRS = (np.inf, 50, 30, 20, 10)
PHAE_PARAMS = {"max_epochs": 15, "lr": 1e-3, "batch_size": 512, "epoch_voxels": 8192,
               "module__width": 16, "random_state": 0}
METHODS = {
    "oSVD": lambda: OSVDDeconvolver(),
    "Tik-RGCV (default)": lambda: TikhonovDeconvolver(),
    "Tik-GCV (ridge, old)": lambda: TikhonovDeconvolver(lambda_selection="gcv",
                                                         penalty="identity"),
    "Tik-GCV": lambda: TikhonovDeconvolver(lambda_selection="gcv"),
    "Tik-Lcurve": lambda: TikhonovDeconvolver(lambda_selection="lcurve"),
    "Tik-Lcurve (ridge)": lambda: TikhonovDeconvolver(lambda_selection="lcurve",
                                                      penalty="identity"),
    "Tik-discrepancy": lambda: TikhonovDeconvolver(lambda_selection="discrepancy"),
    "PHAE": lambda: PHAEDeconvolver(**PHAE_PARAMS),
    "PHAE (delay)": lambda: PHAEDeconvolver(learn_delay=True, **PHAE_PARAMS),
    "Parametric (gamma)": lambda: ParametricDeconvolver(),
    "Parametric (auto)": lambda: ParametricDeconvolver(family="auto"),
}


def _exams(n, snr, seed=0):
    return [simulate_exam(f"sub-{i:03d}", "HGG" if i % 2 else "LGG", shape=(16, 16, 2),
                          snr=snr, noise="gaussian", random_state=seed + i)
            for i in range(n)]


def _voxel_errors(maps):
    """Median |relative error| (%) of CBF, rCBF, MTT and |Tmax error| (s) over brain voxels."""
    errors = {name: [] for name in ("CBF", "rCBF", "MTT", "Tmax")}
    with np.errstate(divide="ignore", invalid="ignore"):     # CSF: true CBF = 0, unscored
        for item in maps:
            _add_errors(errors, item)
    return {name: np.nanmedian(np.abs(np.concatenate(values))) * (1 if name == "Tmax" else 100)
            for name, values in errors.items()}


def _add_errors(errors, item):
    """Append one exam's voxel errors to ``errors``."""
    truth, estimate = item.exam.ground_truth, item.maps
    scored = item.exam.mask("brain") & np.isfinite(truth["CBF"]) & (truth["CBF"] > 0)
    nawm = item.exam.mask("nawm")
    errors["CBF"].append(estimate["CBF"][scored] / truth["CBF"][scored] - 1)
    relative = ((estimate["CBF"] / np.nanmean(estimate["CBF"][nawm]))
                / (truth["CBF"] / np.nanmean(truth["CBF"][nawm])))
    errors["rCBF"].append(relative[scored] - 1)
    errors["MTT"].append(estimate["MTT"][scored] / truth["MTT"][scored] - 1)
    errors["Tmax"].append(estimate["Tmax"][scored] - truth["Tmax"][scored])


def _map(method, exams):
    return PerfusionMapper(METHODS[method](), random_state=0).fit(exams).transform(exams)


def accuracy_table():
    clean = _exams(N_EXAMS, np.inf)
    print(f"1. Median voxel errors on {N_EXAMS} simulated exams (16x16x2), by SNR: "
          "CBF / rCBF / MTT in %, Tmax in s")
    header = f"{'method':<22}" + "".join(f"{'SNR ' + str(snr):>26}" for snr in SNRS)
    print(header)
    print(f"{'':<22}" + f"{'CBF  rCBF   MTT  Tmax':>26}" * len(SNRS))
    print("-" * len(header))
    noisy = {snr: clean if not np.isfinite(snr) else
             [degrade_exam(exam, snr, random_state=100 + i) for i, exam in enumerate(clean)]
             for snr in SNRS}
    for method in METHODS:
        cells = []
        for snr in SNRS:
            errors = _voxel_errors(_map(method, noisy[snr]))
            cells.append(f"{errors['CBF']:>6.0f}{errors['rCBF']:>6.1f}{errors['MTT']:>6.1f}"
                         f"{errors['Tmax']:>6.2f}")
        print(f"{method:<22}" + "".join(f"{cell:>26}" for cell in cells), flush=True)


def grading_table():
    cohort = _exams(N_COHORT, 100.0, seed=1000)
    is_high = np.array([exam.grade == "HGG" for exam in cohort])
    print(f"\n2. Grading AUC (tumour/NAWM CBF ratio, HGG vs LGG) on the {N_COHORT}-subject "
          "demo cohort (16x16x2, SNR 100)")
    true_ratio = [exam.extra["true_cbf_ratio"] for exam in cohort]
    print(f"{'true ratio':<22}{roc_auc_score(is_high, true_ratio):>6.3f}")
    for method in METHODS:
        ratios = ROIRatio("CBF").transform(_map(method, cohort)).ravel()
        print(f"{method:<22}{roc_auc_score(is_high, ratios):>6.3f}", flush=True)


def speed_table():
    exam = simulate_exam("sub-speed", "HGG", shape=(16, 16, 4), snr=30.0, random_state=7)
    X = exam.curves("brain")[:, :, :60]
    X = np.tile(X, (int(np.ceil(N_SPEED / len(X))), 1, 1))[:N_SPEED]
    n_times = X.shape[-1]
    print(f"\n3. ParametricDeconvolver speed, {len(X)} voxels of {n_times} frames "
          f"(CPU time of this process; wall time in brackets)")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for family in ("gamma", "exponential", "auto"):
            estimator = ParametricDeconvolver(tr=exam.tr, family=family).fit(X[:10])
            cpu, wall = time.process_time(), time.perf_counter()
            estimator.transform(X)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(f"  {threads} thread(s), family={family:<12} {len(X) / cpu:>8.0f} voxels/s "
                  f"per CPU second  ({len(X) / wall:>7.0f} voxels/s wall)", flush=True)


if __name__ == "__main__":
    accuracy_table()
    grading_table()
    speed_table()
