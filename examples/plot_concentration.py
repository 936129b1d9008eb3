"""
==================================
From DSC signal to concentration
==================================

A DSC acquisition records the T2*-weighted signal :math:`S(t)`; the
deconvolvers need the contrast-agent concentration. Eq. 1 of Fayolle et al.
(2025) converts one into the other,

.. math:: C(t) = -\\frac{1}{TE} \\ln \\frac{S(t)}{S_0},

with :math:`S_0` the mean of the pre-bolus baseline.
:class:`~skperfusion.preprocessing.ConcentrationTransformer` applies it to the
tissue and the arterial channel of every voxel, detects the baseline from
the arterial curve when it is not given, and can drop the first
non-steady-state frames.
"""

# %%
# Simulate a signal with a known concentration
# --------------------------------------------
# We simulate a tissue curve with known perfusion (CBF 60 ml/100g/min,
# MTT 4 s) and its arterial input, turn both into signals with the inverse of
# eq. 1 (TE = 30 ms, as in the QIN-BRAIN-DSC-MRI exams) and add Gaussian
# noise at a baseline SNR of 40.
from functools import partial

import matplotlib.pyplot as plt
import numpy as np

from skperfusion import pair_curves
from skperfusion.datasets import add_noise, gamma_variate, simulate_concentration
from skperfusion.preprocessing import ConcentrationTransformer, detect_baseline_frames

tr, te, n_times = 1.2, 0.03, 60
# Peak arterial ΔR2* of 40 1/s: the arterial signal drops to 30 % at the peak.
t0 = 12.5  # bolus arrival in the artery, s
tissue_c, aif_c = simulate_concentration(
    partial(gamma_variate, t0=t0, peak=40.0), tr, cbf=[60.0], mtt=[4.0], n_times=n_times
)
s0 = 500.0
signal = s0 * np.exp(-te * pair_curves(tissue_c, aif_c))
n_pre_bolus = int(np.sum(np.arange(n_times) * tr <= t0))  # frames before the arrival
noisy = add_noise(signal, snr=40, n_baseline=n_pre_bolus, random_state=0)

# %%
# Convert to concentration
# ------------------------
# ``n_baseline=None`` detects the bolus arrival on the arterial channel; the
# tissue channel uses the same baseline frames. Here we also drop the first
# two frames, as one would for an acquisition that starts before the
# magnetisation reaches steady state. The detection leaves out the frame just
# before the detected arrival, whose signal the start of the bolus may
# already lower.
detected = detect_baseline_frames(noisy[:, 1, 2:])
print(f"after skipping 2 frames: {n_pre_bolus - 2} pre-bolus frames, "
      f"{detected[0]} used as baseline")

to_concentration = ConcentrationTransformer(te=te, n_skip=2)
concentration = to_concentration.fit_transform(noisy)
print("signal", noisy.shape, "-> concentration", concentration.shape)

# %%
# The recovered concentration follows the truth up to the noise, which the
# logarithm amplifies where the signal is lowest (the arterial peak).
t = np.arange(n_times) * tr
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
axes[0].plot(t, noisy[0, 1], label="arterial")
axes[0].plot(t, noisy[0, 0], label="tissue")
axes[0].set(xlabel="time (s)", ylabel="signal (a.u.)", title="DSC signal, SNR 40")
axes[0].legend()
axes[1].plot(t[2:], concentration[0, 1], label="arterial, from signal")
axes[1].plot(t[2:], concentration[0, 0], label="tissue, from signal")
axes[1].plot(t, aif_c, "k--", lw=1, label="truth")
axes[1].plot(t, tissue_c[0], "k--", lw=1)
axes[1].set(xlabel="time (s)", ylabel="ΔR2* (1/s)", title="Concentration (eq. 1)")
axes[1].legend()
plt.show()

# %%
# Normalising by the arterial peak
# --------------------------------
# The paper scales every curve of a subject by the subject's maximum. Since
# all voxels of an exam share one AIF, dividing both channels of a voxel by
# its AIF peak is the stateless equivalent. Both channels scale alike, so
# the relation between them — and every perfusion parameter — is unchanged.
normalised = ConcentrationTransformer(te=te, n_skip=2, normalize_by_aif_peak=True)
scaled = normalised.fit_transform(noisy)
ratio_before = concentration[0, 0].sum() / concentration[0, 1].sum()
ratio_after = scaled[0, 0].sum() / scaled[0, 1].sum()
print(f"AIF peak after normalisation: {scaled[0, 1].max():.2f}")
print(f"tissue/AIF area ratio: {ratio_before:.4f} before, {ratio_after:.4f} after")
