"""Transverse relaxivity: ΔR2* and contrast-agent concentration.

A gadolinium chelate shortens T2* differently in tissue and in whole blood:

- **tissue** (agent confined to the capillaries, susceptibility effect on the
  surrounding tissue water): ``ΔR2* = r_t · C``, linear (Fayolle et al. 2025,
  eq. 1, up to the factor ``r_t``);
- **whole blood** (large vessels, agent in the plasma around the red cells):
  ``ΔR2* = a · C + b · C²``, quadratic (van Osch et al. 2003, Kjølby et al.
  2006).

A library that converts both with ``C ∝ -ln(S/S0)/TE`` gets tissue and
arterial curves in different units, which leaves absolute CBF and CBV off by
roughly ``r_t / a`` (about 5.8 with the values here) whatever the AIF scaling;
relative maps (rCBF, rCBV, ratios) do not depend on it. The functions below
give concentrations in mM for each compartment; the simulator
(:mod:`skperfusion.datasets`) builds its signals with the same constants.

For negative ΔR2* (baseline noise) the blood relation is continued as an odd
function, ``ΔR2* = a · C + b · C · |C|``: it stays monotonic, so noise about
zero stays noise about zero, and it equals the quadratic for ``C >= 0``.
"""

import numpy as np

__all__ = ["BLOOD_RELAXIVITY", "TISSUE_RELAXIVITY", "blood_concentration", "blood_delta_r2",
           "tissue_concentration", "tissue_delta_r2"]

TISSUE_RELAXIVITY = 44.0
"""Linear tissue ΔR2* relaxivity in 1/(s·mM): gives the 25–40 % grey-matter
signal drop of clinical DSC at TE ≈ 30 ms."""

BLOOD_RELAXIVITY = (7.6, 0.574)
"""Whole-blood ΔR2* = a·C + b·C² coefficients (1/(s·mM), 1/(s·mM²)), of the
quadratic form and magnitude measured by van Osch et al. 2003 at 1.5 T."""


def tissue_delta_r2(concentration, relaxivity=TISSUE_RELAXIVITY):
    """Tissue ΔR2* of a contrast-agent concentration (linear relaxivity).

    Parameters
    ----------
    concentration : array_like
        Tissue concentration in mM.
    relaxivity : float, default=44.0
        Tissue relaxivity ``r_t`` in 1/(s·mM), :data:`TISSUE_RELAXIVITY`.

    Returns
    -------
    delta_r2 : ndarray
        ``r_t · C`` in 1/s.
    """
    return relaxivity * np.asarray(concentration)


def tissue_concentration(delta_r2, relaxivity=TISSUE_RELAXIVITY):
    """Tissue concentration from ΔR2*, the inverse of :func:`tissue_delta_r2`.

    Parameters
    ----------
    delta_r2 : array_like
        Tissue ΔR2* in 1/s.
    relaxivity : float, default=44.0
        Tissue relaxivity ``r_t`` in 1/(s·mM).

    Returns
    -------
    concentration : ndarray
        ``ΔR2* / r_t`` in mM, of the dtype of ``delta_r2`` when floating.

    Examples
    --------
    >>> from skperfusion.physics import tissue_concentration
    >>> float(tissue_concentration(22.0))
    0.5
    """
    delta_r2 = np.asarray(delta_r2)
    return delta_r2 / np.asarray(relaxivity, dtype=_float_dtype(delta_r2))


def blood_delta_r2(concentration, coefficients=BLOOD_RELAXIVITY):
    """Whole-blood ΔR2* of a concentration (quadratic, van Osch et al. 2003).

    Parameters
    ----------
    concentration : array_like
        Blood concentration in mM.
    coefficients : tuple of 2 float, default=(7.6, 0.574)
        ``(a, b)`` in 1/(s·mM) and 1/(s·mM²), :data:`BLOOD_RELAXIVITY`.

    Returns
    -------
    delta_r2 : ndarray
        ``a · C + b · C · |C|`` in 1/s (``a · C + b · C²`` for ``C >= 0``).
    """
    a, b = coefficients
    concentration = np.asarray(concentration)
    return a * concentration + b * concentration * np.abs(concentration)


def blood_concentration(delta_r2, coefficients=BLOOD_RELAXIVITY):
    """Blood concentration from ΔR2*, the inverse of :func:`blood_delta_r2`.

    The positive root of ``b · C² + a · C - ΔR2* = 0`` in the cancellation-free
    form ``C = 2 ΔR2* / (a + sqrt(a² + 4 b |ΔR2*|))`` (odd in ΔR2*, exact at
    0, no loss of precision for small ΔR2*).

    Parameters
    ----------
    delta_r2 : array_like
        Blood ΔR2* in 1/s.
    coefficients : tuple of 2 float, default=(7.6, 0.574)
        ``(a, b)`` in 1/(s·mM) and 1/(s·mM²); ``a > 0``, ``b >= 0``.

    Returns
    -------
    concentration : ndarray
        Blood concentration in mM, of the dtype of ``delta_r2`` when floating.

    Examples
    --------
    >>> from skperfusion.physics import blood_concentration, blood_delta_r2
    >>> round(float(blood_delta_r2(5.0)), 9)
    52.35
    >>> round(float(blood_concentration(52.35)), 9)
    5.0
    """
    delta_r2 = np.asarray(delta_r2)
    dtype = _float_dtype(delta_r2)
    a, b = (np.asarray(value, dtype=dtype) for value in coefficients)
    return 2 * delta_r2 / (a + np.sqrt(a * a + 4 * b * np.abs(delta_r2)))


def _float_dtype(values):
    return values.dtype if values.dtype.kind == "f" else np.float64
