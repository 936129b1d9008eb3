"""Option names of the exam-to-curves step, light enough for the command line.

:class:`~skperfusion.exam.ExamToCurves` validates its parameters against
these; the ``maps``, ``train`` and ``study`` commands offer them as
choices without importing scikit-learn.
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
