"""Contrast-agent leakage: exchange kernels, cumulative integrals and the linear fits.

Small pure functions behind :class:`skperfusion.preprocessing.LeakageCorrector`
and the simulator's extravasation model.

- **Tofts exchange** (Tofts et al. 1999): the extravascular, extracellular
  concentration per tissue volume is
  ``C_e(t) = Ktrans ∫_0^t C_p(s) exp(-kep (t - s)) ds`` with
  ``kep = Ktrans / ve``, i.e. the plasma curve convolved with the kernel
  :func:`tofts_kernel`.
- **BSW** (Boxerman, Schmainda & Weisskoff 2006): a leaky voxel's
  ``ΔR2*(t) = K1 · R̄(t) - K2 · ∫_0^t R̄(s) ds`` with ``R̄`` the mean curve of
  non-enhancing voxels; linear in ``(K1, K2)`` with the shared design matrix
  of :func:`bsw_design_matrix`, so all voxels are one least-squares solve
  (:func:`bsw_fit`).
- **Bidirectional exchange** (Bjørnerud, Sorensen, Mouridsen & Emblem 2011):
  the apparent impulse response of a leaky voxel is the vascular one plus an
  exchange term, ``h_app(t) = f · R(t) - K2 · exp(-kep t)``, fitted on the
  late part of the deconvolved residue, where ``f · R`` has decayed; the
  deconvolution uses :func:`convolution_matrix`.
- **T1 weighting** of a spoiled gradient echo, :func:`spgr_signal`: the
  leaked agent raises ``R1`` and hence the signal.
"""

import numpy as np

__all__ = [
    "bsw_design_matrix",
    "bsw_fit",
    "convolution_matrix",
    "cumulative_integral",
    "exchange_fit",
    "spgr_signal",
    "tofts_kernel",
]


def cumulative_integral(curve, tr):
    """Running integral ``∫_0^t x(s) ds`` by the trapezoidal rule, 0 at ``t = 0``.

    Parameters
    ----------
    curve : array_like of shape (..., n_times)
        Samples ``x(t_i)``, ``t_i = i · tr`` (any unit ``u``).
    tr : float
        Sampling interval in seconds.

    Returns
    -------
    integral : ndarray of shape (..., n_times)
        ``∫_0^{t_i} x`` in ``u · s``.

    Examples
    --------
    >>> from skperfusion.physics import cumulative_integral
    >>> cumulative_integral([0.0, 1.0, 1.0, 0.0], 2.0)
    array([0., 1., 3., 4.])
    """
    curve = np.asarray(curve)
    integral = np.zeros(curve.shape, dtype=np.result_type(curve, np.float32))
    np.cumsum(0.5 * tr * (curve[..., 1:] + curve[..., :-1]), axis=-1, out=integral[..., 1:])
    return integral


def tofts_kernel(t, ktrans, kep):
    """Exchange kernel ``Ktrans · exp(-kep · t)`` for ``t >= 0`` (0 before).

    Convolved with the plasma concentration it gives the extravascular,
    extracellular concentration per tissue volume (Tofts et al. 1999).

    Parameters
    ----------
    t : array_like
        Time in seconds.
    ktrans : array_like
        Volume transfer constant in 1/s (1/min ÷ 60), broadcast against ``t``.
    kep : array_like
        Efflux rate constant ``Ktrans / ve`` in 1/s (>= 0), broadcast against ``t``.

    Returns
    -------
    kernel : ndarray
        Impulse response in 1/s.
    """
    t = np.asarray(t, dtype=float)
    return np.where(t >= 0, np.asarray(ktrans) * np.exp(-np.asarray(kep) * np.clip(t, 0, None)),
                    0.0)


def bsw_design_matrix(reference, tr):
    """Design matrix ``[R̄(t), -∫_0^t R̄]`` of the BSW model (Boxerman et al. 2006).

    Parameters
    ----------
    reference : array_like of shape (n_times,)
        Mean ``ΔR2*`` curve of non-enhancing voxels ``R̄`` in 1/s.
    tr : float
        Sampling interval in seconds.

    Returns
    -------
    design : ndarray of shape (n_times, 2)
        Columns for ``K1`` (dimensionless) and ``K2`` (1/s), so that
        ``ΔR2* = design @ [K1, K2]``.
    """
    reference = np.asarray(reference, dtype=float)
    return np.stack([reference, -cumulative_integral(reference, tr)], axis=1)


def bsw_fit(tissue, design):
    """Least-squares BSW coefficients of every voxel at once, with the K2 standard error.

    One pseudo-inverse of the shared ``(n_times, 2)`` design matrix, applied
    to all curves as a single matrix product (no loop over voxels). The
    residual sum of squares comes from the normal equations,
    ``RSS = |y|² - cᵀ (AᵀA) c``, without forming the residuals.

    Parameters
    ----------
    tissue : array_like of shape (n_samples, n_times)
        Tissue ``ΔR2*`` curves in 1/s; rows with NaN give NaN.
    design : array_like of shape (n_times, 2)
        From :func:`bsw_design_matrix`; must have full column rank.

    Returns
    -------
    k1 : ndarray of shape (n_samples,)
        Scale of the reference curve, dimensionless.
    k2 : ndarray of shape (n_samples,)
        Leakage rate in 1/s (> 0: T1-dominant leakage, the curve falls below
        the reference; < 0: T2*-dominant).
    k2_se : ndarray of shape (n_samples,)
        Standard error of ``k2`` in 1/s (residual variance over
        ``n_times - 2`` degrees of freedom).
    """
    tissue = np.asarray(tissue)
    design = np.asarray(design, dtype=float)
    solve = np.linalg.pinv(design).astype(tissue.dtype, copy=False)
    coefficients = tissue @ solve.T
    gram = design.T @ design
    rss = np.einsum("nt,nt->n", tissue, tissue) - np.einsum(
        "ni,ij,nj->n", coefficients, gram.astype(tissue.dtype), coefficients)
    dof = max(design.shape[0] - 2, 1)
    k2_se = np.sqrt(np.clip(rss, 0, None) / dof * np.linalg.pinv(gram)[1, 1])
    return coefficients[:, 0], coefficients[:, 1], k2_se


def convolution_matrix(aif, tr):
    """Lower-triangular matrix of the trapezoidal convolution with one AIF.

    ``convolution_matrix(aif, tr) @ h`` equals
    :func:`skperfusion.physics.convolve_aif` ``(aif, h, tr)``: the same
    discretisation, in the linear (not circulant) form, so a curve that has
    not returned to zero at the end of the series (leakage) is not wrapped
    around.

    Parameters
    ----------
    aif : array_like of shape (n_times,)
        Arterial concentration (any unit).
    tr : float
        Sampling interval in seconds.

    Returns
    -------
    matrix : ndarray of shape (n_times, n_times)
        ``M[i, j] = tr · aif[i - j]`` for ``j <= i`` with half weights on the
        end points ``j = 0`` and ``j = i``; row 0 is zero.
    """
    aif = np.asarray(aif, dtype=float)
    n_times = aif.shape[0]
    lag = np.arange(n_times)[:, None] - np.arange(n_times)[None, :]
    matrix = np.where(lag >= 0, aif[np.clip(lag, 0, None)], 0.0)
    matrix[:, 0] -= 0.5 * aif
    matrix[np.arange(n_times), np.arange(n_times)] -= 0.5 * aif[0]
    matrix[0] = 0.0
    return tr * matrix


def exchange_fit(residue, t, kep_grid):
    """Fit ``-K2 · exp(-kep · t)`` to residue tails, ``kep`` on a grid.

    For each ``kep`` of the grid the amplitude is linear (closed form); the
    ``kep`` with the smallest squared residual wins. All voxels at once.

    Parameters
    ----------
    residue : array_like of shape (n_samples, n_tail)
        Late samples of the apparent impulse responses in 1/s.
    t : array_like of shape (n_tail,)
        Their lags in seconds.
    kep_grid : array_like of shape (n_kep,)
        Candidate efflux rates in 1/s (>= 0).

    Returns
    -------
    k2 : ndarray of shape (n_samples,)
        Exchange amplitude in 1/s (> 0: T1-dominant leakage, the curve falls
        below its vascular part); NaN where ``residue`` has NaN.
    best : ndarray of int, shape (n_samples,)
        Index of the fitted ``kep`` in ``kep_grid``.
    k2_se : ndarray of shape (n_samples,)
        Standard error of ``k2`` in 1/s at the fitted ``kep``.
    """
    residue = np.asarray(residue)
    basis = np.exp(-np.outer(np.asarray(t, dtype=float), kep_grid)).astype(residue.dtype)
    norm = np.einsum("tk,tk->k", basis, basis)
    projection = residue @ basis
    # Residual = |r|² - <r, e>² / |e|²; |r|² is the same for every kep.
    explained = projection**2 / norm
    best = np.argmax(np.nan_to_num(explained), axis=1)
    amplitude = np.take_along_axis(projection, best[:, None], axis=1)[:, 0] / norm[best]
    rss = np.einsum("nt,nt->n", residue, residue) - np.take_along_axis(
        explained, best[:, None], axis=1)[:, 0]
    dof = max(residue.shape[1] - 2, 1)
    k2_se = np.sqrt(np.clip(rss, 0, None) / dof / norm[best])
    return -amplitude, best, k2_se


def spgr_signal(r1, tr, flip_angle):
    """Steady-state spoiled gradient-echo T1 weighting, ``sin α (1 - E1) / (1 - cos α E1)``.

    ``E1 = exp(-TR · R1)``; the proton density and T2* factors are left out
    (they multiply the signal separately).

    Parameters
    ----------
    r1 : array_like
        Longitudinal relaxation rate ``R1 = 1 / T1`` in 1/s.
    tr : float
        Repetition time in seconds.
    flip_angle : float
        Flip angle in degrees.

    Returns
    -------
    weighting : ndarray
        Dimensionless T1 weighting, in ``(0, 1]``.

    Examples
    --------
    >>> from skperfusion.physics import spgr_signal
    >>> round(float(spgr_signal(1 / 1.6, 1.2, 75.0)), 3)
    0.581
    """
    e1 = np.exp(-float(tr) * np.asarray(r1, dtype=float))
    alpha = np.deg2rad(flip_angle)
    return np.sin(alpha) * (1.0 - e1) / (1.0 - np.cos(alpha) * e1)
