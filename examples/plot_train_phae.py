"""
==================================
Training a PHAE and saving it
==================================

The physics-informed autoencoder learns from the curves themselves: ``fit``
needs no reference maps, only tissue and arterial concentration curves. Here
we train one on the brain voxels of a few simulated training exams, follow
its loss, save it, load it back and map a held-out exam with it.

The settings are tiny so that the example runs in seconds on a CPU (a narrow
encoder, few epochs, a random subset of voxels per epoch, a larger learning
rate). The paper's defaults — 32 feature maps, 65 epochs, batch 1536,
learning rate 1e-4 — are those of :class:`~skperfusion.deconvolution.PHAEDeconvolver`
when you leave the parameters alone; on a GPU pass ``device="cuda"``.
"""

# %%
# A small training cohort
# -----------------------
# Exams differ in TR and length, so their curves are resampled to one time
# grid, that of the finest TR and the shortest acquisition (what
# ``skperfusion train`` and
# :class:`~skperfusion.exam_estimators.PerfusionMapper` do as well).
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from skperfusion.datasets import simulate_exam
from skperfusion.deconvolution import PHAEDeconvolver
from skperfusion.exam import ExamToCurves, time_grid

exams = [simulate_exam(f"sub-{i:03d}", grade, random_state=i)
         for i, grade in enumerate(["LGG", "HGG", "HGG", "LGG"])]
train, test = exams[:3], exams[3]
tr, n_times = time_grid(exams)  # the smallest TR, the shortest acquisition
step = ExamToCurves(tr=tr, n_times=n_times)
X_train = np.concatenate([step.transform(exam, "brain").X for exam in train])
print(f"{X_train.shape[0]} training voxels on a grid of {n_times} frames x {tr:.2f} s")

# %%
# Self-supervised training
# ------------------------
# ``fit(X)`` with ``y=None``: the encoder proposes an MTT for each voxel,
# the physics decoder rebuilds the tissue curve from it (eqs. 2–6 of the
# paper) and the mean absolute error between the two curves is the loss.
# ``epoch_voxels`` draws a fresh random subset of voxels every epoch,
# bounding the epoch time on a CPU.
phae = PHAEDeconvolver(tr=tr, max_epochs=20, lr=1e-2, batch_size=256, epoch_voxels=768,
                       module__width=8, random_state=0)
phae.fit(X_train)

fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
ax.plot(np.arange(1, phae.max_epochs + 1), phae.history_[:, "train_loss"], marker="o")
ax.set(xlabel="epoch", ylabel="MAE(C, Ĉ) (AIF-peak units)", title="PHAE training loss")
plt.show()

# %%
# Save, load, reuse
# -----------------
# :meth:`~skperfusion.deconvolution.PHAEDeconvolver.save` writes the weights
# and the parameters to one file (atomically);
# :meth:`~skperfusion.deconvolution.PHAEDeconvolver.load` returns a fitted
# estimator, on another device if asked (``device="cpu"`` for a model
# trained on a GPU). The command-line equivalent is
# ``skperfusion train COHORT model.pt`` then
# ``skperfusion maps EXAM OUT --method phae --model model.pt``.
X_test = step.transform(test, "brain").X
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "phae.pt"
    phae.save(path)
    print(f"saved {path.name}: {path.stat().st_size / 1024:.0f} KiB")
    loaded = PHAEDeconvolver.load(path, device="cpu")
maps = loaded.transform(X_test)
print("loaded model gives the same maps:", np.allclose(maps, phae.transform(X_test),
                                                      equal_nan=True))

# %%
# The held-out exam
# -----------------
# MTT against the truth, voxel by voxel (CSF, with no flow, has no MTT).
mtt = test.to_volume(maps[:, 2], "brain")
true_mtt = test.ground_truth["MTT"]
perfused = test.mask("brain") & np.isfinite(true_mtt)
error = np.median(np.abs(mtt[perfused] / true_mtt[perfused] - 1))
print(f"median MTT error on the held-out exam: {error:.0%}")

fig, ax = plt.subplots(figsize=(4, 4), layout="constrained")
ax.scatter(true_mtt[perfused], mtt[perfused], s=8, alpha=0.6)
ax.axline((0, 0), slope=1, color="k", lw=1)
ax.set(xlabel="true MTT (s)", ylabel="PHAE MTT (s)", title=test.subject_id)
plt.show()
