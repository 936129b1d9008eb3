"""Files that show the user which AIF an exam was processed with."""

import io

import nibabel as nib
import numpy as np

from .._options import AIF_FILES

__all__ = ["aif_writers", "plot_aif"]


def plot_aif(aif, exam):
    """Figure of the AIF with the mean curve of the candidate voxels.

    Parameters
    ----------
    aif : ExamAIF
        The AIF used (curve in ``aif.unit``, voxels, candidates of an automatic
        selection).
    exam : Exam
        The exam (subject id in the title).

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5), layout="constrained")
    ax = figure.add_subplot()
    n_voxels = int(aif.voxels.sum())
    label = f"AIF: {n_voxels} voxel(s)" + (f", scaled x{aif.scale:.3g}" if aif.scale != 1 else "")
    if aif.candidate_curves is not None:
        low, high = np.percentile(aif.candidate_curves, [10, 90], axis=0)
        ax.fill_between(aif.times, low, high, color="0.8",
                        label=f"{len(aif.candidate_curves)} candidates (10-90 %)")
    ax.plot(aif.times, aif.curve, color="C3", lw=2, label=label)
    ax.set(xlabel="time (s)", ylabel=f"concentration ({aif.unit})",
           title=f"{exam.subject_id}: arterial input function")
    ax.legend(fontsize="small")
    return figure


def aif_writers(aif, exam, prefix="", *, plot=False):
    """Writers of the AIF files, for :func:`~skperfusion._io.atomic_write`.

    ``<prefix>aif_mask.nii.gz`` (the arterial voxels, uint8),
    ``<prefix>aif.tsv`` (columns ``time_s`` and ``concentration``, in
    ``aif.unit``: 1/s, or mM with ``relaxivity="van_osch"``) and, with
    ``plot``, ``<prefix>aif.png`` (:func:`plot_aif`).

    Parameters
    ----------
    aif : ExamAIF
        The AIF used.
    exam : Exam
        The exam (geometry of the mask).
    prefix : str, default=""
        File name prefix.
    plot : bool, default=False
        Also write the PNG. It imports and runs matplotlib (about a second,
        a fifth of ``skperfusion maps`` on a 96 x 96 x 20 exam), hence opt-in
        (``maps --aif-plot``).

    Returns
    -------
    writers : dict of str to callable
    """
    mask_file, table_file, figure_file = (f"{prefix}{name}" for name in AIF_FILES)
    table = io.StringIO()
    np.savetxt(table, np.column_stack([aif.times, aif.curve]), fmt="%.8g", delimiter="\t",
               header="time_s\tconcentration", comments="")
    from ..exam.nifti import mask_image  # here: skperfusion.exam imports this package

    mask = mask_image(aif.voxels, exam)
    writers = {
        mask_file: lambda temp: nib.save(mask, temp),
        table_file: lambda temp: temp.write_text(table.getvalue()),
    }
    if plot:
        figure = plot_aif(aif, exam)
        writers[figure_file] = lambda temp: figure.savefig(temp, dpi=100, format="png")
    return writers
