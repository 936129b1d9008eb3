"""
=====================================================
Real-data workflow: DICOM, automatic AIF, maps
=====================================================

A DSC exam straight from the scanner comes as a DICOM series, without an
arterial mask. This example goes the whole way a user goes with their own
data: DICOM series → exam folder (``skperfusion import-dicom``) → automatic
selection of the arterial voxels (``--aif auto``) → CBF, CBV, MTT, Tmax and
the NAWM-normalised rCBF and rCBV (``skperfusion maps``). A simulated exam
stands in for the patient, so that the chosen arteries and the maps can be
checked against the truth.
"""

# %%
# A DICOM series
# --------------
# :func:`~skperfusion.exam.dicom.write_dicom` writes the simulated signal as
# a DICOM MR series, one file per slice and time point, echo and repetition
# times in milliseconds as scanners store them. With your own data, this is
# the folder exported from the PACS.
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np

from skperfusion.aif import plot_aif
from skperfusion.datasets import simulate_exam
from skperfusion.datasets.cohort import LABELS
from skperfusion.deconvolution import OSVDDeconvolver
from skperfusion.exam import ExamToCurves, load_exam
from skperfusion.exam.dicom import import_dicom, write_dicom
from skperfusion.exam_estimators import PerfusionMapper, ROIRatio, normalized_maps

workdir = Path(tempfile.mkdtemp())
patient, labels = simulate_exam("sub-01", "HGG", shape=(16, 16, 4), snr=50.0,
                                random_state=7, return_labels=True)
files = write_dicom(patient, workdir / "dicom")
print(f"{len(files)} DICOM files")

# %%
# DICOM to an exam folder
# -----------------------
# :func:`~skperfusion.exam.dicom.import_dicom` (``skperfusion import-dicom
# DICOM_DIR EXAM_DIR``) converts the series with dcm2niix into
# ``dsc.nii.gz`` and a BIDS sidecar ``dsc.json`` with TE and TR in seconds
# (a multi-echo series gives ``dsc_echo-<n>`` files, one per echo). Masks
# come from elsewhere, a skull-stripping tool for the brain, the radiologist
# for the tumour and NAWM; here we copy the simulator's. There is no
# arterial mask.
exam_dir = workdir / "sub-01"
# DICOM does not say how many leading frames were acquired before the
# magnetisation reached steady state; the protocol does
# (``--non-steady-state-volumes``): they are left out of the baseline.
import_dicom(workdir / "dicom", exam_dir, non_steady_state=patient.n_skip)
sidecar = json.loads((exam_dir / "dsc.json").read_text())
print({key: sidecar[key] for key in ("EchoTime", "RepetitionTime", "FlipAngle",
                                     "NonSteadyStateVolumes")})
# Masks must lie on the DSC grid: they take its affine (a mask on another grid
# is refused, naming both affines).
dsc_affine = nib.load(exam_dir / "dsc.nii.gz").affine
for name in ("brain", "tumor", "nawm"):
    nib.save(nib.Nifti1Image(patient.masks[name].astype(np.uint8), dsc_affine),
             exam_dir / f"{name}_mask.nii.gz")
exam = load_exam(exam_dir, require_aif=False)

# %%
# Automatic AIF
# -------------
# :class:`~skperfusion.exam.ExamToCurves` with ``aif="auto"`` picks arterial
# voxels after Mouridsen et al. (2006): large, smooth first passes, clustered
# by curve shape, the earliest cluster kept, partial-volumed, saturated and
# noisy voxels left out. ``skperfusion maps --aif auto`` writes the AIF
# (``sub-<id>_desc-<method>_aif.tsv`` and ``_aifmask.nii.gz``) and shows it in
# the exam's HTML QC report: look at it before trusting the maps.
curves = ExamToCurves(aif="auto").transform(exam)
arteries = labels == LABELS["artery"]
chosen = curves.aif.voxels
print(f"{chosen.sum()} voxels chosen, {(chosen & arteries).sum()} of them arterial "
      f"({arteries.sum()} arterial voxels in the image)")
plot_aif(curves.aif, exam)

# %%
# Maps, and what does not depend on the AIF's scale
# -------------------------------------------------
# The same step feeds :class:`~skperfusion.exam_estimators.PerfusionMapper`.
# Absolute CBF depends on the height of the AIF, which arterial partial
# volume lowers (``--aif-scaling vof`` rescales it with a vein where one is
# in the image), and on the relaxivities of blood and tissue, which differ
# (``--relaxivity van_osch`` converts each with its own); rCBF, CBF divided
# by its NAWM mean, depends on neither. The grading ratio is the same with
# the automatic and the mask AIF.
mapper = PerfusionMapper(OSVDDeconvolver(), curves=ExamToCurves(aif="auto"))
result = mapper.fit([exam]).transform([exam])[0]
relative = normalized_maps(result)
with_mask = PerfusionMapper(OSVDDeconvolver()).fit([patient]).transform([patient])
print("tumour/NAWM CBF ratio: automatic AIF "
      f"{ROIRatio().transform([result])[0, 0]:.2f}, arterial mask "
      f"{ROIRatio().transform(with_mask)[0, 0]:.2f}, truth {patient.extra['true_cbf_ratio']:.2f}")

z = 1
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), layout="constrained")
panels = [(patient.ground_truth["CBF"], "true CBF (ml/100g/min)"),
          (result.maps["CBF"], "CBF, automatic AIF"), (relative["rCBF"], "rCBF (÷ NAWM mean)")]
for ax, (volume, title) in zip(axes, panels, strict=True):
    # Arteries and the sinus get very high CBF; clip at the 98th percentile.
    image = ax.imshow(volume[:, :, z].T, origin="lower", cmap="magma", vmin=0,
                      vmax=np.nanpercentile(volume, 98))
    ax.contour(chosen[:, :, z].T, levels=[0.5], colors="cyan", linewidths=1)
    ax.set(title=title, xticks=[], yticks=[])
    fig.colorbar(image, ax=ax, shrink=0.8)
fig.suptitle("cyan: automatically chosen arterial voxels")
plt.show()
