"""The one discretisation of the indicator-dilution convolution.

The tissue concentration is ``C(t) = ∫_0^t Ca(t - s) h(s) ds`` with the
impulse response (tissue response function) ``h = f · R``. Every method in
skperfusion samples it on the acquisition grid ``t_i = i · TR`` with the
**trapezoidal rule**::

    C[0] = 0
    C[i] = TR · ( Σ_{j=0..i} Ca[i-j] h[j]  -  (Ca[i] h[0] + Ca[0] h[i]) / 2 )

The rectangular rule used by the original SVD papers counts the first residue
sample with full weight and so adds ``TR/2 · Ca(t) h(0)`` to every sample,
a bias of order ``TR / MTT``; the trapezoidal rule is second-order accurate
and costs nothing more. The SVD family inverts the (block-)circulant matrix
``TR · Ca[i-j]`` (Østergaard 1996, Wu 2003), whose eigenvalues are the DFT of
the zero-padded AIF, see :func:`circulant_aif_spectrum`.
"""

import numpy as np
import scipy.fft

__all__ = ["circulant_aif_spectrum", "convolve_aif"]


def convolve_aif(aif, impulse_response, tr):
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

    Returns
    -------
    concentration : ndarray of shape (..., n_times)
        ``C(t_i)`` in the unit of ``aif``, trapezoidal rule (module docstring).
    """
    aif = np.asarray(aif)
    impulse_response = np.asarray(impulse_response)
    n_times = aif.shape[-1]
    if impulse_response.shape[-1] != n_times:
        raise ValueError(
            f"aif has {n_times} time points but impulse_response has "
            f"{impulse_response.shape[-1]}."
        )
    n_fft = scipy.fft.next_fast_len(2 * n_times, real=True)
    full = scipy.fft.irfft(
        scipy.fft.rfft(aif, n_fft, axis=-1) * scipy.fft.rfft(impulse_response, n_fft, axis=-1),
        n_fft,
        axis=-1,
    )[..., :n_times]
    end_points = 0.5 * (aif * impulse_response[..., :1] + aif[..., :1] * impulse_response)
    concentration = tr * (full - end_points)
    concentration[..., 0] = 0.0
    return concentration


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
