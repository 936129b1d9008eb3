"""Multi-echo DSC: ΔR2* from the signals of several echoes.

Each echo of a gradient-echo acquisition sees ``S_e(t) = S_e,0 · ε(t) ·
exp(-TE_e · ΔR2*(t))``, where ``ε(t)`` gathers everything shared by the
echoes (T1 shortening by leaked contrast agent, inflow). Taking the log
relative to the baseline, ``y_e(t) = ln(S_e(t)/S_e,0) = ln ε(t) - TE_e ·
ΔR2*(t)`` is linear in ``TE_e``: its slope is ``-ΔR2*`` and the T1 term is
the intercept, so it cancels.
"""

import numpy as np

__all__ = ["delta_r2star_from_echoes"]


def delta_r2star_from_echoes(log_ratio, echo_times):
    """ΔR2* from the log signal ratios of several echoes, free of T1 effects.

    Least-squares slope of ``y_e = ln(S_e/S_e,0)`` against ``TE_e`` with a
    free intercept, ``ΔR2* = -Σ (TE_e - mean TE)(y_e - mean y) / Σ (TE_e -
    mean TE)²``. For two echoes this is exactly ``ΔR2* = ln[(S_1/S_1,0) /
    (S_2/S_2,0)] / (TE_2 - TE_1)``; for three or more, the log-linear fit.

    Parameters
    ----------
    log_ratio : array_like of shape (..., n_echoes, n_times)
        ``ln(S_e(t) / S_e,0)`` per echo (dimensionless), echoes on the
        second-to-last axis.
    echo_times : array_like of shape (n_echoes,)
        Echo times in seconds, at least two distinct ones.

    Returns
    -------
    delta_r2star : ndarray of shape (..., n_times)
        ``ΔR2*(t)`` in 1/s.

    Examples
    --------
    >>> import numpy as np
    >>> from skperfusion.physics import delta_r2star_from_echoes
    >>> te = np.array([0.01, 0.03])
    >>> y = np.log(0.8) - te[:, None] * np.array([[5.0, 10.0]])  # T1 factor 0.8
    >>> delta_r2star_from_echoes(y, te).round(6)
    array([ 5., 10.])
    """
    log_ratio = np.asarray(log_ratio)
    echo_times = np.asarray(echo_times, dtype=float)
    if echo_times.ndim != 1 or echo_times.size < 2 or np.ptp(echo_times) <= 0:
        raise ValueError(f"need at least two distinct echo times; got {echo_times!r}.")
    if log_ratio.ndim < 2 or log_ratio.shape[-2] != echo_times.size:
        raise ValueError(f"log_ratio must have shape (..., {echo_times.size}, n_times); got "
                         f"{log_ratio.shape}.")
    centred = echo_times - echo_times.mean()
    weights = (-centred / np.sum(centred**2)).astype(log_ratio.dtype
                                                     if log_ratio.dtype.kind == "f" else float)
    # Σ_e w_e · y_e: the intercept drops out because the weights sum to zero.
    return np.einsum("e,...et->...t", weights, log_ratio)
