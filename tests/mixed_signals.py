"""Noisy DSC curves of mixed residue families with ground truth, shared by the accuracy tests."""

import functools

import numpy as np

from skperfusion import ConcentrationTransformer, pair_curves
from skperfusion.datasets import add_noise, gamma_variate, simulate_concentration
from skperfusion.physics import BLOOD_RELAXIVITY, TISSUE_RELAXIVITY

AIF = functools.partial(gamma_variate, t0=10.0, peak=100.0)
TE = 0.03
RELAXIVITY_RATIO = TISSUE_RELAXIVITY / BLOOD_RELAXIVITY[0]
"""Tissue ΔR2* per unit of arterial ΔR2* at equal concentration (the library's
relaxivities, linear blood term; about 5.8): tissue signals drop by 6 % (CBF 10
ml/100g/min, MTT 2 s) to 83 % (CBF 70, MTT 10 s) at the bolus peak at TE = 30 ms."""


def mixed_family_signals(snr, rng, n_per_family=60, tr=1.0):
    """Concentration curves from noisy signals of four residue families, delays 0-3 s.

    Exponential, gamma (shape 1.5-5), Lorentzian and boxcar residues (the
    boxcar modelled by no deconvolver), CBF 10-70 ml/100g/min, MTT 2-10 s,
    60 frames; signals ``100 · exp(-TE · ΔR2*)`` with Gaussian noise at the
    baseline ``snr``, the AIF the mean of 10 arterial voxels.

    Returns
    -------
    X : ndarray of shape (4 · n_per_family, 2, 60)
        Concentration curves (1/s).
    truth : ndarray of shape (4 · n_per_family, 3)
        CBF (ml/100g/min, in the tissue's ΔR2* scale), MTT (s), delay (s).
    """
    tissue, truth = [], []
    for family in ("exponential", "gamma", "lorentzian", "boxcar"):
        cbf = rng.uniform(10, 70, n_per_family)
        mtt = rng.uniform(2, 10, n_per_family)
        delay = rng.uniform(0, 3, n_per_family)
        extra = {"shape": rng.uniform(1.5, 5, n_per_family)} if family == "gamma" else {}
        curves, aif = simulate_concentration(AIF, tr, cbf, mtt, family=family, delay=delay,
                                             n_times=60, **extra)
        tissue.append(curves)
        truth.append(np.column_stack([cbf * RELAXIVITY_RATIO, mtt, delay]))
    tissue = np.concatenate(tissue)
    signal = add_noise(100 * np.exp(-TE * RELAXIVITY_RATIO * tissue), snr, n_baseline=8,
                       random_state=rng)
    aif_signal = add_noise(100 * np.exp(-TE * aif[None]), snr * np.sqrt(10), n_baseline=8,
                           random_state=rng)
    X = ConcentrationTransformer(te=TE, n_baseline=8).fit_transform(
        pair_curves(signal, np.broadcast_to(aif_signal, signal.shape)))
    return X, np.concatenate(truth)
