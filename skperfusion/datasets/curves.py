"""Ground-truth concentration curves, simulated on a fine time grid.

The tissue curve is the continuous convolution ``C = Ca ⊗ f·R`` evaluated
on a grid ``oversample`` times finer than the acquisition (trapezoidal rule,
error ``O((TR / oversample)²)``, ``oversample²`` times below that of the
acquisition grid) and then sampled at ``t_i = i · TR``; it is *not* the
discretisation the deconvolvers see, so tests against it measure their real
discretisation error as well.
"""

import numpy as np

from ..physics import (
    DEFAULT_DENSITY,
    DEFAULT_HEMATOCRIT_FACTOR,
    cbf_to_flow_rate,
    convolve_aif,
    residue_function,
)

__all__ = ["gamma_variate", "simulate_concentration"]


def gamma_variate(t, t0=10.0, alpha=3.0, beta=1.5, peak=1.0):
    """Gamma-variate bolus (Thompson et al. 1964), the classic AIF shape.

    ``Ca(t) = A · (t - t0)^α · exp(-(t - t0) / β)`` for ``t > t0``, scaled so
    that its maximum is ``peak``.

    Parameters
    ----------
    t : array_like
        Time in seconds.
    t0 : float or array_like, default=10.0
        Bolus arrival time in seconds.
    alpha : float or array_like, default=3.0
        Shape parameter, dimensionless (> 0).
    beta : float or array_like, default=1.5
        Scale parameter in seconds (> 0); the peak is at ``t0 + α β``.
    peak : float or array_like, default=1.0
        Maximum concentration (any unit).

    Returns
    -------
    concentration : ndarray
        Bolus concentration, broadcast over the parameters.
    """
    s = np.clip(np.asarray(t, dtype=float) - t0, 0.0, None)
    alpha = np.asarray(alpha, dtype=float)
    beta = np.asarray(beta, dtype=float)
    shape_at_peak = (alpha * beta) ** alpha * np.exp(-alpha)
    return peak * s**alpha * np.exp(-s / beta) / shape_at_peak


def simulate_concentration(aif, tr, cbf, mtt, *, family="exponential", delay=0.0,
                           kh=DEFAULT_HEMATOCRIT_FACTOR, rho=DEFAULT_DENSITY, n_times=60,
                           oversample=20, **residue_kw):
    """Tissue and arterial curves with known perfusion, sampled at ``TR``.

    Parameters
    ----------
    aif : callable
        ``aif(t)`` giving the arterial concentration at times ``t`` (seconds),
        e.g. ``functools.partial(gamma_variate, t0=8)``.
    tr : float
        Sampling interval in seconds.
    cbf : array_like of shape (n_samples,)
        True CBF in ml/100g/min.
    mtt : array_like of shape (n_samples,)
        True MTT in seconds.
    family : str, default="exponential"
        Residue family, see :data:`skperfusion.physics.RESIDUE_FAMILIES`.
    delay : array_like of shape (n_samples,) or float, default=0.0
        Tissue bolus delay relative to the AIF in seconds; negative values
        (tissue bolus before the AIF) are allowed.
    kh : float, default=0.73
        Haematocrit correction factor, dimensionless.
    rho : float, default=1.04
        Brain density in g/ml.
    n_times : int, default=60
        Number of acquired frames.
    oversample : int, default=20
        Fine-grid points per ``TR`` used for the continuous convolution.
    **residue_kw
        Extra residue parameters (e.g. ``shape`` for the gamma family).

    Returns
    -------
    tissue : ndarray of shape (n_samples, n_times)
        Tissue concentration, in the unit of ``aif``.
    arterial : ndarray of shape (n_times,)
        Arterial concentration sampled at ``t_i = i · TR``.
    """
    cbf = np.atleast_1d(np.asarray(cbf, dtype=float))
    mtt = np.atleast_1d(np.asarray(mtt, dtype=float))
    delay = np.broadcast_to(np.asarray(delay, dtype=float), cbf.shape)
    dt = tr / oversample
    acquisition_t = tr * np.arange(n_times)
    # A delayed residue jumps from 0 to 1 between fine-grid points, which the
    # trapezoidal rule integrates to O(dt) only; the delayed tissue curve is
    # instead the undelayed one shifted in time, C(t) = C0(t - delay), read
    # off the fine grid by linear interpolation (O(dt²)).
    shifted_t = acquisition_t - delay[:, None]
    n_fine = int(np.ceil(max(shifted_t.max(), 0.0) / dt)) + 2
    fine_t = np.arange(n_fine) * dt
    residues = residue_function(family)(
        fine_t, mtt[:, None],
        **{k: np.asarray(v)[..., None] if np.ndim(v) else v for k, v in residue_kw.items()},
    )
    impulse = cbf_to_flow_rate(cbf, kh, rho)[:, None] * residues
    fine_tissue = convolve_aif(aif(fine_t), impulse, dt)
    # C0 = 0 before the bolus reaches the tissue, hence the clip at t = 0.
    position = np.clip(shifted_t / dt, 0.0, None)
    lower = np.minimum(np.floor(position).astype(int), n_fine - 2)
    weight = position - lower
    tissue = ((1.0 - weight) * np.take_along_axis(fine_tissue, lower, axis=1)
              + weight * np.take_along_axis(fine_tissue, lower + 1, axis=1))
    return tissue, aif(acquisition_t)
