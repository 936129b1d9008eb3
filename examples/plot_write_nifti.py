"""
==============================
Writing maps to NIfTI
==============================

Perfusion maps are images: they should open in any viewer, on top of the
DSC series they come from. :func:`~skperfusion.exam.save_maps` writes each
map as a NIfTI file with the exam's affine and header geometry, atomically
(a failed run leaves no half-written file). Here we write a simulated exam
in the on-disk layout, load it back as a user would load their own data,
compute its maps and save them.
"""

# %%
# An exam on disk
# ---------------
# :func:`~skperfusion.exam.write_exam` produces the layout that
# :func:`~skperfusion.exam.load_exam` reads: ``dsc.nii.gz`` (4-D signal),
# ``dsc.json`` (TE and TR in seconds) and one ``<name>_mask.nii.gz`` per
# mask (simulated exams add ``gt_<map>.nii.gz`` ground truth).
import json
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np

from skperfusion.datasets import simulate_exam
from skperfusion.deconvolution import OSVDDeconvolver
from skperfusion.derivatives import write_derivatives
from skperfusion.exam import ExamToCurves, load_exam, save_maps, write_exam
from skperfusion.exam_estimators import PerfusionMapper

workdir = Path(tempfile.mkdtemp())
write_exam(simulate_exam("sub-001", grade="LGG", random_state=3), workdir / "sub-001")
print(sorted(path.name for path in (workdir / "sub-001").iterdir()))

# %%
# Load, map, save
# ---------------
# The deconvolver works on the curves of the brain voxels;
# :meth:`~skperfusion.exam.Exam.to_volume` puts its four output columns back
# on the image grid, NaN outside the brain.
exam = load_exam(workdir / "sub-001")
X = ExamToCurves().transform(exam, "brain").X
values = OSVDDeconvolver(tr=exam.tr).fit(X).transform(X)
volumes = exam.to_volume(values, "brain")
maps = {name: volumes[..., k] for k, name in enumerate(["CBF", "CBV", "MTT", "Tmax"])}
paths = save_maps(maps, exam, workdir / "maps", prefix="osvd_")
print([path.name for path in paths])

# %%
# The files carry the geometry of the input
# -----------------------------------------
# Same affine as ``dsc.nii.gz``, 3-D, float32, NaN outside the brain; the
# header description records the map and its unit.
dsc = nib.load(workdir / "sub-001" / "dsc.nii.gz")
cbf = nib.load(workdir / "maps" / "osvd_CBF.nii.gz")
print("shape", cbf.shape, "dtype", cbf.get_data_dtype(),
      "| same affine as the DSC:", np.allclose(cbf.affine, dsc.affine))
print("description:", cbf.header["descrip"].item().decode())

fig, axes = plt.subplots(1, 4, figsize=(11, 3), layout="constrained")
for ax, name in zip(axes, maps, strict=True):
    image = nib.load(workdir / "maps" / f"osvd_{name}.nii.gz").get_fdata()
    # Percentile limits: arterial and CSF voxels hold extreme values.
    low, high = np.nanpercentile(image, [2, 98])
    shown = ax.imshow(image[:, :, 1].T, origin="lower", vmin=low, vmax=high)
    ax.set_title(name)
    ax.set_axis_off()
    fig.colorbar(shown, ax=ax, shrink=0.7)
plt.show()

# %%
# As BIDS derivatives, with provenance
# ------------------------------------
# :func:`~skperfusion.derivatives.write_derivatives` writes the maps of a
# :class:`~skperfusion.exam_estimators.PerfusionMapper` the way
# ``skperfusion maps`` does: BIDS-derivative names
# (``sub-001/perf/sub-001_desc-osvd_cbf.nii.gz``), a JSON sidecar per map
# (units, method and parameters, exam-to-curves settings, AIF, input files,
# versions), ``dataset_description.json`` and an HTML QC report.
mapper = PerfusionMapper(OSVDDeconvolver()).fit([exam])
paths = write_derivatives(mapper.transform([exam])[0], workdir / "derivatives", mapper)
names = [str(path.relative_to(workdir / "derivatives")) for path in paths]
print(len(names), "files:", names[0], names[1], "...", *names[-3:])
sidecar = json.loads((workdir / "derivatives" / "sub-001" / "perf"
                      / "sub-001_desc-osvd_cbf.json").read_text())
print(sidecar["Units"], "|", sidecar["Method"]["Label"], "|", sidecar["ExamToCurves"])

# %%
# The command line does the same in one call, for an exam or a whole cohort:
# ``skperfusion maps sub-001 derivatives --method osvd``.
shutil.rmtree(workdir)
