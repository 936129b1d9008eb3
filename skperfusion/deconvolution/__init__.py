"""Voxel-level deconvolvers sharing one fit/transform API.

The registry functions are light; the estimators are imported on first use
(PEP 562 module ``__getattr__``) so that looking up method names, as the
command line's ``--help`` does, imports neither scikit-learn nor torch.
"""

from .._lazy import lazy_attributes
from ._registry import (
    available_deconvolvers,
    get_deconvolver,
    make_deconvolver,
    register_deconvolver,
)

_LAZY = {
    "PERFUSION_MAPS": "._base",
    "BaseDeconvolver": "._base",
    "FitBoundsWarning": ".parametric",
    "OSVDDeconvolver": ".svd",
    "oscillation_index": ".svd",
    "PHAEDeconvolver": ".phae",
    "ParametricDeconvolver": ".parametric",
    "TikhonovDeconvolver": ".tikhonov",
}

__all__ = ["PERFUSION_MAPS", "BaseDeconvolver", "FitBoundsWarning", "OSVDDeconvolver",
           "PHAEDeconvolver", "ParametricDeconvolver", "TikhonovDeconvolver",
           "available_deconvolvers", "get_deconvolver",
           "make_deconvolver", "oscillation_index", "register_deconvolver"]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
