"""skperfusion: scikit-learn-compatible DSC-MRI perfusion post-processing.

Deconvolvers (oSVD, Tikhonov and the physics-informed autoencoder PHAE of
Fayolle et al. 2025) turning tissue and arterial concentration curves into
CBF (ml/100g/min), CBV (ml/100g), MTT and Tmax (s), a signal-to-concentration
transformer, exam-level tools and the glioma-grading study.
"""

from .curves import pair_curves, split_curves
from .deconvolution import OSVDDeconvolver, PHAEDeconvolver, TikhonovDeconvolver
from .exam import Exam, load_cohort, load_exam, save_maps
from .exam_estimators import PerfusionMapper, ROIRatio
from .grading import CBFRatioGrader
from .preprocessing import ConcentrationTransformer

__version__ = "0.1.0"

__all__ = [
    "CBFRatioGrader",
    "ConcentrationTransformer",
    "Exam",
    "OSVDDeconvolver",
    "PHAEDeconvolver",
    "PerfusionMapper",
    "ROIRatio",
    "TikhonovDeconvolver",
    "__version__",
    "load_cohort",
    "load_exam",
    "pair_curves",
    "save_maps",
    "split_curves",
]
