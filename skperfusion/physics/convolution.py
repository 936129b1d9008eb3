"""The indicator-dilution convolution on the sampling grid, and the circulant AIF matrix.

The tissue concentration is ``C(t) = ∫_0^t Ca(t - s) h(s) ds`` with the
impulse response ``h = f · R`` in 1/s (``f`` the flow rate of CBF, see
:func:`skperfusion.physics.cbf_to_flow_rate`; the TRF of Fayolle et al.
2025, eq. 5). The forward model of skperfusion — the simulator, the PHAE
decoder (through the torch twin) and the parametric fit — samples it on the
acquisition grid ``t_i = i · TR`` with the **trapezoidal rule**::

    C[0] = 0
    C[i] = TR · ( Σ_{j=0..i} Ca[i-j] h[j]  -  (Ca[i] h[0] + Ca[0] h[i]) / 2 )

The rectangular rule counts the first residue sample with full weight and
so adds ``TR/2 · Ca(t) h(0)`` to every sample, a bias of order ``TR / MTT``;
the trapezoidal rule is second-order accurate and costs nothing more.
Reference data made with the rectangular rule (the OSIPI DSC test curves,
``C[i] = TR · Σ_{j=0..i} Ca[i-j] h[j]``) are modelled exactly with
``rule="rectangular"``.

The SVD family and the Tikhonov deconvolver do **not** invert this
trapezoidal matrix: as published (Østergaard 1996, Wu 2003, Calamante
2003) they invert the rectangular-rule matrix ``TR · Ca[i-j]``, the
lower-triangular Toeplitz one (sSVD) or its zero-padded block-circulant
extension (oSVD, cSVD, Tikhonov), whose eigenvalues are the DFT of the
zero-padded AIF, see :func:`circulant_aif_spectrum`. Their residue is thus
that of a slightly different discretisation, one cause of the CBF bias
documented in :class:`skperfusion.OSVDDeconvolver`; CBV (eq. 2, curve areas)
does not depend on it.
"""

import numpy as np
import scipy.fft

from ._array_ops import NUMPY, fft_length

__all__ = ["CONVOLUTION_RULES", "circulant_aif_spectrum", "convolve_aif", "dispersion_kernel"]

CONVOLUTION_RULES = ("trapezoidal", "rectangular")
"""Quadratures of the convolution integral :func:`convolve_aif` offers."""


def convolve_aif(aif, impulse_response, tr, rule="trapezoidal"):
    """Causal discrete convolution of an AIF with an impulse response.

    Parameters
    ----------
    aif : array_like of shape (..., n_times)
        Arterial concentration ``Ca(t_i)`` (any concentration unit).
    impulse_response : array_like of shape (..., n_times)
        Impulse response ``h(t_i)`` in 1/s (``h = f · R`` with ``f`` the flow
        rate, see :func:`skperfusion.physics.cbf_to_flow_rate`); broadcast
        against ``aif``.
    tr : float
        Sampling interval in seconds.
    rule : {"trapezoidal", "rectangular"}, default="trapezoidal"
        Quadrature of the convolution integral (module docstring).

    Returns
    -------
    concentration : ndarray of shape (..., n_times)
        ``C(t_i)`` in the unit of ``aif``.

    Examples
    --------
    The two rules differ by ``TR/2 · (Ca[i] h[0] + Ca[0] h[i])``:

    >>> from skperfusion.physics import convolve_aif
    >>> convolve_aif([0.0, 2.0, 1.0], [1.0, 0.5, 0.25], 1.0).tolist()
    [0.0, 1.0, 1.5]
    >>> convolve_aif([0.0, 2.0, 1.0], [1.0, 0.5, 0.25], 1.0, rule="rectangular").tolist()
    [0.0, 2.0, 2.0]
    """
    aif = np.asarray(aif)
    impulse_response = np.asarray(impulse_response)
    n_times = aif.shape[-1]
    if impulse_response.shape[-1] != n_times:
        raise ValueError(
            f"aif has {n_times} time points but impulse_response has "
            f"{impulse_response.shape[-1]}."
        )
    if rule not in CONVOLUTION_RULES:
        raise ValueError(f"rule={rule!r}; expected one of {CONVOLUTION_RULES}.")
    return discrete_convolution(aif, impulse_response, tr, NUMPY, rule)


def dispersion_kernel(t, tau, tr, ops=NUMPY):
    """Exponential vascular dispersion kernel (Calamante et al. 2000), unit area.

    ``k(t) = exp(-t / τ)`` normalised to unit area under the trapezoidal rule
    of :func:`convolve_aif`, so that convolving a bolus with it conserves the
    bolus area, also for ``τ`` well below ``tr``. The one formula behind the
    simulator's dispersed AIFs and the parametric fit's dispersion option
    (torch twin :func:`skperfusion.physics.torch_ops.dispersion_kernel_torch`).

    Parameters
    ----------
    t : array_like of shape (n_times,)
        Sample times ``i · tr`` in seconds, from 0.
    tau : float or array_like of shape (..., 1)
        Dispersion time constant ``τ`` in seconds (> 0), broadcast against ``t``.
    tr : float
        Sampling interval in seconds.
    ops : namespace, default=NUMPY
        Array operations (numpy or torch).

    Returns
    -------
    kernel : ndarray of shape (..., n_times)
        Kernel samples in 1/s.

    Examples
    --------
    >>> import numpy as np
    >>> from skperfusion.physics import dispersion_kernel
    >>> t = np.arange(40) * 0.5
    >>> kernel = dispersion_kernel(t, 2.0, 0.5)
    >>> round(float(0.5 * np.trapezoid(kernel)), 12)
    1.0
    """
    kernel = ops.exp(-t / tau)
    return kernel / (tr * ops.trapezoid(kernel)[..., None])


def discrete_convolution(aif, impulse_response, tr, ops, rule="trapezoidal"):
    """The convolution of the module docstring, with the operations ``ops``.

    The one implementation behind :func:`convolve_aif` (numpy) and
    :func:`skperfusion.physics.torch_ops.convolve_aif_torch`; no validation.
    """
    n_times = aif.shape[-1]
    n_fft = fft_length(n_times)
    full = tr * ops.irfft(ops.rfft(aif, n_fft) * ops.rfft(impulse_response, n_fft),
                         n_fft)[..., :n_times]
    if rule == "rectangular":
        return full
    end_points = 0.5 * (aif * impulse_response[..., :1] + aif[..., :1] * impulse_response)
    concentration = full - tr * end_points
    return ops.where(ops.arange(n_times, like=concentration) == 0, 0.0, concentration)


def circulant_aif_spectrum(aif, tr, n_padded=None):
    """Eigenvalues of the block-circulant AIF matrix of Wu et al. 2003.

    The AIF is zero-padded to ``n_padded`` samples (default ``2 · n_times``)
    and the circulant matrix ``D[i, j] = TR · Ca[(i - j) mod L]`` is
    diagonalised by the DFT: its eigenvalues are ``TR · DFT(Ca)`` and its
    singular values their moduli.

    Parameters
    ----------
    aif : array_like of shape (..., n_times)
        Arterial concentration.
    tr : float
        Sampling interval in seconds.
    n_padded : int, optional
        Length ``L`` of the zero-padded circulant; default ``2 · n_times``.

    Returns
    -------
    spectrum : ndarray of shape (..., L // 2 + 1), complex
        Eigenvalues of ``D`` for the non-negative frequencies (``rfft`` layout).
    """
    aif = np.asarray(aif)
    if n_padded is None:
        n_padded = 2 * aif.shape[-1]
    return tr * scipy.fft.rfft(aif, n_padded, axis=-1)
