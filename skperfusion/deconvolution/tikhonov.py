"""Tikhonov-regularised deconvolution (Calamante et al. 2003), per-voxel λ."""

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from .._docs import fill_doc
from ..physics import DEFAULT_DENSITY, DEFAULT_HEMATOCRIT_FACTOR
from ..physics._array_ops import NUMPY
from ._spectral import (
    ResidueDeconvolver,
    circulant_spectra,
    mode_multiplicity,
    residues_from_spectrum,
    shared_aif,
)

__all__ = ["TikhonovDeconvolver", "baseline_noise_variance", "penalty_weights",
           "robust_gcv_gamma"]

LAMBDA_GRID = np.logspace(-3, 0, 40)
"""Candidate λ of the selection rules, as fractions of the largest singular value."""

_PER_SAMPLE_BLOCK = 1024

ROBUST_GCV_GAMMA = (0.2, 0.5)
"""Robustness parameter γ of robust GCV (Lukas 2006) at low and at high CNR,
dimensionless (γ = 1 is GCV), see :func:`robust_gcv_gamma`."""

ROBUST_GCV_CNR = (20.0, 50.0)
"""Contrast-to-noise ratios between which γ rises (log-linearly) from the first to the
second value of :data:`ROBUST_GCV_GAMMA`, see :func:`robust_gcv_gamma`."""


def penalty_weights(n_freqs, penalty, dtype=np.float64):
    """Eigenvalues ``w = |ℓ|²`` of ``ΓᵀΓ`` for the circulant penalty ``||Γ h||²``.

    ``"identity"``: ``Γ = I``, ``w = 1``. ``"curvature"``: ``Γ`` the circulant
    second difference (Calamante et al. 2003 penalise the residue's second
    derivative), ``ℓ_k = 2 - 2 cos(2πk / L)``, scaled to a largest ``w`` of 1
    so that the λ grid keeps its meaning; the constant mode is not
    penalised, so the residue's level (CBF) is not shrunk towards zero.

    Parameters
    ----------
    n_freqs : int
        Number of ``rfft`` bins ``F = L/2 + 1``.
    penalty : {"identity", "curvature"}
        Regularisation operator.
    dtype : dtype, default=float64
        Output dtype.

    Returns
    -------
    weights : ndarray of shape (n_freqs,)
        Dimensionless penalty weight of each bin.
    """
    if penalty == "identity":
        return np.ones(n_freqs, dtype=dtype)
    frequency = np.arange(n_freqs, dtype=dtype) / (2 * (n_freqs - 1))
    return ((2 - 2 * np.cos(2 * np.pi * frequency)) / 4) ** 2


def _tikhonov_spectrum(tissue_spectrum, aif_spectrum, lambdas, weights):
    """Spectrum of ``argmin ||D h - C||² + λ² ||Γ h||²`` (filter factors σ²/(σ²+λ²w))."""
    denominator = np.abs(aif_spectrum) ** 2 + lambdas**2 * weights
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0,
                        np.conj(aif_spectrum) * tissue_spectrum / denominator, 0)


def _mode_sums(power, weights):
    """``Σ_f power[n, f] · weights[r, f, g]``, ``r`` the shared AIF (0) or the voxel."""
    if weights.shape[0] == 1:
        return power @ weights[0]
    return np.einsum("nf,nfg->ng", power, weights)


def baseline_noise_variance(tissue, aif, arrival_fraction=0.1, *, lead_frames=0, ops=NUMPY):
    """Per-voxel noise variance of tissue curves from their pre-bolus frames.

    The baseline is every frame before the AIF first reaches
    ``arrival_fraction`` of its peak, less ``lead_frames`` (the tissue bolus
    arrives no earlier), at least 2 frames; the variance is the sample
    variance of the tissue curve there. A model that lets the tissue lead
    the AIF needs ``lead_frames``: a tissue curve rising inside the window
    would pass for noise.

    Parameters
    ----------
    tissue : ndarray or torch.Tensor of shape (n_samples, n_times)
        Tissue concentration curves.
    aif : ndarray or torch.Tensor of shape (1 or n_samples, n_times)
        Arterial curves (one row when shared).
    arrival_fraction : float, default=0.1
        Fraction of the AIF peak that marks the bolus arrival, dimensionless.
    lead_frames : int, default=0
        Frames by which the tissue may lead the AIF.
    ops : namespace, default=NUMPY
        Array operations (``skperfusion.physics.torch_ops.TORCH`` for tensors).

    Returns
    -------
    variance : ndarray or torch.Tensor of shape (n_samples,)
        Noise variance in the squared unit of ``tissue``.
    """
    arrived = aif >= arrival_fraction * ops.amax(aif)[:, None]
    n_baseline = ops.clamp_min(ops.argmax(arrived) - lead_frames, 2)
    baseline = ops.arange(tissue.shape[-1], like=tissue) < n_baseline[:, None]
    count = ops.sum(baseline)
    mean = ops.sum(ops.where(baseline, tissue, 0.0)) / count
    return ops.sum(ops.where(baseline, (tissue - mean[:, None]) ** 2, 0.0)) / (count - 1)


def robust_gcv_gamma(tissue, aif):
    """Per-voxel robustness γ of robust GCV, from the voxel's contrast-to-noise ratio.

    Robust GCV protects against the flat GCV minimum of noisy curves, where
    a λ too small lets noise through; at high CNR that minimum is sharp and
    a strong protection only over-smooths (a sharp residue peak, hence CBF,
    comes out low). γ is 0.2 up to a CNR of 20 (nearly every voxel of a
    clinical exam: CNR 2-22 at SNR 10-50 on simulated exams) and 0.5 from a
    CNR of 50, log-linear between (:data:`ROBUST_GCV_GAMMA`,
    :data:`ROBUST_GCV_CNR`); it stays below 1 (GCV), whose minimum lets
    noise-free curves overshoot their peak (Gibbs). CNR is the tissue
    curve's peak over the sd of its pre-bolus frames
    (:func:`baseline_noise_variance`).

    Parameters
    ----------
    tissue, aif : ndarray of shape (n_samples, n_times)
        Tissue and arterial concentration curves (the AIF may be one row, shared).

    Returns
    -------
    gamma : ndarray of shape (n_samples,)
        Dimensionless γ between the two values of :data:`ROBUST_GCV_GAMMA`.
    """
    noise_sd = np.sqrt(baseline_noise_variance(tissue, aif))
    with np.errstate(divide="ignore", invalid="ignore"):
        cnr = np.nan_to_num(tissue.max(axis=-1) / noise_sd, nan=np.inf, posinf=np.inf)
    low, high = ROBUST_GCV_CNR
    position = np.clip(np.log(np.maximum(cnr, low) / low) / np.log(high / low), 0.0, 1.0)
    return ROBUST_GCV_GAMMA[0] + (ROBUST_GCV_GAMMA[1] - ROBUST_GCV_GAMMA[0]) * position


def _select_lambdas(tissue_spectrum, aif_spectrum, criterion, weights, noise_variance=None,
                    gamma=None):
    """Per-voxel λ (unit of the singular values) by GCV, L-curve or discrepancy principle.

    With ``β = DFT(C)``, ``σ = |DFT(TR·Ca)|`` and filter factors
    ``φ = σ² / (σ² + λ²)``, Parseval gives for every candidate λ at once
    ``ρ = ||D h - C||² ∝ Σ (1-φ)² |β|²``, ``η = ||h||² ∝ Σ φ² |β|² / σ²`` and
    the GCV denominator ``trace(I - D D⁺) = Σ (1-φ)``, sums running over all
    ``L`` circulant modes: one matrix product per statistic when the AIF is
    shared. GCV minimises ``ρ / trace²``; the L-curve corner is the point of
    largest signed curvature of ``(log ρ, log η)`` traversed with increasing
    λ (finite differences over the log-spaced grid), among the candidates
    not below the smallest singular value ``σmin``. The discrepancy principle
    (Morozov) takes the largest λ whose residual ``||D h - C||²`` does not
    exceed the noise expected in the ``N`` acquired samples, ``N σ²``, with
    ``σ²`` the voxel's ``noise_variance`` (Parseval: ``ρ = L ||D h - C||²``).
    """
    singular2 = np.abs(aif_spectrum) ** 2
    multiplicity = mode_multiplicity(singular2.shape[-1], singular2.dtype)[:, None]
    lambdas = np.sqrt(singular2.max(axis=-1, keepdims=True)) * LAMBDA_GRID.astype(
        singular2.dtype)
    factors = singular2[:, :, None] / (singular2[:, :, None]
                                       + lambdas[:, None, :] ** 2 * weights[:, None])
    power = np.abs(tissue_spectrum) ** 2
    rho = _mode_sums(power, multiplicity * (1 - factors) ** 2)
    if criterion == "discrepancy":
        n_padded = 2 * (singular2.shape[-1] - 1)
        target = n_padded * (n_padded // 2) * noise_variance[:, None]
        best = np.clip(np.sum(rho <= target, axis=-1) - 1, 0, len(LAMBDA_GRID) - 1)
        return np.take_along_axis(np.broadcast_to(lambdas, best.shape + lambdas.shape[-1:]),
                                  best[:, None], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if criterion in ("gcv", "rgcv"):
            score = rho / np.sum(multiplicity * (1 - factors), axis=1) ** 2
            if criterion == "rgcv":
                n_modes = multiplicity.sum()
                influence2 = np.sum(multiplicity * factors**2, axis=1) / n_modes
                gamma = gamma.astype(score.dtype)[:, None]
                score = score * (gamma + (1 - gamma) * influence2)
        else:
            inverse_singular2 = np.where(singular2 > 0, 1 / singular2, 0)[:, :, None]
            eta = _mode_sums(power, multiplicity * factors**2 * inverse_singular2
                             * weights[:, None])
            # The grid is uniform in log λ, so its step cancels from the curvature.
            dx, dy = np.gradient(np.log(rho), axis=-1), np.gradient(np.log(eta), axis=-1)
            ddx, ddy = np.gradient(dx, axis=-1), np.gradient(dy, axis=-1)
            score = -(dx * ddy - ddx * dy) / (dx**2 + dy**2) ** 1.5
            # One-sided differences at the grid ends are no corners; below the
            # smallest singular value the filter barely changes and noisy
            # curves flatten into spurious corners (Hansen's grids stop at σmin).
            score[:, [0, -1]] = np.inf
            score = np.where(lambdas >= np.sqrt(singular2.min(axis=-1, keepdims=True)),
                             score, np.inf)
    best = np.argmin(np.where(np.isfinite(score), score, np.inf), axis=-1)
    return np.take_along_axis(np.broadcast_to(lambdas, best.shape + lambdas.shape[-1:]),
                              best[:, None], axis=-1)


@fill_doc
class TikhonovDeconvolver(ResidueDeconvolver):
    """Tikhonov-regularised deconvolution of DSC-MRI curves (Calamante et al. 2003).

    Solves ``min ||D h - C||² + λ² ||Γ h||²`` for the impulse response
    ``h = f·R`` (``f`` the CBF as a flow rate in 1/s; the paper's TRF),
    i.e. filters the singular values of ``D`` with the factors
    ``σ² / (σ² + λ² w)`` instead of truncating them. ``D`` is the
    block-circulant ``TR · Ca`` matrix of Wu et al. 2003 on ``L = 2N``
    zero-padded samples, which makes the estimate insensitive to the bolus
    delay and is diagonalised by the DFT: the filter acts on Fourier modes and
    every voxel is processed by batched FFTs. The penalty ``Γ`` is the
    residue's second difference (``penalty="curvature"``, Calamante et al.
    2003, whose weights ``w`` vanish for the constant mode) or the identity
    (``w = 1``, the ridge). λ is chosen per voxel, among 40 log-spaced λ
    from 10⁻³ to 1 times ``σmax`` evaluated for every voxel at once through
    Parseval's identity, by robust generalised cross-validation (``"rgcv"``,
    Lukas 2006), GCV, the corner of the L-curve, or the discrepancy principle
    with the noise variance of the voxel's pre-bolus frames
    (:func:`baseline_noise_variance`); or fixed at ``lambda_fraction · σmax``.
    Robust GCV's ``γ`` is per voxel, :func:`robust_gcv_gamma`.

    The defaults are the combination that did best on simulated curves of
    mixed residue families (exponential, gamma, Lorentzian, boxcar; delays
    0-3 s) from SNR 50 down to 10; the measurements are in the user guide
    (:doc:`/user_guide/deconvolvers`) and ``benchmarks/bench_accuracy.py``.
    GCV's minimum is flat at low SNR: in a few percent of the voxels it
    settles on a λ so small that noise passes and the residue peak (CBF)
    comes out at more than twice the truth, the isolated bright voxels of
    GCV maps; ridge regularisation strong enough to stop that also shrinks
    every peak. Robust GCV multiplies the GCV score by
    ``γ + (1 - γ) trace(A²) / L`` (``A`` the influence matrix, ``γ`` per
    voxel, :func:`robust_gcv_gamma`), which penalises the small λ, and the
    curvature penalty leaves the residue's level alone; noise-free and at
    high SNR it gives what GCV gives. The discrepancy principle is unstable
    with the 8-10 baseline frames of a DSC exam: the residual rises steeply
    through the noise level, so a small error in the voxel's noise variance
    swings λ from under- to over-smoothing.

    The robustness γ follows each voxel's CNR (:func:`robust_gcv_gamma`):
    small for the clinical range, where it matters at low SNR, and larger
    for the clean curves of high CNR, where a constant small γ smooths a
    sharp residue peak below the OSIPI DSC reference curves' tolerance.

    CBF is the residue peak, CBV comes from the curve areas (Fayolle et al.
    2025, eq. 2), MTT = CBV / CBF and Tmax is the time of the residue peak
    (negative in the second half of the circulant circle). The residue's
    unresolved jump at bolus arrival biases the peak as for SVD, see
    :class:`OSVDDeconvolver`.

    Parameters
    ----------
    tr : float, default=1.0
        Sampling interval (repetition time) in seconds.
    lambda_selection : {"rgcv", "gcv", "lcurve", "discrepancy", "fixed"}, default="rgcv"
        How λ is chosen per voxel.
    lambda_fraction : float, default=0.1
        λ as a fraction of the largest singular value when
        ``lambda_selection="fixed"``; ignored otherwise.
    penalty : {"curvature", "identity"}, default="curvature"
        Regularisation operator ``Γ``, see :func:`penalty_weights`.
    kh : float, default=0.73
        Haematocrit correction factor ``kH``, dimensionless.
    rho : float, default=1.04
        Brain density in g/ml.
    chunk_size : int, default=4096
        Voxels processed at once; bounds the memory.

    Attributes
    ----------
    %(fitted_curve_attributes)s

    See Also
    --------
    OSVDDeconvolver : truncated-SVD deconvolution (oSVD, cSVD, sSVD).

    References
    ----------
    .. [1] Calamante F., Gadian D. G., Connelly A., "Quantification of
       bolus-tracking MRI: improved characterization of the tissue residue
       function using Tikhonov regularization", Magn Reson Med 50:1237-1247,
       2003.
    .. [2] Golub G. H., Heath M., Wahba G., "Generalized cross-validation as a
       method for choosing a good ridge parameter", Technometrics 21:215-223,
       1979.
    .. [3] Lukas M. A., "Robust generalized cross-validation for choosing the
       regularization parameter", Inverse Problems 22:1883-1902, 2006.
    .. [4] Hansen P. C., "Rank-Deficient and Discrete Ill-Posed Problems",
       SIAM, 1998 (L-curve, discrepancy principle).

    Examples
    --------
    >>> from functools import partial
    >>> from skperfusion import TikhonovDeconvolver, pair_curves
    >>> from skperfusion.datasets import gamma_variate, simulate_concentration
    >>> tissue, aif = simulate_concentration(
    ...     partial(gamma_variate, t0=10), tr=1.0, cbf=[50.0], mtt=[8.0])
    >>> maps = TikhonovDeconvolver(tr=1.0).fit_transform(pair_curves(tissue, aif))
    >>> maps.shape
    (1, 4)
    """

    _parameter_constraints: dict = {
        **ResidueDeconvolver._parameter_constraints,
        "lambda_selection": [StrOptions({"gcv", "rgcv", "lcurve", "discrepancy", "fixed"})],
        "lambda_fraction": [Interval(Real, 0, None, closed="neither")],
        "penalty": [StrOptions({"identity", "curvature"})],
    }

    def __init__(self, tr=1.0, lambda_selection="rgcv", lambda_fraction=0.1, penalty="curvature",
                 kh=DEFAULT_HEMATOCRIT_FACTOR, rho=DEFAULT_DENSITY, chunk_size=4096):
        super().__init__(tr=tr, kh=kh, rho=rho, chunk_size=chunk_size)
        self.lambda_selection = lambda_selection
        self.lambda_fraction = lambda_fraction
        self.penalty = penalty

    def _residues(self, tissue, aif):
        tissue_spectrum, aif_spectrum = circulant_spectra(tissue, aif, self.tr)
        weights = penalty_weights(aif_spectrum.shape[-1], self.penalty, tissue_spectrum.real.dtype)
        noise = gamma = None
        if self.lambda_selection == "discrepancy":
            noise = baseline_noise_variance(tissue, shared_aif(aif))
        if self.lambda_selection == "rgcv":
            gamma = robust_gcv_gamma(tissue, shared_aif(aif))
        if self.lambda_selection == "fixed":
            lambdas = self.lambda_fraction * np.abs(aif_spectrum).max(axis=-1, keepdims=True)
        elif len(aif_spectrum) == 1:
            lambdas = _select_lambdas(tissue_spectrum, aif_spectrum, self.lambda_selection,
                                      weights, noise, gamma)
        else:
            # Per-sample AIFs: the (voxel, mode, λ) weights are built in blocks
            # that bound the memory.
            lambdas = np.concatenate([
                _select_lambdas(tissue_spectrum[block], aif_spectrum[block],
                                self.lambda_selection, weights,
                                None if noise is None else noise[block],
                                None if gamma is None else gamma[block])
                for start in range(0, len(tissue_spectrum), _PER_SAMPLE_BLOCK)
                for block in [slice(start, start + _PER_SAMPLE_BLOCK)]
            ])
        return residues_from_spectrum(
            _tikhonov_spectrum(tissue_spectrum, aif_spectrum, lambdas, weights))
