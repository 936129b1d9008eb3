"""The arterial input function: automatic selection, venous scaling, output files.

- :mod:`~skperfusion.aif.selection`: arterial voxels after Mouridsen et
  al. (2006) and venous voxels, from voxel curves;
- :mod:`~skperfusion.aif.scaling`: AIF partial-volume scaling by a venous
  output function;
- :mod:`~skperfusion.aif.output`: ``aif_mask.nii.gz``, ``aif.tsv`` and
  ``aif.png``, what the user checks.

:class:`~skperfusion.exam.ExamToCurves` (``aif="auto"``,
``aif_scaling="vof"``) applies them to exams.
"""

from .output import aif_writers, plot_aif
from .scaling import vof_scale
from .selection import select_arterial_voxels, select_venous_voxels, voxel_concentrations

__all__ = ["aif_writers", "plot_aif", "select_arterial_voxels", "select_venous_voxels",
           "vof_scale", "voxel_concentrations"]
