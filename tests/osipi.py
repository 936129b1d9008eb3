"""The OSIPI CodeCollection DSC reference curves (vendored in ``tests/data``, Apache-2.0)."""

from pathlib import Path

import numpy as np
import pandas as pd

OSIPI_CSV = Path(__file__).parent / "data" / "osipi_dsc_data.csv"
"""14 curves: CNR 200, exponential residues, no delay, rectangle-rule convolutions."""


def load_osipi():
    """The OSIPI DSC curves and their truth.

    Returns
    -------
    X : ndarray of shape (14, 2, 161)
        Tissue and arterial concentration curves (arbitrary unit).
    cbf : ndarray of shape (14,)
        True CBF in ml/100ml/min (computed with kH = ρ = 1).
    cbv : ndarray of shape (14,)
        True CBV in ml/100ml.
    tr : float
        Sampling interval in seconds (1.243 s for every curve).
    """
    table = pd.read_csv(OSIPI_CSV)
    curves = [np.stack([np.array(row.C_tis.split(), dtype=float),
                        np.array(row.C_aif.split(), dtype=float)])
              for row in table.itertuples()]
    return (np.stack(curves), table["cbf"].to_numpy(float), table["cbv"].to_numpy(float),
            float(table["tr"].iloc[0]))


def osipi_passes(estimate, truth, absolute):
    """OSIPI's tolerance: ``|estimate - truth| <= 0.1 · truth + absolute``."""
    return np.abs(estimate - truth) <= 0.1 * truth + absolute
