"""Pre-processing of DSC signals."""

from .concentration import (
    ConcentrationTransformer,
    DegenerateVoxelWarning,
    detect_baseline_frames,
)
from .leakage import LeakageCorrector, LeakageWarning
from .multi_echo import MultiEchoTransformer

__all__ = ["ConcentrationTransformer", "DegenerateVoxelWarning", "LeakageCorrector",
           "LeakageWarning", "MultiEchoTransformer", "detect_baseline_frames"]
