"""Residue functions R(t) of the indicator-dilution theory.

Every residue here is normalised so that ``R(0) = 1`` and ``∫_0^∞ R(t) dt = MTT``
(the central volume theorem), and vanishes for ``t < delay`` (bolus delay).
All functions broadcast ``t`` (seconds) against ``mtt`` and ``delay`` (seconds),
so ``t`` of shape ``(n_times,)`` with ``mtt`` of shape ``(n_samples, 1)``
gives residues of shape ``(n_samples, n_times)``.
"""

import numpy as np
from scipy.special import gammaincc

__all__ = [
    "RESIDUE_FAMILIES",
    "boxcar_residue",
    "exponential_residue",
    "gamma_residue",
    "lorentzian_residue",
    "residue_function",
]


def _shifted_time(t, delay):
    t = np.asarray(t, dtype=float) - delay
    return t, t >= 0


def lorentzian_residue(t, mtt, delay=0.0):
    """Lorentzian residue of Fayolle et al. 2025, eq. 4.

    ``R(t) = 1 / (1 + (π (t - delay) / (2 MTT))²)`` for ``t >= delay``, else 0.

    Parameters
    ----------
    t : array_like
        Time in seconds.
    mtt : array_like
        Mean transit time in seconds (> 0), broadcast against ``t``.
    delay : array_like, default=0.0
        Bolus arrival delay in seconds, broadcast against ``t``.

    Returns
    -------
    residue : ndarray
        Dimensionless residue, ``R(delay) = 1`` and ``∫R dt = MTT``.
    """
    s, causal = _shifted_time(t, delay)
    return np.where(causal, 1.0 / (1.0 + (np.pi * s / (2.0 * np.asarray(mtt))) ** 2), 0.0)


def exponential_residue(t, mtt, delay=0.0):
    """Mono-exponential residue (one well-mixed compartment).

    ``R(t) = exp(-(t - delay) / MTT)`` for ``t >= delay``, else 0.

    Parameters
    ----------
    t : array_like
        Time in seconds.
    mtt : array_like
        Mean transit time in seconds (> 0).
    delay : array_like, default=0.0
        Bolus arrival delay in seconds.

    Returns
    -------
    residue : ndarray
        Dimensionless residue with ``∫R dt = MTT``.
    """
    s, causal = _shifted_time(t, delay)
    return np.where(causal, np.exp(-np.clip(s, 0.0, None) / np.asarray(mtt)), 0.0)


def gamma_residue(t, mtt, delay=0.0, shape=2.0):
    """Gamma transit-time residue (Mouridsen et al. 2006).

    Transit times follow a gamma distribution with shape ``k`` and scale
    ``MTT / k``; the residue is its survival function
    ``R(t) = Q(k, k (t - delay) / MTT)`` (regularised upper incomplete gamma).
    ``shape = 1`` is the exponential residue; larger shapes give a flatter
    start and a narrower transit-time spread.

    Parameters
    ----------
    t : array_like
        Time in seconds.
    mtt : array_like
        Mean transit time in seconds (> 0).
    delay : array_like, default=0.0
        Bolus arrival delay in seconds.
    shape : array_like, default=2.0
        Gamma shape parameter ``k`` (> 0), dimensionless.

    Returns
    -------
    residue : ndarray
        Dimensionless residue with ``∫R dt = MTT``.
    """
    s, causal = _shifted_time(t, delay)
    shape = np.asarray(shape, dtype=float)
    return np.where(causal, gammaincc(shape, shape * np.clip(s, 0.0, None) / np.asarray(mtt)), 0.0)


def boxcar_residue(t, mtt, delay=0.0):
    """Boxcar residue (plug flow: every transit time equals MTT).

    ``R(t) = 1`` for ``delay <= t < delay + MTT``, else 0.

    Parameters
    ----------
    t : array_like
        Time in seconds.
    mtt : array_like
        Mean transit time in seconds (> 0).
    delay : array_like, default=0.0
        Bolus arrival delay in seconds.

    Returns
    -------
    residue : ndarray
        Dimensionless residue with ``∫R dt = MTT``.
    """
    s, causal = _shifted_time(t, delay)
    return np.where(causal & (s < np.asarray(mtt)), 1.0, 0.0)


RESIDUE_FAMILIES = {
    "lorentzian": lorentzian_residue,
    "exponential": exponential_residue,
    "gamma": gamma_residue,
    "boxcar": boxcar_residue,
}
"""Residue families by name, ``name -> function(t, mtt, delay=0.0, ...)``."""


def residue_function(family):
    """Return the residue function of a family by name.

    Parameters
    ----------
    family : {"lorentzian", "exponential", "gamma", "boxcar"}
        Residue family.

    Returns
    -------
    function : callable
        ``function(t, mtt, delay=0.0, ...)`` returning the dimensionless residue.
    """
    try:
        return RESIDUE_FAMILIES[family]
    except KeyError:
        raise ValueError(
            f"Unknown residue family {family!r}; expected one of {sorted(RESIDUE_FAMILIES)}."
        ) from None
