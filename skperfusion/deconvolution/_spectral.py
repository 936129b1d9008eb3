"""Machinery shared by the residue-based deconvolvers (SVD family, Tikhonov).

The block-circulant matrix of Wu et al. 2003, ``D[i, j] = TR · Ca[(i - j) mod L]``
on ``L = 2N`` zero-padded samples, is diagonalised by the DFT: its eigenvalues
are ``TR · DFT(Ca)`` (:func:`skperfusion.physics.circulant_aif_spectrum`) and
its singular values their moduli, the singular vectors being the Fourier
modes. Any spectral regularisation of ``D⁻¹`` (truncating singular values,
Tikhonov filter factors) is therefore a filter on the Fourier modes of
``DFT(C) / DFT(Ca)``, and all voxels are deconvolved by batched FFTs. Exams
share one AIF across voxels: it is then transformed once and broadcast.
"""

import numpy as np
import scipy.fft

from .._docs import fill_doc
from ..curves import shared_aif
from ..physics import (
    cbv_from_curves,
    circulant_aif_spectrum,
    flow_rate_to_cbf,
    mtt_from_cbv_cbf,
    tmax_from_residue,
)
from ._base import BaseDeconvolver


def circulant_spectra(tissue, aif, tr, workers=-1):
    """Spectra of the zero-padded tissue curves and block-circulant AIF matrices.

    Parameters
    ----------
    tissue : ndarray of shape (n_samples, n_times)
        Tissue concentration curves.
    aif : ndarray of shape (n_samples, n_times)
        Arterial concentration curves, same unit.
    tr : float
        Sampling interval in seconds.
    workers : int, default=-1
        Threads of the FFT (``scipy.fft``; -1: all cores).

    Returns
    -------
    tissue_spectrum : ndarray of shape (n_samples, n_times + 1), complex
        ``rfft`` of the tissue curves zero-padded to ``L = 2 · n_times``.
    aif_spectrum : ndarray of shape (1 or n_samples, n_times + 1), complex
        Eigenvalues of the circulant matrices (one row when the AIF is shared),
        in seconds times the concentration unit.
    """
    n_padded = 2 * tissue.shape[1]
    tissue_spectrum = scipy.fft.rfft(tissue, n_padded, axis=-1, workers=workers)
    aif_spectrum = circulant_aif_spectrum(shared_aif(aif), tr, n_padded)
    return tissue_spectrum, aif_spectrum


def naive_inverse(tissue_spectrum, aif_spectrum):
    """Unregularised spectral quotient ``DFT(C) / (TR · DFT(Ca))``.

    Modes whose singular value is numerically zero (below ``L · eps`` of the
    largest, the ``pinv`` cut-off) are set to zero so that a zero or
    degenerate AIF yields a zero residue instead of infinities.

    Parameters
    ----------
    tissue_spectrum : ndarray of shape (n_samples, F), complex
        See :func:`circulant_spectra`.
    aif_spectrum : ndarray of shape (1 or n_samples, F), complex
        See :func:`circulant_spectra`.

    Returns
    -------
    quotient : ndarray of shape (n_samples, F), complex
        Spectrum of the unregularised impulse response in 1/s.
    """
    singular_values = np.abs(aif_spectrum)
    n_padded = 2 * (aif_spectrum.shape[-1] - 1)
    cutoff = n_padded * np.finfo(singular_values.dtype).eps * singular_values.max(
        axis=-1, keepdims=True)
    usable = singular_values > cutoff
    # One reciprocal per AIF mode, then a product per voxel: a complex
    # division per voxel and mode costs several times a product.
    inverse = np.zeros_like(aif_spectrum)
    np.divide(1, aif_spectrum, out=inverse, where=usable)
    return tissue_spectrum * inverse


def mode_multiplicity(n_freqs, dtype=np.float64):
    """How many circulant singular values each ``rfft`` bin stands for.

    Bins ``1 .. L/2 - 1`` stand for the conjugate pair ``±k``; the DC and
    Nyquist bins for one mode. Weighting by these multiplicities turns sums
    over ``rfft`` bins into sums over all ``L`` modes (Parseval, traces).

    Parameters
    ----------
    n_freqs : int
        Number of ``rfft`` bins ``F = L/2 + 1`` (``L`` even).
    dtype : dtype, default=float64
        Output dtype.

    Returns
    -------
    multiplicity : ndarray of shape (n_freqs,)
        1 for the DC and Nyquist bins, 2 otherwise.
    """
    multiplicity = np.full(n_freqs, 2, dtype=dtype)
    multiplicity[[0, -1]] = 1
    return multiplicity


def residues_from_spectrum(spectrum, workers=-1):
    """Impulse responses on the circle of ``L`` samples from their ``rfft``.

    Parameters
    ----------
    spectrum : ndarray of shape (n_samples, F), complex
        Filtered spectrum of the impulse responses.
    workers : int, default=-1
        Threads of the FFT (``scipy.fft``; -1: all cores).

    Returns
    -------
    residues : ndarray of shape (n_samples, L)
        Samples of the impulse response ``h = f·R`` in 1/s, ``L = 2 (F - 1)``.
    """
    return scipy.fft.irfft(spectrum, 2 * (spectrum.shape[-1] - 1), axis=-1, workers=workers)


class ResidueDeconvolver(BaseDeconvolver):
    """Deconvolvers that estimate the impulse response ``h = f·R`` per voxel.

    ``f`` is the CBF as a flow rate in 1/s (the paper's TRF is ``h``).

    Subclasses implement ``_residues(tissue, aif)`` returning ``(n_samples, L)``
    impulse responses in 1/s (``aif`` one row when every voxel shares it, as
    :func:`~skperfusion.curves.shared_aif` collapses it) and may override
    ``_is_circular`` (whether the residue lives on the block-circulant
    circle, where late peaks mean negative delays).
    CBF is the residue peak (Østergaard 1996), CBV comes from the curve areas
    (eq. 2), MTT = CBV / CBF and Tmax is the time of the residue peak.
    """

    @fill_doc
    def residues(self, X):
        """Deconvolved impulse responses ``h(t) = f·R(t)`` of every sample.

        %(X_fitted_curves_returns)s
        residues : ndarray of shape (n_samples, n_residue)
            Impulse responses in 1/s on the grid ``t_k = k · TR``
            (``n_residue = 2 · n_times`` on the block-circulant circle, whose
            second half stands for negative times, or ``n_times`` for sSVD).
        """
        return np.concatenate(list(self._map_chunks(
            X, lambda curves: self._residues(curves[:, 0], curves[:, 1]))))

    def _is_circular(self):
        return True

    def _deconvolve(self, tissue, aif):
        aif = shared_aif(aif)
        residues = self._residues(tissue, aif)
        cbf = flow_rate_to_cbf(residues.max(axis=-1), self.kh, self.rho)
        cbv = cbv_from_curves(tissue, aif, self.kh, self.rho)
        tmax = tmax_from_residue(residues, self.tr, circular=self._is_circular())
        return np.column_stack([cbf, cbv, mtt_from_cbv_cbf(cbv, cbf), tmax])
