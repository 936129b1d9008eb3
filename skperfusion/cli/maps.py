"""``skperfusion maps``: CBF, CBV, MTT and Tmax NIfTI maps for one exam."""

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..deconvolution import OSVDDeconvolver, PHAEDeconvolver, TikhonovDeconvolver
from ..exam import MAP_NAMES, load_exam, save_maps
from ._args import add_command, positive_int

HELP = "compute CBF/CBV/MTT/Tmax maps of one exam with oSVD, Tikhonov or a trained PHAE"
METHODS = ("osvd", "tikhonov", "phae")
DETAILS = (
    "Input: an exam folder with dsc.nii.gz (4-D DSC signal), dsc.json (EchoTime, "
    "RepetitionTime in seconds) and aif_mask.nii.gz / brain_mask.nii.gz. The AIF is the "
    "mean arterial signal; signals become concentrations C = -ln(S/S0)/TE. Output: "
    "CBF.nii.gz (ml/100g/min), CBV.nii.gz (ml/100g), MTT.nii.gz (s), Tmax.nii.gz (s; NaN "
    "where the method gives none) with the input's affine, NaN outside the mask, written "
    "atomically."
)


def register(subparsers):
    """Add the ``maps`` sub-command.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
    """
    parser = add_command(subparsers, "maps", HELP, DETAILS, run)
    parser.add_argument("exam_dir", help="exam folder (sub-<id>)")
    parser.add_argument("out_dir", help="output folder for the maps")
    parser.add_argument("--method", choices=METHODS, default="osvd",
                        help="deconvolution method; phae needs --model")
    parser.add_argument("--model", help="PHAE model file written by 'skperfusion train'")
    parser.add_argument("--mask", default="brain", choices=("brain", "tumor", "nawm"),
                        help="voxels to map")
    parser.add_argument("--chunk-size", type=positive_int, default=20_000,
                        help="voxels deconvolved at a time (bounds memory)")
    parser.add_argument("--prefix", default="", help="output file name prefix")
    parser.add_argument("--overwrite", action="store_true", help="replace existing maps")


def make_deconvolver(method, exam, model=None):
    """Deconvolver and time grid for an exam.

    Parameters
    ----------
    method : {"osvd", "tikhonov", "phae"}
        Method name.
    exam : Exam
        The exam (its TR sets the oSVD / Tikhonov sampling interval).
    model : str or path-like, optional
        Saved PHAE (required for ``"phae"``).

    Returns
    -------
    deconvolver : BaseDeconvolver
        Ready to ``fit``/``transform`` (PHAE already trained).
    time_grid : tuple (tr, n_times) or None
        Grid the curves must be resampled to (the PHAE's training grid).
    """
    if method != "phae":
        if model is not None:
            raise ValueError(f"--model is only used with --method phae, not {method}.")
        cls = OSVDDeconvolver if method == "osvd" else TikhonovDeconvolver
        return cls(tr=exam.tr), None
    if model is None:
        raise ValueError("--method phae needs --model, a file written by 'skperfusion train'.")
    if not Path(model).is_file():
        raise FileNotFoundError(f"PHAE model file {model} does not exist.")
    deconvolver = PHAEDeconvolver.load(model)
    return deconvolver, (deconvolver.tr, deconvolver.n_times_)


def compute_maps(exam, deconvolver, *, mask="brain", time_grid=None, chunk_size=20_000,
                 progress=False):
    """Perfusion maps of one exam, deconvolving chunks of voxels.

    Parameters
    ----------
    exam : Exam
        The exam.
    deconvolver : BaseDeconvolver
        Stateless (oSVD, Tikhonov) or already trained (PHAE) deconvolver.
    mask : str, default="brain"
        Voxels to map.
    time_grid : tuple (tr, n_times) or None, default=None
        Resample the curves to this grid first (see :meth:`Exam.curves`).
    chunk_size : int, default=20000
        Voxels per chunk.
    progress : bool, default=False
        Show a progress bar.

    Returns
    -------
    maps : dict of str to ndarray of shape (X, Y, Z)
        ``CBF`` (ml/100g/min), ``CBV`` (ml/100g), ``MTT`` (s), ``Tmax`` (s),
        NaN outside ``mask``.
    """
    X = exam.curves(mask, time_grid=time_grid)
    if not hasattr(deconvolver, "n_times_"):
        deconvolver.fit(X[:1])
    values = np.empty((X.shape[0], len(MAP_NAMES)))
    starts = range(0, X.shape[0], chunk_size)
    if progress:
        starts = tqdm(starts, desc=f"{exam.subject_id} maps", unit="chunk")
    for start in starts:
        values[start:start + chunk_size] = deconvolver.transform(X[start:start + chunk_size])
    volumes = exam.to_volume(values, mask)
    return {name: volumes[..., k] for k, name in enumerate(MAP_NAMES)}


def run(args):
    """Compute and save the maps described by parsed ``args``."""
    out_dir = Path(args.out_dir)
    existing = [out_dir / f"{args.prefix}{name}.nii.gz" for name in MAP_NAMES]
    existing = [str(path) for path in existing if path.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{existing[0]} exists; pass --overwrite to replace the maps.")
    exam = load_exam(args.exam_dir, require_rois=False)
    deconvolver, time_grid = make_deconvolver(args.method, exam, args.model)
    maps = compute_maps(exam, deconvolver, mask=args.mask, time_grid=time_grid,
                        chunk_size=args.chunk_size, progress=True)
    paths = save_maps(maps, exam, out_dir, prefix=args.prefix)
    print(f"wrote {', '.join(path.name for path in paths)} to {out_dir}")
