"""Perfusion parameters from curves and residues, and their units.

Units used throughout skperfusion:

- CBF in ml/100g/min, CBV in ml/100g, MTT and Tmax in seconds;
- the impulse response ``h(t) = f · R(t)`` in 1/s, with the flow rate
  ``f = CBF · ρ / (kH · 100 · 60)`` in 1/s (``kH`` the large-to-small-vessel
  haematocrit correction, ``ρ`` the brain density in g/ml), so that
  ``C = Ca ⊗ h`` holds for concentrations measured in the same unit.
"""

import numpy as np

__all__ = [
    "DEFAULT_DENSITY",
    "DEFAULT_HEMATOCRIT_FACTOR",
    "cbf_from_cbv_mtt",
    "cbf_to_flow_rate",
    "cbv_from_cbf_mtt",
    "cbv_from_curves",
    "flow_rate_to_cbf",
    "mtt_from_cbv_cbf",
    "tmax_from_residue",
]

DEFAULT_HEMATOCRIT_FACTOR = 0.73
"""Default ``kH = (1 - Hct_large) / (1 - Hct_small)`` (Rempp et al. 1994), dimensionless."""

DEFAULT_DENSITY = 1.04
"""Default brain tissue density ``ρ`` in g/ml."""

_ML_PER_100G = 100.0
_SECONDS_PER_MINUTE = 60.0


def cbf_to_flow_rate(cbf, kh=DEFAULT_HEMATOCRIT_FACTOR, rho=DEFAULT_DENSITY):
    """Convert CBF to the flow rate that scales the residue in ``C = Ca ⊗ f·R``.

    Parameters
    ----------
    cbf : array_like
        Cerebral blood flow in ml/100g/min.
    kh : float, default=0.73
        Haematocrit correction factor, dimensionless.
    rho : float, default=1.04
        Brain density in g/ml.

    Returns
    -------
    flow_rate : ndarray
        ``f`` in 1/s.
    """
    return np.asarray(cbf) * rho / (kh * _ML_PER_100G * _SECONDS_PER_MINUTE)


def flow_rate_to_cbf(flow_rate, kh=DEFAULT_HEMATOCRIT_FACTOR, rho=DEFAULT_DENSITY):
    """Convert a flow rate (1/s) to CBF in ml/100g/min; inverse of :func:`cbf_to_flow_rate`.

    Parameters
    ----------
    flow_rate : array_like
        ``f`` in 1/s (peak of the impulse response).
    kh : float, default=0.73
        Haematocrit correction factor, dimensionless.
    rho : float, default=1.04
        Brain density in g/ml.

    Returns
    -------
    cbf : ndarray
        Cerebral blood flow in ml/100g/min.
    """
    return np.asarray(flow_rate) * kh * _ML_PER_100G * _SECONDS_PER_MINUTE / rho


def cbv_from_curves(tissue, aif, kh=DEFAULT_HEMATOCRIT_FACTOR, rho=DEFAULT_DENSITY):
    """Cerebral blood volume from the curve areas (Fayolle et al. 2025, eq. 2).

    ``CBV = kH / ρ · 100 · ∫C dt / ∫Ca dt``, both integrals by the trapezoidal
    rule over the same window (the sampling interval cancels).

    Parameters
    ----------
    tissue : array_like of shape (..., n_times)
        Tissue concentration ``C(t)``.
    aif : array_like of shape (..., n_times)
        Arterial concentration ``Ca(t)``, same unit as ``tissue``.
    kh : float, default=0.73
        Haematocrit correction factor, dimensionless.
    rho : float, default=1.04
        Brain density in g/ml.

    Returns
    -------
    cbv : ndarray of shape (...)
        CBV in ml/100g; NaN where the AIF area is not positive.
    """
    tissue_area = np.trapezoid(tissue, axis=-1)
    aif_area = np.trapezoid(aif, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(aif_area > 0, tissue_area / aif_area, np.nan)
    return kh / rho * _ML_PER_100G * ratio


def mtt_from_cbv_cbf(cbv, cbf):
    """Mean transit time from the central volume theorem, ``MTT = CBV / CBF``.

    Parameters
    ----------
    cbv : array_like
        CBV in ml/100g.
    cbf : array_like
        CBF in ml/100g/min.

    Returns
    -------
    mtt : ndarray
        MTT in seconds; NaN where CBF is not positive.
    """
    cbf = np.asarray(cbf)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cbf > 0, _SECONDS_PER_MINUTE * np.asarray(cbv) / cbf, np.nan)


def cbf_from_cbv_mtt(cbv, mtt):
    """Cerebral blood flow from the central volume theorem, ``CBF = CBV / MTT`` (eq. 3).

    Parameters
    ----------
    cbv : array_like
        CBV in ml/100g.
    mtt : array_like
        MTT in seconds.

    Returns
    -------
    cbf : ndarray
        CBF in ml/100g/min; NaN where MTT is not positive.
    """
    mtt = np.asarray(mtt)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mtt > 0, _SECONDS_PER_MINUTE * np.asarray(cbv) / mtt, np.nan)


def cbv_from_cbf_mtt(cbf, mtt):
    """Cerebral blood volume from the central volume theorem, ``CBV = CBF · MTT``.

    Parameters
    ----------
    cbf : array_like
        CBF in ml/100g/min.
    mtt : array_like
        MTT in seconds.

    Returns
    -------
    cbv : ndarray
        CBV in ml/100g.
    """
    return np.asarray(cbf) * np.asarray(mtt) / _SECONDS_PER_MINUTE


def tmax_from_residue(impulse_response, tr):
    """Time to the maximum of a (circular) impulse response.

    The block-circulant deconvolution returns the residue on a circle of
    ``L`` samples: a peak in the second half stands for a *negative* delay
    (tissue bolus before the AIF) and is mapped to ``(k - L) · TR``.

    Parameters
    ----------
    impulse_response : array_like of shape (..., L)
        Deconvolved impulse response (any unit).
    tr : float
        Sampling interval in seconds.

    Returns
    -------
    tmax : ndarray of shape (...)
        Tmax in seconds, in ``[-L/2 · TR, L/2 · TR)``.
    """
    impulse_response = np.asarray(impulse_response)
    n_samples = impulse_response.shape[-1]
    peak = np.argmax(impulse_response, axis=-1)
    peak = np.where(peak >= (n_samples + 1) // 2, peak - n_samples, peak)
    return peak * float(tr)
