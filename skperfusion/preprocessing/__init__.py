"""Pre-processing of DSC signals."""

from .concentration import (
    ConcentrationTransformer,
    DegenerateVoxelWarning,
    detect_baseline_frames,
)
from .leakage import LeakageCorrector
from .multi_echo import MultiEchoTransformer

__all__ = ["ConcentrationTransformer", "DegenerateVoxelWarning", "LeakageCorrector",
           "MultiEchoTransformer", "detect_baseline_frames"]
