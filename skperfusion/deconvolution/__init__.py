"""Voxel-level deconvolvers sharing one fit/transform API."""

from ._base import PERFUSION_MAPS, BaseDeconvolver
from ._registry import (
    available_deconvolvers,
    get_deconvolver,
    make_deconvolver,
    register_deconvolver,
)
from .phae import PHAEDeconvolver
from .svd import OSVDDeconvolver, oscillation_index
from .tikhonov import TikhonovDeconvolver

__all__ = ["PERFUSION_MAPS", "BaseDeconvolver", "OSVDDeconvolver", "PHAEDeconvolver",
           "TikhonovDeconvolver", "available_deconvolvers", "get_deconvolver",
           "make_deconvolver", "oscillation_index", "register_deconvolver"]
