"""Voxel-level deconvolvers sharing one fit/transform API."""

from ._base import PERFUSION_MAPS, BaseDeconvolver
from .phae import PHAEDeconvolver
from .svd import OSVDDeconvolver, oscillation_index
from .tikhonov import TikhonovDeconvolver

__all__ = ["PERFUSION_MAPS", "BaseDeconvolver", "OSVDDeconvolver", "PHAEDeconvolver",
           "TikhonovDeconvolver", "oscillation_index"]
