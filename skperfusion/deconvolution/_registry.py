"""Deconvolvers by name: the one registry the CLI, the study and the mappers use.

A new deconvolver registers itself here (``register_deconvolver``) and is
then available as ``skperfusion maps --method NAME``, in the study and in
:class:`~skperfusion.exam_estimators.PerfusionMapper` without further edits.
"""

from dataclasses import dataclass
from importlib import import_module

__all__ = ["DeconvolverSpec", "available_deconvolvers", "get_deconvolver",
           "make_deconvolver", "register_deconvolver"]


@dataclass(frozen=True)
class DeconvolverSpec:
    """How to find and describe one registered deconvolver.

    Parameters
    ----------
    name : str
        Registry name, lower case (``"osvd"``); the ``--method`` value.
    label : str
        Display name in reports and figures (``"oSVD"``).
    target : str
        ``"module:ClassName"`` of the estimator, imported on first use so
        that looking a name up does not import torch.
    trainable : bool
        Whether ``fit`` learns from the curves (the PHAE) rather than only
        validating them. A trainable class must offer ``save(path)`` and a
        class method ``load(path)``: ``skperfusion train`` writes the model,
        ``skperfusion maps --method NAME --model FILE`` reads it back, while
        an untrained method is built with its defaults and the exam's TR.
    """

    name: str
    label: str
    target: str
    trainable: bool = False

    def load(self):
        """Import and return the estimator class."""
        module, _, attribute = self.target.partition(":")
        return getattr(import_module(module), attribute)


_REGISTRY: dict[str, DeconvolverSpec] = {}


def register_deconvolver(name, label, target, *, trainable=False):
    """Register a deconvolver class under a name.

    Parameters
    ----------
    name : str
        Lower-case registry name, e.g. ``"osvd"``.
    label : str
        Display name, e.g. ``"oSVD"``.
    target : str
        ``"package.module:ClassName"``, imported lazily.
    trainable : bool, default=False
        True when ``fit`` trains the estimator on the curves.

    Returns
    -------
    spec : DeconvolverSpec
    """
    if not name or name != name.lower():
        raise ValueError(f"deconvolver names are non-empty and lower case; got {name!r}.")
    spec = DeconvolverSpec(name, label, target, trainable)
    _REGISTRY[name] = spec
    return spec


def available_deconvolvers():
    """Names of the registered deconvolvers, in registration order.

    Returns
    -------
    names : tuple of str
    """
    return tuple(_REGISTRY)


def get_deconvolver(name):
    """The registry entry of a deconvolver.

    Parameters
    ----------
    name : str
        Registry name (case-insensitive).

    Returns
    -------
    spec : DeconvolverSpec

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    key = str(name).lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown deconvolver {name!r}; available: "
                         f"{', '.join(available_deconvolvers())}.")
    return _REGISTRY[key]


def make_deconvolver(name, **params):
    """A new, unfitted deconvolver by registry name.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"osvd"``, ``"tikhonov"``, ``"phae"``.
    **params
        Constructor parameters.

    Returns
    -------
    deconvolver : BaseDeconvolver

    Examples
    --------
    >>> from skperfusion.deconvolution import make_deconvolver
    >>> make_deconvolver("osvd", tr=1.5).tr
    1.5
    """
    return get_deconvolver(name).load()(**params)


register_deconvolver("osvd", "oSVD", "skperfusion.deconvolution.svd:OSVDDeconvolver")
register_deconvolver("tikhonov", "Tikhonov",
                     "skperfusion.deconvolution.tikhonov:TikhonovDeconvolver")
register_deconvolver("phae", "PHAE", "skperfusion.deconvolution.phae:PHAEDeconvolver",
                     trainable=True)
register_deconvolver("parametric", "Parametric",
                     "skperfusion.deconvolution.parametric:ParametricDeconvolver")
