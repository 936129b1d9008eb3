"""Tikhonov-regularised deconvolution (Calamante et al. 2003), per-voxel λ."""

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ..physics import DEFAULT_DENSITY, DEFAULT_HEMATOCRIT_FACTOR
from ._spectral import (
    ResidueDeconvolver,
    circulant_spectra,
    mode_multiplicity,
    residues_from_spectrum,
)

__all__ = ["TikhonovDeconvolver"]

LAMBDA_GRID = np.logspace(-3, 0, 40)
"""Candidate λ for GCV and the L-curve, as fractions of the largest singular value."""

_PER_SAMPLE_BLOCK = 1024


def _tikhonov_spectrum(tissue_spectrum, aif_spectrum, lambdas):
    """Spectrum of ``argmin ||D h - C||² + λ² ||h||²`` (filter factors σ²/(σ²+λ²))."""
    denominator = np.abs(aif_spectrum) ** 2 + lambdas**2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0,
                        np.conj(aif_spectrum) * tissue_spectrum / denominator, 0)


def _mode_sums(power, weights):
    """``Σ_f power[n, f] · weights[r, f, g]``, ``r`` the shared AIF (0) or the voxel."""
    if weights.shape[0] == 1:
        return power @ weights[0]
    return np.einsum("nf,nfg->ng", power, weights)


def _select_lambdas(tissue_spectrum, aif_spectrum, criterion):
    """Per-voxel λ (unit of the singular values) minimising GCV or at the L-curve corner.

    With ``β = DFT(C)``, ``σ = |DFT(TR·Ca)|`` and filter factors
    ``φ = σ² / (σ² + λ²)``, Parseval gives for every candidate λ at once
    ``ρ = ||D h - C||² ∝ Σ (1-φ)² |β|²``, ``η = ||h||² ∝ Σ φ² |β|² / σ²`` and
    the GCV denominator ``trace(I - D D⁺) = Σ (1-φ)``, sums running over all
    ``L`` circulant modes: one matrix product per statistic when the AIF is
    shared. GCV minimises ``ρ / trace²``; the L-curve corner is the point of
    largest signed curvature of ``(log ρ, log η)`` traversed with increasing
    λ (finite differences over the log-spaced grid), among the candidates
    not below the smallest singular value ``σmin``.
    """
    singular2 = np.abs(aif_spectrum) ** 2
    multiplicity = mode_multiplicity(singular2.shape[-1], singular2.dtype)[:, None]
    lambdas = np.sqrt(singular2.max(axis=-1, keepdims=True)) * LAMBDA_GRID.astype(
        singular2.dtype)
    factors = singular2[:, :, None] / (singular2[:, :, None] + lambdas[:, None, :] ** 2)
    power = np.abs(tissue_spectrum) ** 2
    rho = _mode_sums(power, multiplicity * (1 - factors) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        if criterion == "gcv":
            score = rho / np.sum(multiplicity * (1 - factors), axis=1) ** 2
        else:
            inverse_singular2 = np.where(singular2 > 0, 1 / singular2, 0)[:, :, None]
            eta = _mode_sums(power, multiplicity * factors**2 * inverse_singular2)
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


class TikhonovDeconvolver(ResidueDeconvolver):
    """Tikhonov-regularised deconvolution of DSC-MRI curves (Calamante et al. 2003).

    Solves ``min ||D h - C||² + λ² ||h||²`` for the impulse response
    ``h = CBF · R`` in 1/s, i.e. filters the singular values of ``D`` with
    the factors ``σ² / (σ² + λ²)`` instead of truncating them. ``D`` is the
    block-circulant ``TR · Ca`` matrix of Wu et al. 2003 on ``L = 2N``
    zero-padded samples, which makes the estimate insensitive to the bolus
    delay and is diagonalised by the DFT: the filter acts on Fourier modes and
    every voxel is processed by batched FFTs. λ is chosen per voxel by
    generalised cross-validation or at the corner of the L-curve (both
    evaluated for every voxel and every candidate λ at once through Parseval's
    identity, over 40 log-spaced λ from 10⁻³ to 1 times ``σmax``), or fixed
    at ``lambda_fraction · σmax``.

    CBF is the residue peak, CBV comes from the curve areas (Fayolle et al.
    2025, eq. 2), MTT = CBV / CBF and Tmax is the time of the residue peak
    (negative in the second half of the circulant circle). The residue's
    unresolved jump at bolus arrival biases the peak as for SVD, see
    :class:`OSVDDeconvolver`.

    Parameters
    ----------
    tr : float, default=1.0
        Sampling interval (repetition time) in seconds.
    lambda_selection : {"gcv", "lcurve", "fixed"}, default="gcv"
        How λ is chosen per voxel.
    lambda_fraction : float, default=0.1
        λ as a fraction of the largest singular value when
        ``lambda_selection="fixed"``; ignored otherwise.
    kh : float, default=0.73
        Haematocrit correction factor ``kH``, dimensionless.
    rho : float, default=1.04
        Brain density in g/ml.
    chunk_size : int, default=4096
        Voxels processed at once; bounds the memory.

    Attributes
    ----------
    n_features_in_ : int
        ``2 · n_times``.
    feature_names_in_ : ndarray of str
        Input column names, when ``X`` has string column names.
    n_times_ : int
        Number of time points seen in ``fit``.

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

    Examples
    --------
    >>> import functools
    >>> from skperfusion import TikhonovDeconvolver, pair_curves
    >>> from skperfusion.datasets import gamma_variate, simulate_concentration
    >>> tissue, aif = simulate_concentration(
    ...     functools.partial(gamma_variate, t0=10), tr=1.0, cbf=[50.0], mtt=[8.0])
    >>> maps = TikhonovDeconvolver(tr=1.0).fit_transform(pair_curves(tissue, aif))
    >>> maps.shape
    (1, 4)
    """

    _parameter_constraints: dict = {
        **ResidueDeconvolver._parameter_constraints,
        "lambda_selection": [StrOptions({"gcv", "lcurve", "fixed"})],
        "lambda_fraction": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, tr=1.0, lambda_selection="gcv", lambda_fraction=0.1,
                 kh=DEFAULT_HEMATOCRIT_FACTOR, rho=DEFAULT_DENSITY, chunk_size=4096):
        super().__init__(tr=tr, kh=kh, rho=rho, chunk_size=chunk_size)
        self.lambda_selection = lambda_selection
        self.lambda_fraction = lambda_fraction

    def _residues(self, tissue, aif):
        tissue_spectrum, aif_spectrum = circulant_spectra(tissue, aif, self.tr)
        if self.lambda_selection == "fixed":
            lambdas = self.lambda_fraction * np.abs(aif_spectrum).max(axis=-1, keepdims=True)
        elif len(aif_spectrum) == 1:
            lambdas = _select_lambdas(tissue_spectrum, aif_spectrum, self.lambda_selection)
        else:
            # Per-sample AIFs: the (voxel, mode, λ) weights are built in blocks
            # that bound the memory.
            lambdas = np.concatenate([
                _select_lambdas(tissue_spectrum[start:start + _PER_SAMPLE_BLOCK],
                                aif_spectrum[start:start + _PER_SAMPLE_BLOCK],
                                self.lambda_selection)
                for start in range(0, len(tissue_spectrum), _PER_SAMPLE_BLOCK)
            ])
        return residues_from_spectrum(_tikhonov_spectrum(tissue_spectrum, aif_spectrum, lambdas))
