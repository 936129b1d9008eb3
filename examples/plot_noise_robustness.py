"""
==========================
Robustness to noise
==========================

The paper degrades its test exams with Gaussian noise down to a baseline SNR
of 10 (SNR = mean of the baseline signal / noise standard deviation),
recomputes the AIF from the degraded signal, and follows the grading AUC of
each method (its Fig. 5). One noise draw per SNR on a few patients is
itself noisy, so each SNR is repeated over several independent draws. On
simulated exams the truth is known too, so we also follow the voxel-wise MTT
error.

Everything is small here — a handful of exams, a briefly trained PHAE, few
bootstrap resamples — so the AUCs are coarse; ``skperfusion study`` runs the
same protocol on a full cohort.
"""

# %%
# Noise-free exams, fitted mappers
# --------------------------------
# The exams are simulated without noise (``snr=np.inf``) so that each SNR
# level below is exactly the one added.
import matplotlib.pyplot as plt
import numpy as np

from skperfusion.datasets import simulate_exam
from skperfusion.deconvolution import OSVDDeconvolver, PHAEDeconvolver, TikhonovDeconvolver
from skperfusion.exam import ExamToCurves
from skperfusion.exam_estimators import PerfusionMapper
from skperfusion.study.evaluation import TRUTH, degrade_exam, noise_robustness

grades = ["LGG", "HGG"] * 5
exams = [simulate_exam(f"sub-{i:03d}", grade, shape=(12, 12, 2), snr=np.inf,
                       random_state=200 + i) for i, grade in enumerate(grades)]
train, test = exams[:2], exams[2:]

deconvolvers = {
    "oSVD": OSVDDeconvolver(),
    "Tikhonov": TikhonovDeconvolver(),
    "PHAE": PHAEDeconvolver(max_epochs=15, lr=1e-2, batch_size=256, module__width=8,
                            random_state=0),
}
# Exams differ in TR and length; every mapper resamples them to one time
# grid, here the finest TR and the shortest acquisition of the cohort, so
# that no test exam is shorter than the grid. The PHAE is trained on noisy
# training exams (SNR 30), as it would be on real data.
tr = min(exam.tr for exam in exams)
n_times = int(min((exam.n_times - exam.n_skip - 1) * exam.tr for exam in exams) // tr) + 1
noisy_train = [degrade_exam(exam, 30, random_state=i) for i, exam in enumerate(train)]
mappers = {name: PerfusionMapper(deconvolver, tr=tr, n_times=n_times, max_train_voxels=1024,
                                 random_state=0).fit(noisy_train)
           for name, deconvolver in deconvolvers.items()}

# %%
# What the noise does to a curve
# ------------------------------
# One tumour voxel of a test exam at three noise levels, after conversion to
# concentration; the arterial curve is recomputed from the noisy arterial
# voxels each time.
exam = test[1]
voxel = exam.mask("tumor") & ~exam.mask("aif")
t = np.arange(exam.n_times - exam.n_skip) * exam.tr
fig, ax = plt.subplots(figsize=(6, 3.2), layout="constrained")
for snr in (np.inf, 30, 10):
    noisy = exam if np.isinf(snr) else degrade_exam(exam, snr, random_state=0)
    ax.plot(t, ExamToCurves().transform(noisy, voxel).X[0, 0], label=f"SNR {snr:g}")
ax.set(xlabel="time (s)", ylabel="ΔR2* (1/s)", title=f"{exam.subject_id}, one tumour voxel")
ax.legend()
plt.show()

# %%
# AUC and MTT error against SNR
# -----------------------------
# :func:`~skperfusion.study.evaluation.noise_robustness` degrades every test
# exam ``n_draws`` times per SNR and maps the *same* degraded exams with every
# method. The AUC is the mean over the draws; its interval pools the draws'
# bootstrap AUCs, so it covers the noise and the sampling of the patients.
# The ``TRUTH`` rows give the AUC of the true ratios, the ceiling on these
# patients; the second table holds the map errors per region, averaged over
# the draws.
table, errors = noise_robustness(test, mappers, snrs=(50, 30, 20, 10), n_draws=3, n_boot=200,
                                 random_state=0)
print(table[["snr", "method", "auc", "auc_low", "auc_high", "auc_draw_sd"]]
      .to_string(index=False, float_format="{:.2f}".format))
brain = errors[errors["region"] == "brain"]

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
for k, method in enumerate(mappers):
    rows = table[table["method"] == method]
    # Small horizontal offsets keep the confidence intervals apart.
    axes[0].errorbar(rows["snr"] + 0.6 * (k - 1), rows["auc"], marker="o", capsize=3,
                     yerr=[rows["auc"] - rows["auc_low"], rows["auc_high"] - rows["auc"]],
                     label=method)
    rows = brain[brain["method"] == method]
    axes[1].plot(rows["snr"], rows["MTT_abs_error_pct"], marker="o", label=method)
truth = table[table["method"] == TRUTH]
axes[0].plot(truth["snr"], truth["auc"], "k--", lw=1, label="true ratios")
axes[0].set(xlabel="baseline SNR", ylabel="ROC AUC (95 % interval)", title="Grading",
            ylim=(0.3, 1.02))
axes[1].set(xlabel="baseline SNR", ylabel="median |MTT error| (%)", title="Voxel-wise MTT")
for ax, where in zip(axes, ["lower left", "upper left"], strict=True):
    ax.invert_xaxis()
    ax.legend(loc=where)
plt.show()
