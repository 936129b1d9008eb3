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

import inspect
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
        """Evaluate ``R(t - delay)``, zero before the arrival, with the operations ``ops``.

        Parameters
        ----------
        t : array_like or Tensor
            Time in seconds.
        mtt : array_like or Tensor
            Mean transit time in seconds (> 0), broadcast against ``t``.
        delay : array_like or Tensor
            Bolus arrival delay in seconds, broadcast against ``t``.
        ops : SimpleNamespace
            The operations, ``_array_ops.NUMPY`` or
            :data:`skperfusion.physics.torch_ops.TORCH`; ``t``, ``mtt`` and
            ``delay`` are arrays of that library.
        **parameters : array_like or Tensor
            The extra shape parameters named in :attr:`parameters`
            (dimensionless), e.g. the gamma ``shape``.

        Returns
        -------
        residue : ndarray or Tensor
            Dimensionless residue, of the broadcast shape of the inputs.
        """
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


_DOCS = {
    "lorentzian": ("Lorentzian residue of Fayolle et al. 2025, eq. 4.", "", ""),
    "exponential": ("Mono-exponential residue (one well-mixed compartment).", "", ""),
    "gamma": ("Gamma transit-time residue (Mouridsen et al. 2006).", """
    ``Q`` is the regularised upper incomplete gamma: ``R`` is the survival
    function of gamma-distributed transit times of shape ``k`` and scale
    ``MTT / k``.""", """
    shape : {array}, default=2.0
        Gamma shape parameter ``k`` (> 0), dimensionless; ``k = 1`` is the
        exponential residue, larger shapes give a flatter start and a
        narrower transit-time spread."""),
    "boxcar": ("Boxcar residue (plug flow: every transit time equals MTT).", "", ""),
}


def _family_signature(name):
    """``(t, mtt, delay=0.0, *, <shape parameters>)``: the call signature of a family.

    The shape parameters and their defaults are read from the family's
    ``shape`` function (its arguments after ``s, mtt, ops``).
    """
    parameter = inspect.Parameter
    extra = list(inspect.signature(RESIDUE_FAMILIES[name].shape).parameters.values())[3:]
    return inspect.Signature([
        parameter("t", parameter.POSITIONAL_OR_KEYWORD),
        parameter("mtt", parameter.POSITIONAL_OR_KEYWORD),
        parameter("delay", parameter.POSITIONAL_OR_KEYWORD, default=0.0),
        *(extra_parameter.replace(kind=parameter.KEYWORD_ONLY) for extra_parameter in extra),
    ])


def _family_docstring(name, summary=None, array="array_like", result="ndarray"):
    """The numpydoc docstring of a family's residue function.

    ``summary`` replaces the family's own first line (e.g. for a torch twin);
    ``array`` and ``result`` name the input and output types.
    """
    own_summary, notes, extra = _DOCS[name]
    formula = RESIDUE_FAMILIES[name].formula
    return f"""{summary or own_summary}

    ``R(t) = {formula}`` with ``s = t - delay >= 0``, else 0;
    ``R(delay) = 1`` and ``∫R dt = MTT``. Same as ``RESIDUE_FAMILIES["{name}"]``.{notes}

    Parameters
    ----------
    t : {array}
        Time in seconds.
    mtt : {array}
        Mean transit time in seconds (> 0), broadcast against ``t``.
    delay : {array}, default=0.0
        Bolus arrival delay in seconds, broadcast against ``t``.{extra.format(array=array)}

    Returns
    -------
    residue : {result}
        Dimensionless residue.
    """


def _public(name):
    family = RESIDUE_FAMILIES[name]

    def function(t, mtt, delay=0.0, **parameters):
        return family(t, mtt, delay, **parameters)

    function.__name__ = function.__qualname__ = f"{name}_residue"
    function.__signature__ = _family_signature(name)
    function.__doc__ = _family_docstring(name)
    return function


lorentzian_residue = _public("lorentzian")
exponential_residue = _public("exponential")
gamma_residue = _public("gamma")
boxcar_residue = _public("boxcar")
