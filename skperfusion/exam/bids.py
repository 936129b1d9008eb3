"""BIDS text files of an exam folder: JSON sidecars and ``participants.tsv``.

A sidecar (``dsc.json`` or ``dsc_echo-<n>.json``) holds ``EchoTime`` and
``RepetitionTime`` in seconds and optionally ``FlipAngle`` in degrees. It may
also hold ``"NonSteadyStateVolumes"`` (an skperfusion extension, not a BIDS
field): the number of leading frames acquired before the magnetisation
reached steady state, skipped before the baseline.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .._io import check_path_component
from .model import GRADES

__all__ = ["Sidecar", "read_participants", "read_sidecar", "sidecar_text"]

PARTICIPANTS_FILE = "participants.tsv"
"""Name of a cohort's subject table."""

NON_STEADY_KEY = "NonSteadyStateVolumes"
# TE and TR are in seconds in BIDS; values above these bounds are almost
# certainly milliseconds, a frequent and silent 1000x error.
_MAX_TE_S = 1.0
_MAX_TR_S = 30.0


@dataclass(frozen=True)
class Sidecar:
    """Acquisition parameters read from one JSON sidecar.

    Parameters
    ----------
    echo_time : float
        ``EchoTime`` in seconds.
    repetition_time : float
        ``RepetitionTime`` in seconds.
    n_skip : int
        ``NonSteadyStateVolumes``, leading frames to skip (0 when absent).
    flip_angle : float or None
        ``FlipAngle`` in degrees, None when absent.
    """

    echo_time: float
    repetition_time: float
    n_skip: int = 0
    flip_angle: float | None = None


def _number(sidecar, key, path, who):
    value = sidecar[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        unit = "degrees" if key == "FlipAngle" else "seconds"
        raise ValueError(f"{who}: {key} in {path} must be a positive number of {unit}; "
                         f"got {value!r}.")
    return float(value)


def read_sidecar(path, who):
    """Read and validate the JSON sidecar of a DSC image.

    Parameters
    ----------
    path : path-like
        The ``.json`` file.
    who : str
        Prefix of error messages, e.g. ``"subject sub-001"``.

    Returns
    -------
    sidecar : Sidecar

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Invalid JSON, no or non-positive ``EchoTime``/``RepetitionTime``,
        values that look like milliseconds, a bad ``FlipAngle`` or
        ``NonSteadyStateVolumes``; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{who}: missing sidecar {path} (needs EchoTime and "
                                "RepetitionTime in seconds).")
    try:
        sidecar = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{who}: sidecar {path} is not valid JSON: {exc}") from exc
    if not isinstance(sidecar, dict):
        raise ValueError(f"{who}: sidecar {path} must hold a JSON object.")
    timing = {}
    for key, upper in (("EchoTime", _MAX_TE_S), ("RepetitionTime", _MAX_TR_S)):
        if key not in sidecar:
            raise ValueError(f"{who}: sidecar {path} has no {key!r} (seconds).")
        timing[key] = _number(sidecar, key, path, who)
        if timing[key] > upper:
            raise ValueError(f"{who}: {key}={timing[key]:g} in {path} looks like milliseconds; "
                             "BIDS sidecars give it in seconds.")
    flip_angle = None
    if sidecar.get("FlipAngle") is not None:
        flip_angle = _number(sidecar, "FlipAngle", path, who)
        if flip_angle > 180:
            raise ValueError(f"{who}: FlipAngle={flip_angle:g} in {path} is above 180 degrees.")
    n_skip = sidecar.get(NON_STEADY_KEY, 0)
    if isinstance(n_skip, bool) or not isinstance(n_skip, int) or n_skip < 0:
        raise ValueError(f"{who}: {NON_STEADY_KEY} in {path} must be a non-negative integer; "
                         f"got {n_skip!r}.")
    return Sidecar(timing["EchoTime"], timing["RepetitionTime"], n_skip, flip_angle)


def sidecar_text(echo_time, repetition_time, *, n_skip=0, flip_angle=None):
    """JSON text of a DSC sidecar.

    Parameters
    ----------
    echo_time : float
        Echo time in seconds.
    repetition_time : float
        Repetition time in seconds.
    n_skip : int, default=0
        Non-steady-state frames, written as ``NonSteadyStateVolumes`` when > 0.
    flip_angle : float or None, default=None
        Flip angle in degrees, written as ``FlipAngle`` when given.

    Returns
    -------
    text : str
        Indented JSON with a final newline.
    """
    sidecar = {"EchoTime": float(echo_time), "RepetitionTime": float(repetition_time)}
    if flip_angle is not None:
        sidecar["FlipAngle"] = float(flip_angle)
    if n_skip:
        sidecar[NON_STEADY_KEY] = int(n_skip)
    return json.dumps(sidecar, indent=2) + "\n"


PARTICIPANT_ID_PATTERN = r"sub-[A-Za-z0-9]+"
"""Form of a ``participant_id`` (BIDS): also the name of the subject's folder."""


def read_participants(root):
    """Read ``participants.tsv`` of a cohort folder.

    Parameters
    ----------
    root : str or path-like
        Cohort folder.

    Returns
    -------
    participants : pandas.DataFrame
        One row per subject; ``participant_id`` as str, ``grade`` as str or
        None (``n/a`` and empty cells), other columns as parsed by pandas.

    Raises
    ------
    ValueError
        Among others, a ``participant_id`` that is not one folder name of
        the BIDS form ``sub-<label>`` (``label`` letters and digits), such as
        ``../outside/evil`` or an absolute path; the message names its row.
    """
    path = Path(root) / PARTICIPANTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"cohort {root}: missing {path}.")
    try:
        table = pd.read_csv(path, sep="\t", dtype={"participant_id": str, "grade": str},
                            na_values=["n/a"], keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"cohort {root}: cannot parse {path}: {exc}") from exc
    for column in ("participant_id", "grade"):
        if column not in table.columns:
            raise ValueError(f"cohort {root}: {path} has no {column!r} column.")
    if table["participant_id"].isna().any() or table["participant_id"].duplicated().any():
        raise ValueError(f"cohort {root}: {path} has empty or duplicated participant_id values.")
    for row, subject in enumerate(table["participant_id"], start=1):
        check_path_component(subject, what=f"participant_id in row {row} of {path}",
                             pattern=PARTICIPANT_ID_PATTERN)
    table["grade"] = table["grade"].astype(object).where(table["grade"].notna(), None)
    for subject, grade in zip(table["participant_id"], table["grade"], strict=True):
        if grade is not None and grade not in GRADES:
            raise ValueError(f"subject {subject}: unknown grade {grade!r} in {path}; expected "
                             f"one of {GRADES}.")
    return table
