"""skperfusion: scikit-learn-compatible DSC-MRI perfusion post-processing.

Deconvolvers (oSVD, Tikhonov, the physics-informed autoencoder PHAE of
Fayolle et al. 2025 and the parametric model fit) turning tissue and
arterial concentration curves into CBF (ml/100g/min), CBV (ml/100g), MTT
and Tmax (s), a signal-to-concentration transformer, exam-level tools and
the glioma-grading study.

The names below are imported on first use (PEP 562 module ``__getattr__``),
so that ``import skperfusion`` and the command line's ``--help`` do not pay
for scikit-learn, nibabel or torch; ``from skperfusion import
OSVDDeconvolver`` works as usual.
"""

from ._lazy import lazy_attributes

__version__ = "0.1.0"

_LAZY = {
    "CBFRatioGrader": ".grading",
    "ConcentrationTransformer": ".preprocessing",
    "Exam": ".exam",
    "OSVDDeconvolver": ".deconvolution.svd",
    "PHAEDeconvolver": ".deconvolution.phae",
    "ParametricDeconvolver": ".deconvolution.parametric",
    "PerfusionMapper": ".exam_estimators",
    "ROIRatio": ".exam_estimators",
    "TikhonovDeconvolver": ".deconvolution.tikhonov",
    "load_cohort": ".exam",
    "load_exam": ".exam",
    "pair_curves": ".curves",
    "save_maps": ".exam",
    "split_curves": ".curves",
}

_SUBPACKAGES = frozenset({"cli", "curves", "datasets", "deconvolution", "exam",
                          "exam_estimators", "grading", "physics", "preprocessing", "study"})

__all__ = sorted([*_LAZY, "__version__"])

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, _SUBPACKAGES)
