"""AIF partial-volume scaling by a venous output function (VOF).

A large vein is wider than the voxel and carries all the contrast agent
that entered the brain, so its curve's area equals that of a true AIF
(indicator conservation), whereas an arterial voxel is usually partial-
volumed and its area too small, which inflates absolute CBF and CBV by the
same factor. Rescaling the AIF to the venous area removes that factor.
"""

import numpy as np

__all__ = ["vof_scale"]


def vof_scale(aif, vof, tr):
    """Factor that gives the AIF the area of the venous output function.

    Parameters
    ----------
    aif : array_like of shape (n_times,)
        Arterial concentration curve, 1/s.
    vof : array_like of shape (n_times,)
        Venous concentration curve on the same grid, 1/s.
    tr : float
        Sampling interval in seconds.

    Returns
    -------
    scale : float
        ``∫VOF / ∫AIF``, dimensionless, at least 1.

    Raises
    ------
    ValueError
        When the AIF has no positive area, or the VOF's area is smaller than
        the AIF's (the "vein" is partial-volumed or not a vein: scaling
        would make the AIF smaller, which partial volume never calls for).

    Examples
    --------
    >>> import numpy as np
    >>> from skperfusion.aif import vof_scale
    >>> aif = np.array([0.0, 2.0, 4.0, 2.0, 0.0])
    >>> float(vof_scale(aif, 3 * aif, tr=1.0))
    3.0
    """
    aif, vof = np.asarray(aif, dtype=float), np.asarray(vof, dtype=float)
    aif_area, vof_area = np.sum(aif) * tr, np.sum(vof) * tr
    if not aif_area > 0:
        raise ValueError(f"the AIF has no positive area ({aif_area:.4g} s/s); cannot scale it.")
    if not vof_area >= aif_area:
        raise ValueError(f"the venous output function's area ({vof_area:.4g}) is smaller than "
                         f"the AIF's ({aif_area:.4g}); a vein carries all the contrast agent, "
                         "so check the vof mask (partial-volumed or not venous voxels).")
    return vof_area / aif_area
