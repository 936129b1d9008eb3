"""Torch twins of the physics core, for the PHAE decoder.

Same conventions and discretisation as the numpy functions in
:mod:`skperfusion.physics.residue` and :mod:`skperfusion.physics.convolution`
(tested to agree), differentiable and batched on any device.
"""

import math

import torch

__all__ = [
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
