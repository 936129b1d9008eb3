"""The few array operations the physics formulas are written against.

Each formula of the physics core (residue shapes, the trapezoidal
convolution, eq. 2 and eq. 3) is written once as a function of an operation
namespace ``ops``: :data:`NUMPY` here, ``TORCH`` in
:mod:`skperfusion.physics.torch_ops` (kept there so that numpy users never
import torch). The numpy and the torch results then cannot drift apart.
"""

from types import SimpleNamespace

import numpy as np
import scipy.fft
import scipy.special

__all__ = ["NUMPY", "fft_length"]


def fft_length(n_times):
    """FFT length of a linear (non-circular) convolution of two ``n_times`` curves.

    The smallest fast length ``>= 2 · n_times`` (``scipy.fft.next_fast_len``),
    for numpy and torch alike.

    Parameters
    ----------
    n_times : int
        Samples of each curve.

    Returns
    -------
    n_fft : int
        Transform length.
    """
    return scipy.fft.next_fast_len(2 * n_times, real=True)


NUMPY = SimpleNamespace(
    where=np.where,
    exp=np.exp,
    gammaincc=scipy.special.gammaincc,
    amax=lambda x: np.max(x, axis=-1),
    argmax=lambda x: np.argmax(x, axis=-1),
    sum=lambda x: np.sum(x, axis=-1),
    clamp_min=np.maximum,
    trapezoid=lambda y: np.trapezoid(y, axis=-1),
    rfft=lambda x, n: scipy.fft.rfft(x, n, axis=-1),
    irfft=lambda x, n: scipy.fft.irfft(x, n, axis=-1),
    arange=lambda n, like: np.arange(n),
    nan=np.nan,
)
"""numpy (and scipy) implementations of the operations of the physics formulas."""
