"""DSC exams: the exam model, exam folders on disk, and the exam-to-curves step.

- :mod:`~skperfusion.exam.model`: :class:`Exam` (signal of one or more
  echoes, timing, geometry, masks, ground truth);
- :mod:`~skperfusion.exam.layout`: exam and cohort folders
  (:func:`load_exam`, :func:`load_cohort`, :func:`write_exam`);
- :mod:`~skperfusion.exam.bids`: JSON sidecars and ``participants.tsv``;
- :mod:`~skperfusion.exam.nifti`: NIfTI reading and map output
  (:func:`save_maps`);
- :mod:`~skperfusion.exam.pipeline`: :class:`ExamToCurves`, the one step
  from an exam to the curves of every deconvolver (AIF, AIF scaling,
  signal to concentration, leakage correction, resampling), its result
  :class:`ExamCurves`, and :func:`time_grid`.
"""

from .bids import read_participants
from .layout import load_cohort, load_exam, write_exam
from .model import GRADES, GROUND_TRUTH_NAMES, MAP_UNITS, MASK_NAMES, Exam
from .nifti import save_maps
from .pipeline import ExamAIF, ExamCurves, ExamToCurves, resample_curves, time_grid

__all__ = [
    "GRADES",
    "GROUND_TRUTH_NAMES",
    "MAP_UNITS",
    "MASK_NAMES",
    "Exam",
    "ExamAIF",
    "ExamCurves",
    "ExamToCurves",
    "load_cohort",
    "load_exam",
    "read_participants",
    "resample_curves",
    "save_maps",
    "time_grid",
    "write_exam",
]
