"""Torch twins of the physics core, for the PHAE decoder.

Same conventions and discretisation as the numpy functions in
:mod:`skperfusion.physics.residue` and :mod:`skperfusion.physics.convolution`
(tested to agree), differentiable and batched on any device.
"""

import math

import torch

from .parameters import _ML_PER_100G, _SECONDS_PER_MINUTE

__all__ = [
    "cbf_from_cbv_mtt_torch",
    "cbv_from_curves_torch",
    "convolve_aif_torch",
    "exponential_residue_torch",
    "gamma_residue_torch",
    "lorentzian_residue_torch",
]


def lorentzian_residue_torch(t, mtt, delay=0.0):
    """Torch twin of :func:`skperfusion.physics.lorentzian_residue`.

    Parameters
    ----------
    t : torch.Tensor
        Time in seconds.
    mtt : torch.Tensor
        MTT in seconds, broadcast against ``t``.
    delay : torch.Tensor or float, default=0.0
        Bolus delay in seconds.

    Returns
    -------
    residue : torch.Tensor
        Dimensionless residue.
    """
    s = t - delay
    return torch.where(s >= 0, 1.0 / (1.0 + (math.pi * s / (2.0 * mtt)) ** 2), 0.0)


def exponential_residue_torch(t, mtt, delay=0.0):
    """Torch twin of :func:`skperfusion.physics.exponential_residue`.

    Parameters
    ----------
    t : torch.Tensor
        Time in seconds.
    mtt : torch.Tensor
        MTT in seconds, broadcast against ``t``.
    delay : torch.Tensor or float, default=0.0
        Bolus delay in seconds.

    Returns
    -------
    residue : torch.Tensor
        Dimensionless residue.
    """
    s = t - delay
    return torch.where(s >= 0, torch.exp(-torch.clamp(s, min=0.0) / mtt), 0.0)


def gamma_residue_torch(t, mtt, delay=0.0, shape=2.0):
    """Torch twin of :func:`skperfusion.physics.gamma_residue`.

    Differentiable with respect to ``mtt`` and ``delay`` (not ``shape``).

    Parameters
    ----------
    t : torch.Tensor
        Time in seconds.
    mtt : torch.Tensor
        MTT in seconds, broadcast against ``t``.
    delay : torch.Tensor or float, default=0.0
        Bolus delay in seconds.
    shape : float, default=2.0
        Gamma shape parameter, dimensionless.

    Returns
    -------
    residue : torch.Tensor
        Dimensionless residue.
    """
    s = torch.clamp(t - delay, min=0.0)
    shape_t = torch.as_tensor(shape, dtype=s.dtype, device=s.device)
    survival = torch.special.gammaincc(shape_t.expand_as(s * mtt), shape_t * s / mtt)
    return torch.where(t - delay >= 0, survival, 0.0)


def convolve_aif_torch(aif, impulse_response, tr):
    """Torch twin of :func:`skperfusion.physics.convolve_aif` (trapezoidal rule).

    Parameters
    ----------
    aif : torch.Tensor of shape (batch, n_times)
        Arterial concentration.
    impulse_response : torch.Tensor of shape (batch, n_times)
        Impulse response in 1/s.
    tr : float
        Sampling interval in seconds.

    Returns
    -------
    concentration : torch.Tensor of shape (batch, n_times)
        Tissue concentration in the unit of ``aif``.
    """
    n_times = aif.shape[-1]
    n_fft = 2 * n_times
    full = torch.fft.irfft(
        torch.fft.rfft(aif, n_fft, dim=-1) * torch.fft.rfft(impulse_response, n_fft, dim=-1),
        n_fft,
        dim=-1,
    )[..., :n_times]
    end_points = 0.5 * (aif * impulse_response[..., :1] + aif[..., :1] * impulse_response)
    concentration = tr * (full - end_points)
    first = torch.zeros_like(concentration[..., :1])
    return torch.cat([first, concentration[..., 1:]], dim=-1)


def cbv_from_curves_torch(tissue, aif, kh, rho):
    """Torch twin of :func:`skperfusion.physics.cbv_from_curves` (eq. 2).

    Parameters
    ----------
    tissue : torch.Tensor of shape (..., n_times)
        Tissue concentration ``C(t)``.
    aif : torch.Tensor of shape (..., n_times)
        Arterial concentration ``Ca(t)``, same unit as ``tissue``.
    kh : float
        Haematocrit correction factor, dimensionless.
    rho : float
        Brain density in g/ml.

    Returns
    -------
    cbv : torch.Tensor of shape (...)
        CBV in ml/100g; NaN where the AIF area is not positive.
    """
    tissue_area = torch.trapezoid(tissue, dim=-1)
    aif_area = torch.trapezoid(aif, dim=-1)
    ratio = torch.where(aif_area > 0, tissue_area / aif_area, torch.nan)
    return kh / rho * _ML_PER_100G * ratio


def cbf_from_cbv_mtt_torch(cbv, mtt):
    """Torch twin of :func:`skperfusion.physics.cbf_from_cbv_mtt` (eq. 3).

    Parameters
    ----------
    cbv : torch.Tensor
        CBV in ml/100g.
    mtt : torch.Tensor
        MTT in seconds, broadcast against ``cbv``.

    Returns
    -------
    cbf : torch.Tensor
        CBF in ml/100g/min; NaN where MTT is not positive.
    """
    return torch.where(mtt > 0, _SECONDS_PER_MINUTE * cbv / mtt, torch.nan)
