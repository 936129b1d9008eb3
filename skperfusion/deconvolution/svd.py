"""SVD deconvolution: standard (sSVD), block-circulant (cSVD) and oscillation-index (oSVD)."""

from numbers import Real

import numpy as np
import scipy.fft
from sklearn.utils._param_validation import Interval, StrOptions

from .._docs import fill_doc
from ..physics import DEFAULT_DENSITY, DEFAULT_HEMATOCRIT_FACTOR
from ._spectral import (
    ResidueDeconvolver,
    circulant_spectra,
    naive_inverse,
    residues_from_spectrum,
    shared_aif,
)

__all__ = ["OSVDDeconvolver", "oscillation_index"]

_SVD_BLOCK = 256
# Voxels per block of the OI search (with a larger chunk_size): its work
# arrays, about 2.5 MB for 1024 voxels of 60 frames, are reused by the
# chunk's blocks. Blocks of 256 or 512 voxels cost as much CPU time (AMD
# EPYC, 1 MB of L2 per core): the FFTs, not the cache, bound the search.
_SEARCH_BLOCK = 1024

DEFAULT_OI_TARGET = 0.035
"""Default oscillation-index target of oSVD, dimensionless (see :func:`oscillation_index`)."""


def oscillation_index(residues):
    """Oscillation index of residues (Wu et al. 2003).

    ``OI = 1 / (L · max h) · Σ_{k=2}^{L-1} |h[k] - 2 h[k-1] + h[k-2]|`` over
    the ``L`` samples of the (zero-padded, block-circulant) residue: the mean
    absolute second difference relative to the peak, hence dimensionless and
    independent of CBF and of the concentration unit. Implementations differ
    in this normalisation (some omit ``1/L`` or use the unpadded length);
    this one is that of the DSC-MRI toolbox of Peruzzo, Castellaro et al.,
    whose default target 0.035 (also the default of OSIPI's ``osipy``) is
    the default here.

    Parameters
    ----------
    residues : array_like of shape (..., L)
        Impulse responses (any unit).

    Returns
    -------
    oi : ndarray of shape (...)
        Oscillation index; ``inf`` where the residue has no positive peak.
    """
    residues = np.asarray(residues)
    peak = residues.max(axis=-1)
    slope = np.diff(residues, axis=-1)
    second = slope[..., 1:] - slope[..., :-1]
    roughness = np.abs(second, out=second).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, roughness / (residues.shape[-1] * peak), np.inf)


class _OISearch:
    """Feasibility tests ``OI < target`` of truncated residues, for one block of voxels.

    The spectra hold one voxel per *column* (modes along axis 0): the inverse
    FFTs then transform several voxels per SIMD lane, and the OI's reductions
    over time become element-wise operations across voxels, several times
    faster than along rows of ``L`` samples. The work arrays are allocated
    once per chunk and reused by its blocks. Single precision: the search
    only compares OI with the target. Same OI as :func:`oscillation_index`,
    compared as ``roughness < target · L · peak`` (false where the peak is
    not positive).
    """

    def __init__(self, n_freqs, n_samples, oi_target):
        self.n_padded = 2 * (n_freqs - 1)
        self.bound = np.float32(oi_target * self.n_padded)
        self._spectra = np.empty((n_freqs, n_samples), dtype=np.complex64)
        self._kept = np.empty((n_freqs, n_samples), dtype=bool)
        self._masked = np.empty_like(self._spectra)
        self._slope = np.empty((self.n_padded - 1, n_samples), dtype=np.float32)
        self._second = np.empty((self.n_padded - 2, n_samples), dtype=np.float32)
        self._peak = np.empty(n_samples, dtype=np.float32)
        self._roughness = np.empty(n_samples, dtype=np.float32)

    def load(self, quotient, rank):
        """Take a block's spectra (one voxel per row) and their mode ranks (modes along axis 0)."""
        self.spectra = self._spectra[:, :len(quotient)]
        np.copyto(self.spectra, quotient.T, casting="same_kind")
        self.rank = rank

    def __call__(self, n_modes=None):
        """Feasibility of keeping the ``n_modes`` (per voxel) top-ranked modes; all if None."""
        n_samples = self.spectra.shape[1]
        masked = self.spectra
        if n_modes is not None:
            kept, masked = self._kept[:, :n_samples], self._masked[:, :n_samples]
            np.less(self.rank, n_modes, out=kept)
            np.multiply(self.spectra, kept, out=masked)
        residues = scipy.fft.irfft(masked, self.n_padded, axis=0)
        peak, roughness = self._peak[:n_samples], self._roughness[:n_samples]
        slope, second = self._slope[:, :n_samples], self._second[:, :n_samples]
        np.max(residues, axis=0, out=peak)
        np.subtract(residues[1:], residues[:-1], out=slope)
        np.subtract(slope[1:], slope[:-1], out=second)
        np.sum(np.abs(second, out=second), axis=0, out=roughness)
        peak *= self.bound
        return (peak > 0) & (roughness < peak)


def _oi_truncated_residues(quotient, singular_values, oi_target):
    """Residues with the per-voxel truncation meeting the OI target (batched search).

    Truncating the circulant singular values keeps the ``m`` largest ones
    (``rfft`` bins ranked by ``|DFT(Ca)|``); Wu et al. raise the threshold
    from zero until ``OI < oi_target``, i.e. take the largest feasible ``m``.
    Here: the exact inverse (all ``F`` bins) is accepted when feasible;
    otherwise bisection over ``m`` in ``[1, F - 1]``, whose lower end (the DC
    mode alone for a non-negative AIF, a flat residue with OI = 0) is
    feasible, ends on a feasible ``m`` whose ``m + 1`` is not. That is the
    largest feasible ``m`` wherever OI grows with ``m`` (in 80-100 % of
    simulated voxels, the others within a few % of CBF), in
    ``ceil(log2(F)) + 1`` batched inverse FFTs instead of ``F`` per voxel.
    With an AIF shared by all voxels (an exam) the mode ranking is computed
    once. The search runs in single precision (see :class:`_OISearch`); the
    returned residues keep the input precision. ``quotient`` is overwritten.
    """
    n_samples, n_freqs = quotient.shape
    # The smallest integers that hold 2F (the bisection's low + high): the
    # search's comparisons of ranks with mode counts run several times faster.
    rank = np.argsort(np.argsort(-singular_values, axis=-1), axis=-1).astype(
        np.min_scalar_type(2 * n_freqs))
    search = _OISearch(n_freqs, min(n_samples, _SEARCH_BLOCK), oi_target)
    n_modes = np.empty(n_samples, dtype=np.intp)
    for start in range(0, n_samples, _SEARCH_BLOCK):
        block = slice(start, start + _SEARCH_BLOCK)
        search.load(quotient[block], rank[block if len(rank) > 1 else slice(None)].T)
        n_modes[block] = _oi_search(search, n_freqs)
    kept = np.multiply(quotient, rank < n_modes[:, None], out=quotient)
    return scipy.fft.irfft(kept, 2 * (n_freqs - 1), axis=-1)


def _oi_search(feasible, n_freqs):
    """Number of top-ranked modes kept per voxel of the loaded block (bisection)."""
    n_samples = feasible.spectra.shape[1]
    low = np.ones(n_samples, dtype=feasible.rank.dtype)
    high = np.full(n_samples, n_freqs - 1, dtype=feasible.rank.dtype)
    # OI is not monotone near the top: the last, smallest singular values
    # cancel the Gibbs ringing that truncation causes, so the exact inverse
    # of noise-free curves passes while slightly truncated ones do not. Wu's
    # scan, from the smallest threshold up, accepts it first: test it first.
    exact = feasible()
    low[exact] = high[exact] = n_freqs
    while np.any(low < high):
        mid = (low + high + 1) // 2
        passed = feasible(mid)
        low = np.where(passed, mid, low)
        high = np.where(passed, high, mid - 1)
    return low


def _toeplitz_pseudo_inverses(aifs, tr, threshold):
    """Truncated pseudo-inverses of the lower-triangular matrices ``TR · Ca[i - j]``."""
    n_times = aifs.shape[1]
    lags = np.subtract.outer(np.arange(n_times), np.arange(n_times))
    matrices = np.where(lags >= 0, tr * aifs[:, np.clip(lags, 0, None)], 0)
    u, s, vt = np.linalg.svd(matrices)
    kept = (s >= threshold * s[:, :1]) & (s > 0)
    inverse_s = np.where(kept, 1 / np.where(kept, s, 1), 0)
    return np.einsum("aji,aj,akj->aik", vt, inverse_s, u)


@fill_doc
class OSVDDeconvolver(ResidueDeconvolver):
    """SVD deconvolution of DSC-MRI curves: oSVD (default), cSVD or sSVD.

    Solves ``C = D · h`` for the impulse response ``h = f·R`` (``f`` the CBF
    as a flow rate in 1/s; the paper's TRF), with ``D`` built from
    ``TR · Ca`` (rectangular rule, as in Østergaard et al. 1996 and Wu et
    al. 2003), regularised by truncating the singular values of ``D``:

    - ``"oSVD"`` (Wu et al. 2003): ``C`` and ``Ca`` are zero-padded to
      ``L = 2N`` and ``D`` is the full ``L × L`` block-circulant matrix, which
      makes the estimate insensitive to the tracer arrival delay; the
      truncation is chosen per voxel, as the smallest one whose residue has an
      oscillation index (:func:`oscillation_index`) below ``oi_target``.
    - ``"cSVD"``: the same block-circulant matrix with a fixed threshold,
      singular values below ``threshold · σmax`` discarded.
    - ``"sSVD"`` (Østergaard et al. 1996): the ``N × N`` lower-triangular
      Toeplitz matrix with a fixed threshold; sensitive to delay (negative
      delays cannot be represented at all).

    The circulant matrix is diagonalised by the DFT, so truncating its
    singular values is zeroing Fourier modes of ``DFT(C) / DFT(Ca)``: every
    voxel is processed by batched FFTs, the AIF transformed once when it is
    shared. CBF is the residue peak, CBV comes from the curve areas
    (Fayolle et al. 2025, eq. 2), MTT = CBV / CBF and Tmax is the time of the
    residue peak, negative when the peak lies in the second half of the
    circulant circle.

    The residue of a real tissue jumps from 0 to ``CBF`` at bolus arrival, a
    step the sampling cannot resolve: the deconvolved residue is band-limited,
    its sample at the arrival carries about half the step and the next ones a
    Gibbs overshoot. Noise-free, the peak thus underestimates CBF when MTT is
    short compared with TR (by 20-40 % at MTT = 2 s, TR = 1-1.5 s) and can
    overestimate it by up to about 12 % for long, flat residues. Doubling the
    arrival sample (its trapezoidal end weight) would fix integer-aligned
    arrivals only, and overshoots by up to 90 % when the arrival falls
    between samples, so the method is kept as published. Inverting the
    trapezoidal convolution matrix instead changes only the sample at
    ``t = 0`` (with a pre-bolus baseline it is the rectangular matrix with
    its first column halved): against fine-grid simulated truth it helps
    the voxels whose bolus arrives within TR/2 of the AIF and leaves the
    median CBF error over delays of 0-3 TR unchanged
    (``benchmarks/bench_discretisation.py``), so ``D`` stays rectangular, as
    in Wu et al. and OSIPI ``osipy``. CBV does not depend on it.

    Parameters
    ----------
    tr : float, default=1.0
        Sampling interval (repetition time) in seconds.
    method : {"oSVD", "cSVD", "sSVD"}, default="oSVD"
        Variant, see above.
    oi_target : float, default=0.035
        Oscillation-index target of oSVD (dimensionless, normalised as in
        :func:`oscillation_index`); 0.035 is the default of the DSC-MRI toolbox
        (Peruzzo, Castellaro et al.) and of OSIPI ``osipy``. Ignored by cSVD
        and sSVD.
    threshold : float, default=0.2
        Fixed truncation of cSVD and sSVD, as a fraction of the largest
        singular value (20 % as in Østergaard et al. 1996). Ignored by oSVD.
    kh : float, default=0.73
        Haematocrit correction factor ``kH``, dimensionless.
    rho : float, default=1.04
        Brain density in g/ml.
    chunk_size : int, default=1024
        Voxels processed at once (one thread per core takes a chunk); bounds
        the memory. 1024 voxels keep a chunk's work arrays in a core's L2
        cache: 30 % less CPU time than 4096.

    Attributes
    ----------
    %(fitted_curve_attributes)s

    See Also
    --------
    TikhonovDeconvolver : Tikhonov-regularised block-circulant deconvolution.
    oscillation_index : OI of a residue.

    References
    ----------
    .. [1] Østergaard L. et al., "High resolution measurement of cerebral blood
       flow using intravascular tracer bolus passages. Part I", Magn Reson Med
       36:715-725, 1996.
    .. [2] Wu O. et al., "Tracer arrival timing-insensitive technique for
       estimating flow in MR perfusion-weighted imaging using singular value
       decomposition with a block-circulant deconvolution matrix", Magn Reson
       Med 50:164-174, 2003.

    Examples
    --------
    >>> import functools
    >>> from skperfusion import OSVDDeconvolver, pair_curves
    >>> from skperfusion.datasets import gamma_variate, simulate_concentration
    >>> tissue, aif = simulate_concentration(
    ...     functools.partial(gamma_variate, t0=10), tr=1.0, cbf=[50.0], mtt=[8.0])
    >>> maps = OSVDDeconvolver(tr=1.0).fit_transform(pair_curves(tissue, aif))
    >>> maps.shape
    (1, 4)
    """

    _parameter_constraints: dict = {
        **ResidueDeconvolver._parameter_constraints,
        "method": [StrOptions({"oSVD", "cSVD", "sSVD"})],
        "oi_target": [Interval(Real, 0, None, closed="neither")],
        "threshold": [Interval(Real, 0, 1, closed="left")],
    }

    _threaded_chunks = True

    def __init__(self, tr=1.0, method="oSVD", oi_target=DEFAULT_OI_TARGET, threshold=0.2,
                 kh=DEFAULT_HEMATOCRIT_FACTOR, rho=DEFAULT_DENSITY, chunk_size=1024):
        super().__init__(tr=tr, kh=kh, rho=rho, chunk_size=chunk_size)
        self.method = method
        self.oi_target = oi_target
        self.threshold = threshold

    def _is_circular(self):
        return self.method != "sSVD"

    def _residues(self, tissue, aif):
        if self.method == "sSVD":
            return self._toeplitz_residues(tissue, aif)
        # One thread per chunk (_threaded_chunks): single-threaded FFTs.
        tissue_spectrum, aif_spectrum = circulant_spectra(tissue, aif, self.tr, workers=1)
        quotient = naive_inverse(tissue_spectrum, aif_spectrum)
        singular_values = np.abs(aif_spectrum)
        if self.method == "oSVD":
            return _oi_truncated_residues(quotient, singular_values, self.oi_target)
        kept = singular_values >= self.threshold * singular_values.max(axis=-1, keepdims=True)
        return residues_from_spectrum(np.where(kept, quotient, 0), workers=1)

    def _toeplitz_residues(self, tissue, aif):
        aif = shared_aif(aif)
        if len(aif) == 1:
            return tissue @ _toeplitz_pseudo_inverses(aif, self.tr, self.threshold)[0].T
        # Per-sample AIFs: one SVD per distinct AIF of each block of voxels;
        # blocks bound the memory of the stacked matrices (no loop over voxels).
        residues = np.empty_like(tissue)
        for start in range(0, len(tissue), _SVD_BLOCK):
            block = slice(start, start + _SVD_BLOCK)
            aifs, inverse = np.unique(aif[block], axis=0, return_inverse=True)
            pseudo_inverses = _toeplitz_pseudo_inverses(aifs, self.tr, self.threshold)
            residues[block] = np.einsum("nik,nk->ni", pseudo_inverses[inverse.ravel()],
                                        tissue[block])
        return residues
