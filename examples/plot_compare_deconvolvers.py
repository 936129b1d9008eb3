"""
========================================================================
Comparing oSVD, Tikhonov, the parametric fit and PHAE against the truth
========================================================================

All four deconvolvers take the same curves ``X`` and return the same
columns (CBF, CBV, MTT, Tmax), so comparing them is a loop. We simulate one
glioma exam, whose true maps are known, map it with each method and compare
the maps voxel by voxel and through the tumour/NAWM CBF ratio that the
grading study uses.

The PHAE is trained here on this exam's own voxels, with very few epochs and
a narrow encoder so that the example runs in seconds; see
:ref:`sphx_glr_auto_examples_plot_train_phae.py` for training on a cohort.
The parametric fit solves the PHAE's objective voxel by voxel instead
(:class:`~skperfusion.deconvolution.ParametricDeconvolver`); started from the
trained PHAE's answer (``init=``), the improvement it finds is the PHAE's
*amortisation gap*.
"""

# %%
# One simulated exam
# ------------------
# :func:`~skperfusion.datasets.simulate_exam` draws the acquisition, the
# arterial input, the residue families and the perfusion of grey matter,
# white matter and tumour from literature ranges, and keeps the true maps.
import time

import matplotlib.pyplot as plt
import numpy as np

from skperfusion.datasets import simulate_exam
from skperfusion.deconvolution import (
    OSVDDeconvolver,
    ParametricDeconvolver,
    PHAEDeconvolver,
    TikhonovDeconvolver,
)
from skperfusion.exam import ExamToCurves

exam = simulate_exam("sub-001", grade="HGG", snr=50.0, random_state=7)
X = ExamToCurves().transform(exam, "brain").X
print(f"TR = {exam.tr:.2f} s, TE = {exam.te * 1e3:.0f} ms; "
      f"X has {X.shape[0]} voxels x 2 channels x {X.shape[2]} frames")

# %%
# Map it with every method
# ------------------------
# The deconvolvers need the sampling interval; everything else keeps its
# default, except the PHAE's training budget. The last one starts the
# parametric fit from the trained PHAE (fitted estimators are used as they are).
phae = PHAEDeconvolver(tr=exam.tr, max_epochs=20, batch_size=256, lr=1e-2,
                       module__width=8, random_state=0)
deconvolvers = {
    "oSVD": OSVDDeconvolver(tr=exam.tr),
    "Tikhonov": TikhonovDeconvolver(tr=exam.tr),
    "Parametric": ParametricDeconvolver(tr=exam.tr),
    "PHAE": phae,
    "PHAE→fit": ParametricDeconvolver(tr=exam.tr, init=phae),
}
maps = {}
for name, deconvolver in deconvolvers.items():
    start = time.perf_counter()
    values = deconvolver.fit(X).transform(X)
    seconds = time.perf_counter() - start
    maps[name] = exam.to_volume(values, "brain")  # (X, Y, Z, 4), NaN outside the brain
    print(f"{name:10s} fit + transform in {seconds:5.2f} s")

# %%
# Relative CBF
# ------------
# The simulator's arterial ΔR2* grows quadratically with the blood
# concentration while the tissue's grows linearly (the relaxivity mismatch
# of real data, which no deconvolver corrects), so absolute CBF and CBV are
# off by a subject-dependent factor for every method alike. Clinical
# studies therefore read *relative* CBF, normalised to normal-appearing
# white matter; so do we.
tumor, nawm = exam.mask("tumor"), exam.mask("nawm")
truth = np.stack([exam.ground_truth[name] for name in ("CBF", "CBV", "MTT", "Tmax")], axis=-1)
panels = {"truth": truth, **maps}
relative_cbf = {name: volume[..., 0] / np.nanmean(volume[nawm, 0])
                for name, volume in panels.items()}
for name in maps:
    scale = np.nanmedian(maps[name][nawm, 0] / truth[nawm, 0])
    print(f"{name:10s} NAWM CBF = {scale:.1f} x truth")

# %%
# Maps next to the truth
# ----------------------
# Like Fig. 3 of the paper: relative CBF and MTT of one slice.
z = 1
fig, axes = plt.subplots(2, len(panels), figsize=(14, 5.2), layout="constrained")
for column, (name, volume) in enumerate(panels.items()):
    axes[0, column].set_title(name)
    axes[0, column].imshow(relative_cbf[name][:, :, z].T, origin="lower", vmin=0, vmax=4)
    axes[1, column].imshow(volume[:, :, z, 2].T, origin="lower", vmin=0, vmax=12)
    for ax in axes[:, column]:
        ax.set_axis_off()
for row, label in enumerate(["CBF / mean NAWM CBF", "MTT (s)"]):
    fig.colorbar(axes[row, -1].images[0], ax=axes[row, :], shrink=0.8, label=label)
plt.show()

# %%
# Voxel-wise error and the grading ratio
# --------------------------------------
# Median absolute relative error over perfused brain voxels (CSF has no
# flow), and the tumour/NAWM ratio of mean CBF, the quantity graded in the
# study.
perfused = exam.mask("brain") & (exam.ground_truth["CBF"] > 0)
print(f"{'method':10s} {'rCBF error':>10s} {'MTT error':>10s} {'CBF ratio':>10s}")
for name, volume in panels.items():
    rcbf_error = np.nanmedian(np.abs(relative_cbf[name][perfused]
                                     / relative_cbf["truth"][perfused] - 1))
    mtt_error = np.nanmedian(np.abs(volume[perfused, 2] / truth[perfused, 2] - 1))
    ratio = np.nanmean(relative_cbf[name][tumor])
    print(f"{name:10s} {rcbf_error:10.1%} {mtt_error:10.1%} {ratio:10.2f}")
