"""Acquisition noise at a prescribed signal-to-noise ratio."""

import numpy as np

__all__ = ["NOISE_KINDS", "add_noise"]

NOISE_KINDS = ("gaussian", "rician")
"""Noise models accepted by :func:`add_noise`."""

_FLOOR = 1e-3
"""Output floor as a fraction of each voxel's baseline mean, keeping logs finite."""


def add_noise(signal, snr, *, n_baseline, n_skip=0, noise="gaussian", random_state=None):
    """Add noise to DSC signals at a given SNR (SNR = mean baseline / sd).

    The per-voxel noise standard deviation is ``mean(baseline frames) / snr``,
    the SNR definition of Fayolle et al. 2025. ``"gaussian"`` adds real
    Gaussian noise (the paper's degradation); ``"rician"`` takes the modulus
    of the signal plus complex Gaussian noise, the distribution of magnitude
    MR images (Gudbjartsson & Patz 1995), which biases dark samples upwards.
    Output samples below ``1e-3 ×`` the voxel's baseline mean are raised to it
    so that ``log(S / S0)`` stays defined.

    Parameters
    ----------
    signal : array_like of shape (..., n_times)
        Noise-free (or less noisy) signal, > 0, arbitrary units.
    snr : float
        Target SNR (> 0); ``numpy.inf`` returns a float copy of ``signal``.
    n_baseline : int
        Number of pre-bolus baseline frames (after the skipped ones) whose
        mean sets the noise level.
    n_skip : int, default=0
        Leading non-steady-state frames left out of the baseline mean.
    noise : {"gaussian", "rician"}, default="gaussian"
        Noise model.
    random_state : int, numpy.random.Generator or None, default=None
        Seed or generator for reproducible noise.

    Returns
    -------
    noisy : ndarray of shape (..., n_times)
        Float64 signal with noise, strictly positive.

    Examples
    --------
    >>> import numpy as np
    >>> from skperfusion.datasets import add_noise
    >>> noisy = add_noise(np.full((1000, 20), 100.0), 20, n_baseline=10, random_state=0)
    >>> round(float(noisy.std()), 0)
    5.0
    """
    signal = np.asarray(signal, dtype=float)
    if noise not in NOISE_KINDS:
        raise ValueError(f"Unknown noise model {noise!r}; expected one of {NOISE_KINDS}.")
    if not (np.ndim(snr) == 0 and snr > 0):
        raise ValueError(f"snr must be a positive number (numpy.inf for no noise); got {snr!r}.")
    if signal.ndim < 1:
        raise ValueError("signal must have a time axis (shape (..., n_times)).")
    n_times = signal.shape[-1]
    if not (isinstance(n_skip, int | np.integer) and isinstance(n_baseline, int | np.integer)
            and n_skip >= 0 and n_baseline >= 1 and n_skip + n_baseline <= n_times):
        raise ValueError(f"need integers n_skip >= 0 and n_baseline >= 1 with n_skip + "
                         f"n_baseline <= n_times={n_times}; got n_skip={n_skip!r}, "
                         f"n_baseline={n_baseline!r}.")
    if not np.all(np.isfinite(signal)):
        raise ValueError("signal contains NaN or inf.")
    if np.isinf(snr):
        return signal.copy()
    baseline = signal[..., n_skip:n_skip + n_baseline].mean(axis=-1, keepdims=True)
    if np.any(baseline <= 0):
        raise ValueError("signal has voxels whose baseline mean is not positive; the SNR "
                         "(mean baseline / sd) is undefined there.")
    rng = np.random.default_rng(random_state)
    sd = baseline / snr
    noisy = signal + sd * rng.standard_normal(signal.shape)
    if noise == "rician":
        noisy = np.hypot(noisy, sd * rng.standard_normal(signal.shape))
    return np.maximum(noisy, _FLOOR * baseline)
