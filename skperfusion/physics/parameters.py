"""Perfusion parameters from curves and residues, and their units.

Units used throughout skperfusion:

- CBF in ml/100g/min, CBV in ml/100g, MTT and Tmax in seconds;
- the impulse response ``h(t) = f · R(t)`` in 1/s, with the flow rate
  ``f = CBF · ρ / (kH · 100 · 60)`` in 1/s (``kH`` the large-to-small-vessel
  haematocrit correction, ``ρ`` the brain density in g/ml), so that
  ``C = Ca ⊗ h`` holds for concentrations measured in the same unit.
"""

import numpy as np

from ._array_ops import NUMPY

__all__ = [
    "DEFAULT_DENSITY",
    "DEFAULT_HEMATOCRIT_FACTOR",
    "aif_peak_scale",
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
    kh, rho : float, default=0.73, 1.04
        As in :func:`cbf_to_flow_rate`: ``kH`` (dimensionless), ``ρ`` (g/ml).

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
    kh, rho : float, default=0.73, 1.04
        Haematocrit correction ``kH`` (dimensionless) and brain density ``ρ`` (g/ml).

    Returns
    -------
    cbv : ndarray of shape (...)
        CBV in ml/100g; NaN where the AIF area is not positive.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return cbv_from_areas(np.asarray(tissue), np.asarray(aif), kh, rho, NUMPY)


def cbv_from_areas(tissue, aif, kh, rho, ops):
    """Eq. 2 with the operations ``ops``: the one formula of :func:`cbv_from_curves` and its
    torch twin."""
    tissue_area, aif_area = ops.trapezoid(tissue), ops.trapezoid(aif)
    return kh / rho * _ML_PER_100G * ops.where(aif_area > 0, tissue_area / aif_area, ops.nan)


def per_minute_quotient(cbv, denominator, ops):
    """``60 · CBV / x`` where ``x > 0``, else NaN: ``MTT = CBV / CBF`` and ``CBF = CBV / MTT``."""
    return ops.where(denominator > 0, _SECONDS_PER_MINUTE * cbv / denominator, ops.nan)


def aif_peak_scale(aif, ops=NUMPY):
    """Divisor of the AIF-peak normalisation, for numpy or torch arrays.

    Dividing both channels of a sample by the peak of its AIF is the
    stateless equivalent of the paper's per-subject normalisation (all
    voxels of an exam share one AIF): MTT and the ratio ``∫C / ∫Ca`` behind
    CBV are unchanged, and the curves get a fixed scale whatever the
    concentration unit.

    Parameters
    ----------
    aif : ndarray or torch.Tensor of shape (n_samples, n_times)
        Arterial concentration (any unit).
    ops : namespace, default=NUMPY
        Array operations (``skperfusion.physics.torch_ops.TORCH`` for tensors).

    Returns
    -------
    scale : array of shape (n_samples,)
        The AIF peak, or 1 for a sample whose AIF has no positive peak
        (such a sample has no defined perfusion and is left unscaled).
    has_peak : array of bool, shape (n_samples,)
        Whether the AIF has a positive peak.
    """
    peak = ops.amax(aif)
    has_peak = peak > 0
    return ops.where(has_peak, peak, 1.0), has_peak


def mtt_from_cbv_cbf(cbv, cbf):
    """Mean transit time from the central volume theorem, ``MTT = CBV / CBF``.

    Parameters
    ----------
    cbv, cbf : array_like
        CBV in ml/100g and CBF in ml/100g/min, broadcast against each other.

    Returns
    -------
    mtt : ndarray
        MTT in seconds; NaN where CBF is not positive. The same quotient
        ``60 · CBV / x`` as :func:`cbf_from_cbv_mtt`, with ``x = CBF``.
    """
    return cbf_from_cbv_mtt(cbv, cbf)


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
    with np.errstate(divide="ignore", invalid="ignore"):
        return per_minute_quotient(np.asarray(cbv), np.asarray(mtt), NUMPY)


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


def tmax_from_residue(impulse_response, tr, *, circular=True):
    """Tmax, the time of the residue maximum relative to the AIF, to sub-TR precision.

    A residue function is a survival function: ``R`` is non-increasing from
    its value 1 at the bolus arrival, so the impulse response
    ``f · R(t - d)`` peaks at its onset ``d``, the delay of the tissue
    bolus after the AIF; Tmax is that maximum, as clinicians read it
    (Calamante 2013; Olivot et al. 2009).

    The deconvolved response is discrete: with the rectangle-rule
    convolution matrix ``D[i, j] = TR · Ca[i - j]`` each sample ``h_j``
    stands for the mean of ``h`` over ``[t_j - TR/2, t_j + TR/2]``, so the
    sample of the maximum is the first whole cell after ``d``, one ``TR``
    after it on average (between ``TR/2`` and ``3 TR/2``). Tmax is therefore
    the maximum's sample, refined by the vertex of the parabola through it
    and its two neighbours (clipped to half a sample), less one ``TR``. It
    is 0 for a zero delay (within half a sample) and never negative for a
    bolus that follows the AIF, whatever the noise, short of a noise peak
    above the true one. Regularisation (truncated SVD, Tikhonov) and
    dispersion widen the peak and move it later, as in every clinical
    Tmax.

    The block-circulant deconvolution returns the response on a circle of
    ``L`` samples: its second half stands for *negative* delays (tissue
    bolus before the AIF), sample ``k`` mapped to ``(k - L) · TR``.

    Parameters
    ----------
    impulse_response : array_like of shape (..., L)
        Deconvolved impulse response (any unit).
    tr : float
        Sampling interval in seconds.
    circular : bool, default=True
        Whether the response lives on the block-circulant circle (the second
        half negative times); False for responses on ``t_k = k · TR``,
        ``k >= 0`` (sSVD).

    Returns
    -------
    tmax : ndarray of shape (...)
        Tmax in seconds, in ``[-(L/2 + 1.5) · TR, (L/2 - 1.5) · TR]`` on the
        circle (in ``[0, (L - 1.5) · TR]`` otherwise: a response that cannot
        hold negative times puts an earlier onset at 0); NaN where the
        response has no positive finite maximum.

    Examples
    --------
    A response whose onset halves the cell of sample 2 (``h_2`` half the
    maximum): the maximum, sample 3 (the parabola's vertex), is one TR after
    the onset, at sample 2.

    >>> import numpy as np
    >>> float(tmax_from_residue(np.array([0.0, 0.0, 0.5, 1.0, 0.5, 0.25]), 1.5,
    ...                         circular=False))
    3.0
    """
    response = np.asarray(impulse_response, dtype=float)
    n_samples = response.shape[-1]
    start = n_samples // 2 if circular else 0  # samples of negative time, put first
    ordered = np.roll(response, start, axis=-1) if start else response
    filled = np.where(np.isfinite(ordered), ordered, -np.inf)
    peak = np.argmax(filled, axis=-1)

    def at(index):
        index = np.clip(index, 0, n_samples - 1)
        return np.take_along_axis(filled, index[..., None], axis=-1)[..., 0]

    before, height, after = at(peak - 1), at(peak), at(peak + 1)
    curvature = before - 2.0 * height + after
    inside = (peak > 0) & (peak < n_samples - 1) & np.isfinite(curvature) & (curvature < 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        vertex = np.where(inside, np.clip(0.5 * (before - after) / curvature, -0.5, 0.5), 0.0)
    tmax = (peak + vertex - start - 1.0) * float(tr)
    if not circular:  # no negative times to represent: a maximum at sample 0 is "no delay"
        tmax = np.maximum(tmax, 0.0)
    defined = np.isfinite(height) & (height > 0)
    return np.where(defined, tmax, np.nan)
