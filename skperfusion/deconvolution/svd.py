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
    mode_multiplicity,
    naive_inverse,
    residues_from_spectrum,
    shared_aif,
)

__all__ = ["OSVDDeconvolver", "oscillation_index"]

_SVD_BLOCK = 256
# Voxels per block of the OI search (with a larger chunk_size): its work
# arrays, about 2.5 MB for 1024 voxels of 60 frames, are reused by the
# chunk's blocks. Blocks of 512 or 256 voxels cost 10 % or 35 % more CPU
# time (AMD EPYC, 1 MB of L2 per core): the search's per-test numpy calls
# weigh more than the cache.
_SEARCH_BLOCK = 1024
# Guided tests of the OI search before it bisects, and the brackets' total
# width below which it tests every m left in one batch (see _oi_search).
_GUIDED_TESTS = 4
_SCAN_COLUMNS = 128

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
    faster than along rows of ``L`` samples. A test transforms only the
    voxels still searched; its work arrays are allocated once per chunk.
    Single precision: the search only compares OI with the target. Same OI
    as :func:`oscillation_index`, compared as ``roughness < target · L ·
    peak`` (false where the peak is not positive).

    :meth:`load` also computes, from the moduli of the spectra alone and for
    every number ``m`` of kept modes at once (cumulative sums over the
    ranked modes, Parseval), what guides the search without an FFT:

    - ``E(m) = (1/L) Σ mult |H D|²``, the energy ``Σ_t d2_t²`` of the
      circular second differences ``d2`` of the truncated residue ``h``
      (``H`` its spectrum, ``D = (1 - e^{-iω})²``, ``mult`` the
      :func:`mode_multiplicity`);
    - ``P(m) = (1/L) Σ mult |H| >= max |h|``;
    - ``proxy(m) = sqrt(E) / (L · P)``, below the OI by a factor
      (``Σ |d2| / ||d2||₂ · P / peak``) that varies slowly with ``m``.

    As ``Σ_{t>=2} |d2_t| >= ||d2_{t>=2}||₂`` and ``peak <= P``, the exact
    inverse is certainly infeasible where ``E - d2_0² - d2_1² >= (target ·
    L · P)²`` (``d2_0`` and ``d2_1`` wrap around the circle, outside the
    OI's sum); it is then not transformed. Noisy voxels amplify the noise of
    the smallest singular values far beyond the target (OI 10-20 times it at
    5 % noise, the bound still above it).
    """

    def __init__(self, n_freqs, n_samples, oi_target):
        self.n_padded = 2 * (n_freqs - 1)
        self.oi_target = oi_target
        self.bound = np.float32(oi_target * self.n_padded)
        # The L1 / L2 norm ratio of white noise over the L - 2 second
        # differences: the OI / proxy ratio assumed before a voxel's first test.
        self.first_ratio = np.float32(np.sqrt(2 * (self.n_padded - 2) / np.pi))
        frequency = 2 * np.pi * np.arange(n_freqs) / self.n_padded
        second = (1 - np.exp(-1j * frequency)) ** 2
        multiplicity = mode_multiplicity(n_freqs)
        weight = multiplicity / self.n_padded
        # Per mode: the weights of L · P and of E.
        self._weights = np.column_stack([multiplicity, weight * np.abs(second) ** 2]).astype(
            np.float32)
        # d2_t = (1/L) Re Σ mult H D e^{iωt} at t = 0, 1 as a real product with the
        # interleaved (real, imaginary) spectra: rows 0-1 by the real parts, 2-3 by
        # the imaginary ones.
        wrap = weight * second * np.exp(1j * np.outer([0, 1], frequency))
        self._wrap = np.concatenate([wrap.real, -wrap.imag]).astype(np.float32)
        # The certificate's margin over the rounding of its single-precision
        # sums of F terms (relative error F·eps at most), relative to
        # (target · L · P)²: E <= 16 (L · P)² / L and |d2_t| <= 4 P bound
        # their absolute errors (0.1 % for 60 frames and the default target).
        self._slack = 1 + 40 * n_freqs * np.finfo(np.float32).eps / (
            oi_target ** 2 * self.n_padded)
        # Flat work arrays, viewed as contiguous arrays of the voxels tested.
        self._spectra = np.empty(n_freqs * n_samples, dtype=np.complex64)
        self._terms = np.empty(2 * n_freqs * n_samples, dtype=np.float32)
        self._masked = np.empty(n_freqs * n_samples, dtype=np.complex64)
        self._slope = np.empty((self.n_padded - 1) * n_samples, dtype=np.float32)

    def load(self, quotient, rank):
        """Take a block's spectra (one voxel per row) and their mode ranks (modes along axis 0)."""
        n_samples, n_freqs = quotient.shape
        self.spectra = self._spectra[:n_freqs * n_samples].reshape(n_freqs, n_samples)
        np.copyto(self.spectra, quotient.T, casting="same_kind")
        self.rank = rank
        # Terms of L · P and E (rows 0 and 1 of axis 1), modes in rank order.
        terms = self._terms[:2 * n_freqs * n_samples].reshape(n_freqs, 2, n_samples)
        modulus = np.abs(self.spectra, out=terms[:, 0])
        order = np.argsort(rank, axis=0)
        if rank.shape[1] == 1:
            weights = self._weights[order[:, 0], :, None]
            if np.any(order[:, 0] != np.arange(n_freqs)):
                modulus[...] = modulus[order[:, 0]]
        else:
            weights = self._weights[order].transpose(0, 2, 1)
            modulus[...] = np.take_along_axis(modulus, order, axis=0)
        np.square(terms[:, 0], out=terms[:, 1])
        terms *= weights
        # Row by row: numpy's cumsum along axis 0 is ten times slower.
        for row in range(1, n_freqs):
            np.add(terms[row - 1], terms[row], out=terms[row])
        peak_total, energy_total = terms[-1].copy()
        self.proxy = np.sqrt(terms[:, 1], out=terms[:, 1])
        self.proxy /= terms[:, 0]
        wrap = self._wrap @ self.spectra.view(np.float32)
        wrap_energy = np.square(wrap[:2, 0::2] + wrap[2:, 1::2]).sum(axis=0)
        self.exact_infeasible = (energy_total - wrap_energy
                                 >= self._slack * np.square(self.oi_target * peak_total))

    def __call__(self, columns=None, n_modes=None):
        """Feasibility and OI of keeping the ``n_modes`` top-ranked modes of voxels ``columns``.

        ``columns`` may repeat a voxel (one test per entry); None: every
        voxel of the block. Every mode where ``n_modes`` is None (the exact
        inverse).
        """
        spectra, rank = self.spectra, self.rank
        if columns is not None:  # a gather costs a third of a test: not for all voxels
            spectra = self._masked[:len(self.spectra) * len(columns)].reshape(
                len(self.spectra), -1)
            np.take(self.spectra, columns, axis=1, out=spectra)
            rank = rank if rank.shape[1] == 1 else rank[:, columns]
        if n_modes is not None:
            spectra = np.multiply(spectra, rank < n_modes.astype(rank.dtype),
                                  out=self._masked[:spectra.size].reshape(spectra.shape))
        residues = scipy.fft.irfft(spectra, self.n_padded, axis=0)
        peak = np.max(residues, axis=0)
        slope = self._slope[:(self.n_padded - 1) * spectra.shape[1]].reshape(
            -1, spectra.shape[1])
        np.subtract(residues[1:], residues[:-1], out=slope)
        second = np.subtract(slope[1:], slope[:-1], out=residues[2:])
        roughness = np.sum(np.abs(second, out=second), axis=0)
        peak *= self.bound
        feasible = (peak > 0) & (roughness < peak)
        return feasible, np.where(peak > 0, roughness * np.float32(self.oi_target) / peak,
                                  np.inf)


def _oi_truncated_residues(quotient, singular_values, oi_target):
    """Residues with the per-voxel truncation meeting the OI target (batched search).

    Truncating the circulant singular values keeps the ``m`` largest ones
    (``rfft`` bins ranked by ``|DFT(Ca)|``); Wu et al. raise the threshold
    from zero until ``OI < oi_target``, i.e. take the largest feasible ``m``.
    Here: the exact inverse (all ``F`` bins) is accepted when feasible;
    otherwise a search over ``m`` in ``[1, F - 1]``, whose lower end (the DC
    mode alone for a non-negative AIF, a flat residue with OI = 0) is
    feasible, ends on a feasible ``m`` whose ``m + 1`` is not
    (:func:`_oi_search`). That is the largest feasible ``m`` wherever OI
    grows with ``m`` (in 80-100 % of simulated voxels, the others within a
    few % of CBF), in 2-3 batched inverse FFTs per voxel whose exact inverse
    is certified infeasible, about ``log2(F) + 1`` for the others, instead
    of ``F``. With an AIF shared by all voxels (an exam) the mode ranking is
    computed once. The search runs in single precision (see
    :class:`_OISearch`); the returned residues keep the input precision.
    ``quotient`` is overwritten.
    """
    n_samples, n_freqs = quotient.shape
    # The smallest integers that hold F: the search's comparisons of ranks
    # with mode counts run several times faster.
    rank = np.argsort(np.argsort(-singular_values, axis=-1), axis=-1).astype(
        np.min_scalar_type(n_freqs))
    search = _OISearch(n_freqs, min(n_samples, _SEARCH_BLOCK), oi_target)
    n_modes = np.empty(n_samples, dtype=np.intp)
    with np.errstate(divide="ignore", invalid="ignore"):
        for start in range(0, n_samples, _SEARCH_BLOCK):
            block = slice(start, start + _SEARCH_BLOCK)
            search.load(quotient[block], rank[block if len(rank) > 1 else slice(None)].T)
            n_modes[block] = _oi_search(search, n_freqs)
    kept = np.multiply(quotient, rank < n_modes[:, None].astype(rank.dtype), out=quotient)
    return scipy.fft.irfft(kept, 2 * (n_freqs - 1), axis=-1)


def _oi_search(feasible, n_freqs):
    """Number of top-ranked modes kept per voxel of the loaded block.

    Each voxel's bracket ``[low, high]`` keeps a feasible ``low`` (``1`` at
    first) and an infeasible ``high + 1``; every test of an ``m`` inside
    narrows it, and the search ends when ``low == high``: a feasible ``m``
    whose ``m + 1`` is not, the only one where OI grows with ``m``.

    Voxels whose exact inverse is certified infeasible (noisy ones, see
    :class:`_OISearch`) are first tested where their boundary is predicted:
    the largest ``m`` whose ``proxy(m)`` times the voxel's OI / proxy ratio
    (measured at its last test) is below the target, or ``low + 1`` to
    confirm a ``low`` predicted to be the boundary. Most end after two tests
    (``m`` feasible, ``m + 1`` not). The others, and every voxel after
    ``_GUIDED_TESTS`` tests, are bisected, which bounds the tests. Once the
    brackets left are narrow, one batch tests every ``m`` in them and keeps
    the largest feasible one: a test's fixed cost is that of about
    ``_SCAN_COLUMNS`` voxels.
    """
    n_samples = feasible.spectra.shape[1]
    low = np.ones(n_samples, dtype=np.intp)
    high = np.full(n_samples, n_freqs - 1, dtype=np.intp)
    # OI is not monotone near the top: the last, smallest singular values
    # cancel the Gibbs ringing that truncation causes, so the exact inverse
    # of noise-free curves passes while slightly truncated ones do not. Wu's
    # scan, from the smallest threshold up, accepts it first: test it first.
    noisy = feasible.exact_infeasible
    uncertain = np.flatnonzero(~noisy)
    if len(uncertain):
        exact = uncertain[feasible(None if len(uncertain) == n_samples else uncertain)[0]]
        low[exact] = high[exact] = n_freqs
    # The state of the voxels still searched (active), compressed as they end.
    active = np.flatnonzero(low < high)
    bottom, top, guided = low[active], high[active], noisy[active]
    # The proxy below which an m is predicted feasible: target / (OI / proxy).
    level = np.full(len(active), feasible.oi_target / feasible.first_ratio, dtype=np.float32)
    scan_columns = min(_SCAN_COLUMNS, n_samples)
    n_tests = 0
    while len(active):
        width = top - bottom
        if width.sum() <= scan_columns:  # m = bottom + 1 .. top of each voxel
            starts = np.cumsum(width) - width
            tested = np.arange(width.sum()) + np.repeat(bottom + 1 - starts, width)
            passed = feasible(np.repeat(active, width), tested)[0]
            low[active] = np.maximum(bottom, np.maximum.reduceat(
                np.where(passed, tested, 0), starts))
            break
        every = len(active) == n_samples
        tested = (bottom + top + 1) // 2
        if n_tests < _GUIDED_TESTS and guided.any():
            proxy = feasible.proxy if every else np.take(feasible.proxy, active, axis=1)
            # Summed as bytes (F fits the rank's dtype): 8 times faster than count_nonzero.
            predicted = np.less(proxy, level).view(np.uint8).sum(axis=0,
                                                                 dtype=feasible.rank.dtype)
            tested = np.where(guided, np.clip(predicted, bottom + 1, top), tested)
        passed, oi = feasible(None if every else active, tested)
        level = feasible.oi_target * feasible.proxy[tested - 1, active] / oi
        bottom = np.where(passed, tested, bottom)
        top = np.where(passed, top, tested - 1)
        searched = bottom < top
        if not searched.all():
            low[active[~searched]] = bottom[~searched]
            active, bottom, top, guided, level = (
                values[searched] for values in (active, bottom, top, guided, level))
        n_tests += 1
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
