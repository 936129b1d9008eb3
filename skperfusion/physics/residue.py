"""Residue functions R(t) of the indicator-dilution theory: one registry for numpy and torch.

Every residue here is normalised so that ``R(0) = 1`` and ``∫_0^∞ R(t) dt = MTT``
(the central volume theorem), and vanishes for ``t < delay`` (bolus delay).
All functions broadcast ``t`` (seconds) against ``mtt`` and ``delay`` (seconds),
so ``t`` of shape ``(n_times,)`` with ``mtt`` of shape ``(n_samples, 1)``
gives residues of shape ``(n_samples, n_times)``.

Each family is written once, as its shape for ``s = t - delay >= 0`` against
an operation namespace (:mod:`skperfusion.physics._array_ops`), in
:data:`RESIDUE_FAMILIES`; the numpy functions below and the torch twins of
:func:`skperfusion.physics.torch_ops.residue_function_torch` both evaluate
that one formula. A new family is one :class:`ResidueFamily` entry.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._array_ops import NUMPY

__all__ = [
    "RESIDUE_FAMILIES",
    "ResidueFamily",
    "boxcar_residue",
    "exponential_residue",
    "gamma_residue",
    "lorentzian_residue",
    "residue_function",
]


@dataclass(frozen=True)
class ResidueFamily:
    """One residue family: its formula, written once for numpy and torch.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"lorentzian"``.
    shape : callable
        ``shape(s, mtt, ops, **parameters)``: ``R`` at the times ``s >= 0``
        after the bolus arrival (seconds), with the operations ``ops``.
    formula : str
        ``R(s)`` in words, for the documentation.
    parameters : tuple of str, default=()
        Names of the extra shape parameters (``("shape",)`` for the gamma).
    differentiable : bool, default=True
        Whether ``R`` is differentiable in MTT and delay, as a decoder that
        is trained by gradient descent (the PHAE) needs.
    """

    name: str
    shape: Callable
    formula: str
    parameters: tuple = ()
    differentiable: bool = True

    def evaluate(self, t, mtt, delay, ops, **parameters):
        """``R(t - delay)``, zero before the arrival, with the operations ``ops``."""
        s = t - delay
        causal = s >= 0
        # Clipping keeps every formula finite (and its gradient clean) before the arrival.
        return ops.where(causal, self.shape(ops.where(causal, s, 0.0), mtt, ops, **parameters),
                         0.0)

    def __call__(self, t, mtt, delay=0.0, **parameters):
        """numpy evaluation, see :func:`residue_function`."""
        parameters = {name: np.asarray(value, dtype=float) for name, value in parameters.items()}
        return self.evaluate(np.asarray(t, dtype=float), np.asarray(mtt), np.asarray(delay),
                             NUMPY, **parameters)


def _lorentzian(s, mtt, ops):
    return 1.0 / (1.0 + (math.pi * s / (2.0 * mtt)) ** 2)


def _exponential(s, mtt, ops):
    return ops.exp(-s / mtt)


def _gamma(s, mtt, ops, shape=2.0):
    return ops.gammaincc(shape, shape * s / mtt)


def _boxcar(s, mtt, ops):
    return ops.where(s < mtt, 1.0, 0.0 * s)  # 0 · s: the dtype of s, for torch too


RESIDUE_FAMILIES = {
    family.name: family
    for family in (
        ResidueFamily("lorentzian", _lorentzian, "1 / (1 + (π s / (2 MTT))²)"),
        ResidueFamily("exponential", _exponential, "exp(-s / MTT)"),
        ResidueFamily("gamma", _gamma, "Q(k, k s / MTT)", parameters=("shape",)),
        ResidueFamily("boxcar", _boxcar, "1 for s < MTT, else 0", differentiable=False),
    )
}
"""Residue families by name, ``name -> ResidueFamily``; calling one evaluates it with numpy."""


def residue_function(family):
    """Return the residue function of a family by name.

    Parameters
    ----------
    family : {"lorentzian", "exponential", "gamma", "boxcar"}
        Residue family, a key of :data:`RESIDUE_FAMILIES`.

    Returns
    -------
    function : ResidueFamily
        Callable ``function(t, mtt, delay=0.0, **parameters)`` returning the
        dimensionless residue ``R(t - delay)`` as an ndarray (t, MTT and delay
        in seconds, broadcast against each other), 0 before the delay.
    """
    try:
        return RESIDUE_FAMILIES[family]
    except KeyError:
        raise ValueError(
            f"Unknown residue family {family!r}; expected one of {sorted(RESIDUE_FAMILIES)}."
        ) from None


def _public(name, summary, notes="", extra=""):
    family = RESIDUE_FAMILIES[name]

    def function(t, mtt, delay=0.0, **parameters):
        return family(t, mtt, delay, **parameters)

    function.__name__ = function.__qualname__ = f"{name}_residue"
    function.__doc__ = f"""{summary}

    ``R(t) = {family.formula}`` with ``s = t - delay >= 0``, else 0;
    ``R(delay) = 1`` and ``∫R dt = MTT``. Same as ``RESIDUE_FAMILIES["{name}"]``.{notes}

    Parameters
    ----------
    t : array_like
        Time in seconds.
    mtt : array_like
        Mean transit time in seconds (> 0), broadcast against ``t``.
    delay : array_like, default=0.0
        Bolus arrival delay in seconds, broadcast against ``t``.{extra}

    Returns
    -------
    residue : ndarray
        Dimensionless residue.
    """
    return function


lorentzian_residue = _public("lorentzian", "Lorentzian residue of Fayolle et al. 2025, eq. 4.")
exponential_residue = _public("exponential", "Mono-exponential residue (one well-mixed "
                              "compartment).")
gamma_residue = _public("gamma", "Gamma transit-time residue (Mouridsen et al. 2006).", """
    ``Q`` is the regularised upper incomplete gamma: ``R`` is the survival
    function of gamma-distributed transit times of shape ``k`` and scale
    ``MTT / k``.""", """
    shape : array_like, default=2.0
        Gamma shape parameter ``k`` (> 0), dimensionless; ``k = 1`` is the
        exponential residue, larger shapes give a flatter start and a
        narrower transit-time spread.""")
boxcar_residue = _public("boxcar", "Boxcar residue (plug flow: every transit time equals MTT).")
