"""Deconvolvers by name: the one registry the CLI, the study and the mappers use.

A new deconvolver registers itself here (``register_deconvolver``) and is
then available as ``skperfusion maps --method NAME``, in the study and in
:class:`~skperfusion.exam_estimators.PerfusionMapper` without further edits.
"""

from dataclasses import dataclass, field
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
    params : dict, default={}
        Constructor parameters that make this method out of the class (a
        variant of another registered method, e.g. ``"phae-gamma"``: the
        PHAE with a gamma residue and a learned delay).
    variant : bool, default=False
        Whether it is an option beyond the default methods: listed by
        :func:`available_deconvolvers` only on request, so that the study
        and the command line's method lists leave it out unless asked.
    """

    name: str
    label: str
    target: str
    trainable: bool = False
    params: dict = field(default_factory=dict)
    variant: bool = False

    def load(self):
        """Import and return the estimator class."""
        module, _, attribute = self.target.partition(":")
        return getattr(import_module(module), attribute)

    def make(self, **params):
        """A new, unfitted estimator: the class with ``self.params`` updated by ``params``."""
        return self.load()(**{**self.params, **params})


_REGISTRY: dict[str, DeconvolverSpec] = {}


def register_deconvolver(name, label, target, *, trainable=False, params=None, variant=False):
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
    params : dict or None, default=None
        Constructor parameters of this method (a variant of a class).
    variant : bool, default=False
        True for an option beyond the default methods, see :class:`DeconvolverSpec`.

    Returns
    -------
    spec : DeconvolverSpec
    """
    if not name or name != name.lower():
        raise ValueError(f"deconvolver names are non-empty and lower case; got {name!r}.")
    spec = DeconvolverSpec(name, label, target, trainable, dict(params or {}), variant)
    _REGISTRY[name] = spec
    return spec


def available_deconvolvers(variants=False):
    """Names of the registered deconvolvers, in registration order.

    Parameters
    ----------
    variants : bool, default=False
        Also list the variants (options beyond the default methods, e.g.
        ``"phae-gamma"``); :func:`get_deconvolver` and
        :func:`make_deconvolver` know them either way.

    Returns
    -------
    names : tuple of str

    Examples
    --------
    >>> from skperfusion.deconvolution import available_deconvolvers
    >>> available_deconvolvers()
    ('osvd', 'tikhonov', 'phae', 'parametric')
    >>> available_deconvolvers(variants=True)[-1]
    'phae-gamma'
    """
    return tuple(name for name, spec in _REGISTRY.items() if variants or not spec.variant)


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
        The registered class built with ``params``.

    Examples
    --------
    >>> from skperfusion.deconvolution import make_deconvolver
    >>> make_deconvolver("osvd", tr=1.5).tr
    1.5
    """
    return get_deconvolver(name).make(**params)


register_deconvolver("osvd", "oSVD", "skperfusion.deconvolution.svd:OSVDDeconvolver")
register_deconvolver("tikhonov", "Tikhonov",
                     "skperfusion.deconvolution.tikhonov:TikhonovDeconvolver")
register_deconvolver("phae", "PHAE", "skperfusion.deconvolution.phae:PHAEDeconvolver",
                     trainable=True)
register_deconvolver("parametric", "Parametric",
                     "skperfusion.deconvolution.parametric:ParametricDeconvolver")
# The PHAE beyond the paper: a gamma residue delayed by a learned bolus arrival (its Tmax).
# MTT is the residue's area, CBV / CBF, as in the simulator's truth (the first moment of
# the delayed transit, delay + MTT, is not). A learned delay trades off against the
# transit: a tissue curve that rises late (dispersion, plug flow) is fitted by a later
# arrival and a shorter MTT, or an earlier one and a longer MTT, nearly equally well. The
# flatter the residue's start (larger shape k), the less of the rise the delay takes, so
# k sets the sign of the MTT bias; a k fitted per voxel is no cure (the reconstruction
# error hardly tells a flat start from a delay). Shape 3 is where the decoder's exact
# optimum and the trained variant had the smallest NAWM MTT bias on the simulator's mix of
# residues, a measured choice (the deconvolvers guide gives the numbers).
register_deconvolver("phae-gamma", "PHAE-gamma", "skperfusion.deconvolution.phae:PHAEDeconvolver",
                     trainable=True,
                     params={"family": "gamma", "gamma_shape": 3.0, "learn_delay": True},
                     variant=True)
