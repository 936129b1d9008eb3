"""
====================================================
Leakage correction: BSW and the bidirectional model
====================================================

In an enhancing tumour the contrast agent leaks out of the vessels. With a
single gradient echo, the leaked agent's T1 shortening lifts the signal: the
tumour's ΔR2* falls below its vascular course after the bolus, and CBV
comes out far too low, often negative.
:class:`~skperfusion.preprocessing.LeakageCorrector` removes the leakage term
with the BSW model (Boxerman et al. 2006) or the bidirectional exchange model
(Bjørnerud et al. 2011); see :ref:`leakage`.
"""

# %%
# A leaky glioma with its leak-free twin
# --------------------------------------
# The simulator draws the leakage from a random stream of its own, so the same
# subject simulated without leakage has the same vascular curves and truth:
# the twin shows what a perfect correction would give.
import warnings

import matplotlib.pyplot as plt
import numpy as np

from skperfusion.datasets import simulate_exam
from skperfusion.exam import ExamToCurves
from skperfusion.physics import cbv_from_curves

settings = {"shape": (16, 16, 2), "snr": 50.0, "random_state": 3}
leaky = simulate_exam("sub-1", "HGG", leakage={"ktrans_tumor": 0.05, "ve_tumor": 0.3},
                      **settings)
twin = simulate_exam("sub-1", "HGG", **settings)
brain = leaky.masks["brain"]
tumor, nawm = leaky.masks["tumor"][brain], leaky.masks["nawm"][brain]
print(f"Ktrans {leaky.extra['ktrans_tumor']:.3f} /min, flip angle "
      f"{leaky.flip_angle:.0f} deg, TR {leaky.tr:.2f} s")

# %%
# Correct, and compare the tumour curves
# --------------------------------------
# :class:`~skperfusion.exam.ExamToCurves` turns the exam into ΔR2* curves and
# applies the correction (fitted on all brain voxels: the reference curve is
# the mean of the non-enhancing ones).
curves = {"leak-free twin": ExamToCurves().transform(twin)}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for method in ("none", "bsw", "bidirectional"):
        curves[method] = ExamToCurves(leakage=method).transform(leaky)

time = np.arange(curves["none"].X.shape[-1]) * leaky.tr
fig, ax = plt.subplots(figsize=(7, 4))
styles = {"leak-free twin": "k-", "none": "C3-", "bsw": "C0--", "bidirectional": "C2-."}
for name, result in curves.items():
    ax.plot(time, result.X[tumor, 0].mean(axis=0), styles[name], label=name)
ax.axhline(0.0, color="0.6", lw=0.8)
ax.set_xlabel("time (s)")
ax.set_ylabel("mean tumour ΔR2* (1/s)")
ax.set_title("T1 leakage lifts the signal: ΔR2* below its vascular course")
ax.legend()
fig.tight_layout()

# %%
# What it does to the CBV ratio
# -----------------------------
# The tumour/NAWM CBV ratio (curve areas, eq. 2) against the ground truth.
truth = leaky.ground_truth["CBV"]
true_ratio = truth[leaky.masks["tumor"]].mean() / truth[leaky.masks["nawm"]].mean()
print(f"true tumour/NAWM CBV ratio: {true_ratio:.2f}")
for name, result in curves.items():
    cbv = cbv_from_curves(result.X[:, 0], result.X[:, 1])
    print(f"{name:>15}: {np.nanmean(cbv[tumor]) / np.nanmean(cbv[nawm]):6.2f}")

# %%
# The K2 map
# ----------
# ``K2`` (1/s) is positive where the leakage is T1-dominant and 0 where no
# leakage stands out from the noise; ``skperfusion maps --leakage bsw`` writes
# it as the ``k2`` map (``sub-<id>_desc-<method>_k2.nii.gz``). The true Ktrans
# map of the simulator is beside it.
k2 = leaky.to_volume(curves["bsw"].k2)
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
images = [(k2[..., 0], "BSW K2 (1/s)", "RdBu_r"),
          (leaky.ground_truth["Ktrans"][..., 0], "true Ktrans (1/min)", "magma")]
for ax, (image, title, cmap) in zip(axes, images, strict=True):
    limit = np.nanmax(np.abs(image))
    shown = ax.imshow(image.T, origin="lower", cmap=cmap,
                      vmin=-limit if cmap == "RdBu_r" else 0, vmax=limit)
    ax.set_title(title)
    ax.axis("off")
    fig.colorbar(shown, ax=ax, shrink=0.8)
fig.tight_layout()
plt.show()
