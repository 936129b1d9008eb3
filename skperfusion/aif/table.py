"""A user's AIF curve from a table: an external, population or earlier exported AIF."""

from pathlib import Path

import numpy as np

__all__ = ["read_aif_table"]


def read_aif_table(path):
    """Read an AIF curve: two tab-separated columns, time in seconds and concentration.

    The format of the ``aif.tsv`` that ``skperfusion maps`` writes: an
    optional header line (e.g. ``time_s<TAB>concentration``), then one row
    per sample. Times count from the first kept frame of the exam, strictly
    increasing and finite; concentrations are in the unit of the exam's
    curves (``ΔR2*`` in 1/s, or mM with ``relaxivity="van_osch"``).

    Parameters
    ----------
    path : str or path-like
        The table (``.tsv``; commas are accepted too).

    Returns
    -------
    times : ndarray of shape (n_samples,)
        Seconds.
    concentration : ndarray of shape (n_samples,)
        The curve.

    Raises
    ------
    ValueError
        Naming the file: not two numeric columns, fewer than 3 rows,
        non-finite values, times not strictly increasing, or a curve with no
        positive value.
    FileNotFoundError
        When the file does not exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> table = pathlib.Path(tempfile.mkdtemp()) / "aif.tsv"
    >>> _ = table.write_text("time_s\\tconcentration\\n0\\t0\\n1.5\\t4\\n3\\t1\\n")
    >>> times, curve = read_aif_table(table)
    >>> times.tolist(), curve.tolist()
    ([0.0, 1.5, 3.0], [0.0, 4.0, 1.0])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"AIF table {path} does not exist (expected a file with two "
                                "columns: time in s, concentration).")
    lines = [line.replace(",", "\t").split() for line in
             path.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        float(lines[0][0])
    except (IndexError, ValueError):
        lines = lines[1:]  # a header line
    try:
        table = np.array(lines, dtype=float)
    except ValueError as exc:
        raise ValueError(f"AIF table {path}: every row must hold two numbers (time in s, "
                         f"concentration); {exc}.") from None
    if table.ndim != 2 or table.shape[1] != 2 or table.shape[0] < 3:
        raise ValueError(f"AIF table {path}: expected at least 3 rows of 2 columns (time in s, "
                         f"concentration); got shape {table.shape}.")
    times, curve = table.T
    if not np.all(np.isfinite(table)):
        raise ValueError(f"AIF table {path}: non-finite values.")
    if not np.all(np.diff(times) > 0):
        raise ValueError(f"AIF table {path}: times must strictly increase.")
    if not curve.max() > 0:
        raise ValueError(f"AIF table {path}: the curve has no positive value.")
    return times, curve
