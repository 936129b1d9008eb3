"""Voxel-level deconvolvers sharing one fit/transform API."""

from ._base import PERFUSION_MAPS, BaseDeconvolver

__all__ = ["PERFUSION_MAPS", "BaseDeconvolver"]
