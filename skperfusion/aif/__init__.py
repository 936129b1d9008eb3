"""The arterial input function: automatic selection, venous scaling, output files.

- :mod:`~skperfusion.aif.selection`: arterial voxels after Mouridsen et
  al. (2006), with saturated arteries recovered and the choice checked
  (:func:`select_aif`), and venous voxels, from voxel curves;
- :mod:`~skperfusion.aif.table`: a user's AIF curve from a table;
- :mod:`~skperfusion.aif.scaling`: AIF partial-volume scaling by a venous
  output function;
- :mod:`~skperfusion.aif.output`: ``aif_mask.nii.gz``, ``aif.tsv`` and
  ``aif.png``, what the user checks.

:class:`~skperfusion.exam.ExamToCurves` (``aif="auto"`` or a table,
``aif_scaling="vof"``) applies them to exams.
"""

from .output import aif_writers, plot_aif
from .scaling import vof_scale
from .selection import (
    AIFQuality,
    AIFSelection,
    arrival_times,
    recover_first_pass,
    saturated_samples,
    select_aif,
    select_arterial_voxels,
    select_venous_voxels,
    voxel_concentrations,
)
from .table import read_aif_table

__all__ = ["AIFQuality", "AIFSelection", "aif_writers", "arrival_times", "plot_aif",
           "read_aif_table", "recover_first_pass", "saturated_samples", "select_aif",
           "select_arterial_voxels", "select_venous_voxels", "vof_scale", "voxel_concentrations"]
