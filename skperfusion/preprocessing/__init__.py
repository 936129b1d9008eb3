"""Pre-processing of DSC signals."""

from .concentration import ConcentrationTransformer, detect_baseline_frames
from .leakage import LeakageCorrector
from .multi_echo import MultiEchoTransformer

__all__ = ["ConcentrationTransformer", "LeakageCorrector", "MultiEchoTransformer",
           "detect_baseline_frames"]
