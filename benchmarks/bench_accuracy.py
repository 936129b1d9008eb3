"""Accuracy of every registered deconvolver on three references, in one table.

1. **OSIPI**: the 14 DSC reference curves of the OSIPI DCE-DSC-MRI
   CodeCollection (vendored in ``tests/data``, Apache-2.0; CNR 200,
   exponential residues, no delay, rectangle-rule convolutions, kH = ρ = 1).
   Printed: how many curves have CBF within 10 % of the truth (``CBF10``),
   within OSIPI's tolerance 10 % + 15 ml/100ml/min (``CBFtol``) and CBV
   within 10 % + 1 ml/100ml (``CBVtol``).
2. **Cohort**: ``N_EXAMS`` exams of the simulator
   (:func:`skperfusion.datasets.simulate_exam`: residue families drawn per
   region, delays 0-3.5 s, dispersion, a partial-volume AIF, non-linear
   blood relaxivity), noise-free and with Gaussian noise at SNR 50, 30, 20
   and 10 (:func:`skperfusion.study.evaluation.degrade_exam`). Printed: the
   median over the brain voxels of ``|estimate / truth - 1|`` in % for rCBF
   (CBF divided by its NAWM mean, free of the global scale no deconvolver
   can recover here) and MTT, and of ``|Tmax - delay|`` in s.
3. **Mixed**: ``N_MIXED`` exams at SNR 30 in which grey matter, white
   matter and tumour each have a different residue family (exponential,
   gamma, boxcar, Lorentzian, cycled over the exams). Printed: median rCBF
   and MTT errors (%) over all their brain voxels, and each as a multiple
   of oSVD's (the goals: rCBF ≤ 0.8×, MTT ≤ 0.6×); the median signed MTT
   error in the NAWM (``NAWM MTT``, %, the bias); and the % of brain
   voxels without an estimate (``NaN``: the parametric fit's voxels at a
   bound), which the medians leave out.

Every registered method is run, the variants (``phae-gamma``) included.
The trainable methods (the PHAE variants) are trained self-supervised on
the curves they map, briefly (``PHAE_PARAMS``). ``--grading`` adds the
grading AUC on a demo-like cohort, ``--speed`` the parametric fit's speed.

``--noise-auc`` runs instead the study's noise-robustness stage
(:func:`skperfusion.study.evaluation.noise_robustness`) on a cohort like
``skperfusion study --demo``'s (``N_NOISE_SUBJECTS`` subjects, 16x16x4,
Rician noise at SNR 100, leaky tumours, leakage corrected by BSW): the
trainable methods are trained with the command line's CPU preset on the
training split (60 %), then the test exams are degraded at SNR 20 and 10,
``N_NOISE_DRAWS`` times each, and graded by their tumour/NAWM CBF ratio.
Printed per SNR and method: the AUC averaged over the draws, its 95 %
interval (bootstrap of the patients pooled over the draws), the standard
deviation over the draws and the true ratios' AUC (the ceiling).

Run: ``python benchmarks/bench_accuracy.py [--quick] [--grading] [--speed]
[--methods=osvd,parametric]`` (``--quick``: 2 cohort exams, 8 mixed exams,
shorter PHAE training; ``--methods``: registry names, default all; put
``osvd`` first for the ratios); ``python benchmarks/bench_accuracy.py
--noise-auc [--methods=osvd,phae,phae-gamma] [--subjects=N] [--draws=N]``.
"""

import itertools
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from skperfusion.cli._args import PHAE_PRESETS
from skperfusion.datasets import simulate_exam
from skperfusion.deconvolution import (
    FitBoundsWarning,
    ParametricDeconvolver,
    available_deconvolvers,
    get_deconvolver,
    make_deconvolver,
)
from skperfusion.exam import ExamToCurves, time_grid
from skperfusion.exam_estimators import PerfusionMapper, ROIRatio, exam_grades, shared_curves
from skperfusion.study.evaluation import degrade_exam, noise_robustness

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from osipi import load_osipi, osipi_passes

QUICK = "--quick" in sys.argv
N_EXAMS = 2 if QUICK else 4
N_MIXED = 8
N_COHORT = 16 if QUICK else 64
N_SPEED = 20_000
SNRS = (np.inf, 50, 30, 20, 10)
MIXED_SNR = 30.0
FAMILIES = ("exponential", "gamma", "boxcar", "lorentzian")
PHAE_PARAMS = {"max_epochs": 8 if QUICK else 40, "lr": 1e-3, "batch_size": 512,
               "epoch_voxels": 4096, "module__width": 16, "random_state": 0}
OSIPI_PHAE_PARAMS = {**PHAE_PARAMS, "max_epochs": 200, "batch_size": 14}
N_NOISE_SUBJECTS = 64
N_NOISE_DRAWS = 5
NOISE_SNRS = (20, 10)


def _option(name, default):
    """The value of ``--name=VALUE`` on the command line, else ``default``."""
    for argument in sys.argv[1:]:
        if argument.startswith(f"--{name}="):
            return type(default)(argument.partition("=")[2])
    return default


def _make(name, **params):
    """A new estimator of a registered method; trainable ones with the brief training."""
    if get_deconvolver(name).trainable:
        params = {**PHAE_PARAMS, **params}
    return make_deconvolver(name, **params)


def _exams(n, snr, seed=0, families=None):
    """``n`` simulated exams, HGG and LGG alternating; ``families`` cycles region families."""
    exams = []
    for i in range(n):
        parameters = None
        if families is not None:
            gm, wm, tumor = families[i % len(families)]
            parameters = {"residue_gm": gm, "residue_wm": wm, "residue_tumor": tumor}
        exams.append(simulate_exam(f"sub-{i:03d}", "HGG" if i % 2 else "LGG",
                                   shape=(16, 16, 2), snr=snr, noise="gaussian",
                                   random_state=seed + i, parameters=parameters))
    return exams


def _voxel_errors(maps):
    """Median |relative error| (%) of rCBF and MTT and |Tmax error| (s) over brain voxels.

    Also the median signed MTT error in the NAWM (``bias``, %) and the % of
    brain voxels with a NaN CBF (``NaN``).
    """
    errors = {name: [] for name in ("rCBF", "MTT", "Tmax", "bias", "NaN")}
    with np.errstate(divide="ignore", invalid="ignore"):     # CSF: true CBF = 0, unscored
        for item in maps:
            truth, estimate = item.exam.ground_truth, item.maps
            scored = item.exam.mask("brain") & np.isfinite(truth["CBF"]) & (truth["CBF"] > 0)
            nawm = item.exam.mask("nawm")
            relative = ((estimate["CBF"] / np.nanmean(estimate["CBF"][nawm]))
                        / (truth["CBF"] / np.nanmean(truth["CBF"][nawm])))
            errors["rCBF"].append(relative[scored] - 1)
            errors["MTT"].append(estimate["MTT"][scored] / truth["MTT"][scored] - 1)
            errors["Tmax"].append(estimate["Tmax"][scored] - truth["Tmax"][scored])
            errors["bias"].append(estimate["MTT"][scored & nawm] / truth["MTT"][scored & nawm] - 1)
            errors["NaN"].append(np.isnan(estimate["CBF"][scored]))
    values = {name: np.concatenate(value) for name, value in errors.items()}
    with warnings.catch_warnings():        # a method without Tmax: all NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        summary = {name: np.nanmedian(np.abs(values[name])) * (1 if name == "Tmax" else 100)
                   for name in ("rCBF", "MTT", "Tmax")}
    return {**summary, "bias": 100 * np.nanmedian(values["bias"]),
            "NaN": 100 * np.mean(values["NaN"])}


def _map(name, exams):
    return PerfusionMapper(_make(name), random_state=0).fit(exams).transform(exams)


def _osipi_cells(name):
    """CBF strict (10 %), CBF and CBV OSIPI-tolerance pass counts on the 14 curves."""
    X, cbf, cbv, tr = load_osipi()
    params = OSIPI_PHAE_PARAMS if get_deconvolver(name).trainable else {}
    maps = make_deconvolver(name, tr=tr, kh=1.0, rho=1.0, **params).fit_transform(X)
    strict = np.abs(maps[:, 0] / cbf - 1) <= 0.1
    return (f"{strict.sum():>6d}{osipi_passes(maps[:, 0], cbf, 15.0).sum():>7d}"
            f"{osipi_passes(maps[:, 1], cbv, 1.0).sum():>7d}")


def accuracy_table(methods):
    """The one table: OSIPI counts, cohort errors by SNR, mixed-family errors vs oSVD."""
    clean = _exams(N_EXAMS, np.inf)
    noisy = {snr: clean if not np.isfinite(snr) else
             [degrade_exam(exam, snr, random_state=100 + i) for i, exam in enumerate(clean)]
             for snr in SNRS}
    combos = list(itertools.permutations(FAMILIES, 3))[::3]
    mixed = _exams(N_MIXED, MIXED_SNR, seed=500, families=combos)
    print(f"OSIPI: 14 curves (counts of 14). Cohort: {N_EXAMS} exams 16x16x2, median |error| "
          f"rCBF/MTT %, Tmax s. Mixed: {N_MIXED} mixed-family exams at SNR {MIXED_SNR:g}, "
          "median |error| % and its ratio to oSVD's.")
    header = (f"{'method':<12}{'CBF10':>6}{'CBFtol':>7}{'CBVtol':>7}"
              + "".join(f"{'SNR ' + str(snr) + ' rCBF/MTT/Tmax':>22}" for snr in SNRS)
              + f"{'mixed rCBF (x oSVD)':>22}{'mixed MTT (x oSVD)':>22}{'NAWM MTT':>9}{'NaN':>6}")
    print(header)
    print("-" * len(header), flush=True)
    reference = None
    for name in methods:
        cells = [_osipi_cells(name)]
        for snr in SNRS:
            errors = _voxel_errors(_map(name, noisy[snr]))
            cells.append(f"{errors['rCBF']:>10.1f}{errors['MTT']:>6.1f}{errors['Tmax']:>6.2f}")
        errors = _voxel_errors(_map(name, mixed))
        if name == "osvd":
            reference = errors
        ratios = (("", "") if reference is None else
                  tuple(f"({errors[k] / reference[k]:.2f})" for k in ("rCBF", "MTT")))
        cells += [f"{errors['rCBF']:>14.1f}{ratios[0]:>8}", f"{errors['MTT']:>14.1f}{ratios[1]:>8}",
                  f"{errors['bias']:>+9.1f}{errors['NaN']:>6.1f}"]
        print(f"{name:<12}" + "".join(cells), flush=True)


def grading_table(methods):
    """Grading AUC of the tumour/NAWM CBF ratio, HGG against LGG, next to the true ratio's."""
    cohort = _exams(N_COHORT, 100.0, seed=1000)
    is_high = np.array([exam.grade == "HGG" for exam in cohort])
    print(f"\nGrading AUC (tumour/NAWM CBF ratio, HGG vs LGG) on {N_COHORT} exams "
          "(16x16x2, SNR 100)")
    true_ratio = [exam.extra["true_cbf_ratio"] for exam in cohort]
    print(f"{'true ratio':<12}{roc_auc_score(is_high, true_ratio):>6.3f}")
    for name in methods:
        ratios = ROIRatio("CBF").transform(_map(name, cohort)).ravel()
        print(f"{name:<12}{roc_auc_score(is_high, ratios):>6.3f}", flush=True)


def _demo_cohort(n_subjects, seed=0):
    """The exams of ``skperfusion study --demo`` (seeds and grades as ``simulate_cohort``'s)."""
    seeds = np.random.SeedSequence(seed).spawn(n_subjects + 1)
    n_lgg = int(np.clip(round(0.4 * n_subjects), 1, n_subjects - 1))
    grades = np.random.default_rng(seeds[0]).permutation(
        ["LGG"] * n_lgg + ["HGG"] * (n_subjects - n_lgg))
    return [simulate_exam(f"sub-{i + 1:03d}", str(grade), shape=(16, 16, 4), snr=100.0,
                          noise="rician", leakage=True, random_state=s)
            for i, (grade, s) in enumerate(zip(grades, seeds[1:], strict=True))]


def noise_auc_table(methods, n_subjects, n_draws, seed=0):
    """Grading AUC under noise (the study's Fig. 5 stage) with intervals, per SNR and method."""
    exams = _demo_cohort(n_subjects, seed)
    grid = time_grid(exams)
    step = ExamToCurves(leakage="bsw", tr=grid[0], n_times=grid[1])
    cohort = shared_curves(exams, {"main": step})["main"]
    train, test = train_test_split(cohort, test_size=0.4, stratify=exam_grades(exams),
                                   random_state=seed)
    mappers = {}
    for name in methods:
        params = ({**PHAE_PRESETS["cpu"], "random_state": seed}
                  if get_deconvolver(name).trainable else {})
        mappers[name] = PerfusionMapper(make_deconvolver(name, **params), curves=step,
                                        tr=grid[0], n_times=grid[1], max_train_voxels=200_000,
                                        random_state=seed).fit(train)
    auc, _ = noise_robustness(test, mappers, NOISE_SNRS, n_draws=n_draws, noise="gaussian",
                              error_regions=(), n_boot=2000, random_state=seed)
    print(f"\nGrading AUC under noise (tumour/NAWM CBF ratio, HGG vs LGG): {len(test)} test "
          f"exams of a {n_subjects}-subject demo cohort (16x16x4, SNR 100, leaky, BSW), "
          f"{n_draws} Gaussian noise draws per SNR; mean over draws [95 % interval], "
          "sd over draws")
    for row in auc.itertuples():
        interval = f"[{row.auc_low:.3f}, {row.auc_high:.3f}]"
        spread = f"sd {row.auc_draw_sd:.3f}" if np.isfinite(row.auc_draw_sd) else ""
        print(f"SNR {row.snr:>4g}  {row.method:<12}{row.auc:>6.3f} {interval:<17}{spread}",
              flush=True)


def speed_table():
    """Voxels per CPU second of the parametric fit, 1 and 2 threads."""
    exam = simulate_exam("sub-speed", "HGG", shape=(16, 16, 4), snr=30.0, random_state=7)
    X = ExamToCurves().transform(exam, "brain").X[:, :, :60]
    X = np.tile(X, (int(np.ceil(N_SPEED / len(X))), 1, 1))[:N_SPEED]
    print(f"\nParametricDeconvolver speed, {len(X)} voxels of {X.shape[-1]} frames "
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
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", FitBoundsWarning)    # counted in the NaN column
    METHODS = available_deconvolvers(variants=True)
    for argument in sys.argv[1:]:
        if argument.startswith("--methods="):
            METHODS = tuple(argument.partition("=")[2].split(","))
    if "--noise-auc" in sys.argv:
        noise_auc_table(METHODS, _option("subjects", N_NOISE_SUBJECTS),
                        _option("draws", N_NOISE_DRAWS))
        sys.exit()
    accuracy_table(METHODS)
    if "--grading" in sys.argv:
        grading_table(METHODS)
    if "--speed" in sys.argv:
        speed_table()
