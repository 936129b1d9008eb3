"""Option names of the exam-to-curves step and the PHAE, light enough for the command line.

:class:`~skperfusion.exam.ExamToCurves` and
:class:`~skperfusion.deconvolution.PHAEDeconvolver` validate their
parameters against these; the ``maps``, ``train`` and ``study`` commands
offer them as choices without importing scikit-learn or torch.
"""

AIF_STRATEGIES = ("mask", "auto")
"""``aif``: the ``aif`` mask, or automatic selection of arterial voxels."""

AIF_SCALINGS = ("none", "vof")
"""``aif_scaling``: none, or rescaling to the area of the venous output function."""

LEAKAGE_METHODS = ("none", "bsw", "bidirectional")
"""``leakage``: none, Boxerman-Schmainda-Weisskoff, or bidirectional exchange."""

AIF_FILES = ("aif_mask.nii.gz", "aif.tsv", "aif.png")
"""Files ``maps`` writes about the AIF it used (``aif.png`` only with ``--aif-plot``)."""

NORMALIZED_MAPS = ("rCBF", "rCBV")
"""Maps divided by their NAWM mean (dimensionless), written where a NAWM mask exists."""

RELAXIVITY_MODELS = ("none", "van_osch")
"""``relaxivity``: curves left as ΔR2* (1/s, relative scale), or tissue and blood
converted to concentrations in mM with their own relaxivities (linear in tissue,
quadratic in whole blood after van Osch et al. 2003)."""

PHAE_PRECISIONS = ("float32", "tf32", "bfloat16")
"""``precision`` of the PHAE: the arithmetic of its encoder's convolutions (float32; TF32 on
CUDA; bfloat16 autocast)."""
