"""Pre-processing of DSC signals."""

from .concentration import ConcentrationTransformer, detect_baseline_frames

__all__ = ["ConcentrationTransformer", "detect_baseline_frames"]
