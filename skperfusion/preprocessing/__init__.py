"""Pre-processing of DSC signals."""

from .concentration import ConcentrationTransformer, detect_baseline_frames
from .multi_echo import MultiEchoTransformer

__all__ = ["ConcentrationTransformer", "MultiEchoTransformer", "detect_baseline_frames"]
