"""BIDS text files of an exam folder: JSON sidecars and ``participants.tsv``.

A sidecar (``dsc.json`` or ``dsc_echo-<n>.json``) holds ``EchoTime`` and
``RepetitionTime`` in seconds and optionally ``FlipAngle`` in degrees. It may
also hold ``"NonSteadyStateVolumes"`` (an skperfusion extension, not a BIDS
field): the number of leading frames acquired before the magnetisation
reached steady state, skipped before the baseline.

Timing outside the plausible ranges of DSC-MRI, :data:`ECHO_TIME_RANGE_S`
(1-120 ms) and :data:`REPETITION_TIME_RANGE_S` (0.3-5 s), which also keep
the echo time below the repetition time, is refused: such values are almost
always unit errors (milliseconds for seconds, a DICOM ``EchoTime`` stored in
seconds). ``allow_unusual_timing=True`` (``--allow-unusual-timing``) accepts
them for data that really are so.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .._io import check_path_component
from .model import GRADES

__all__ = ["ECHO_TIME_RANGE_S", "REPETITION_TIME_RANGE_S", "Sidecar", "check_timing",
           "read_participants", "read_sidecar", "sidecar_text"]

PARTICIPANTS_FILE = "participants.tsv"
"""Name of a cohort's subject table."""

NON_STEADY_KEY = "NonSteadyStateVolumes"
# TE and TR are in seconds in BIDS; values above these bounds are almost
# certainly milliseconds, a frequent and silent 1000x error.
ECHO_TIME_RANGE_S = (0.001, 0.120)
"""Plausible DSC echo times in seconds: gradient-echo 20-50 ms, spin-echo up to about
100 ms, the first echo of a multi-echo (spiral) acquisition down to 2-3 ms."""

REPETITION_TIME_RANGE_S = (0.3, 5.0)
"""Plausible DSC repetition times in seconds (one volume per TR; 1-2 s typical)."""


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
    if (isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
            or not math.isfinite(value)):
        unit = "degrees" if key == "FlipAngle" else "seconds"
        raise ValueError(f"{who}: {key} in {path} must be a finite positive number of {unit}; "
                         f"got {value!r}.")
    return float(value)


def check_timing(echo_time, repetition_time, who, where, *, allow_unusual_timing=False):
    """Refuse an echo or repetition time outside the plausible DSC ranges.

    Parameters
    ----------
    echo_time, repetition_time : float
        TE and TR in seconds.
    who : str
        Prefix of the message, e.g. ``"subject sub-001"``.
    where : str
        Where the values come from, e.g. ``"dsc.json"`` or ``"--tr"``.
    allow_unusual_timing : bool, default=False
        Accept any positive values.

    Raises
    ------
    ValueError
        TE outside :data:`ECHO_TIME_RANGE_S` or TR outside
        :data:`REPETITION_TIME_RANGE_S` (so TE < TR too); the message names
        ``where``, the plausible range and a likely unit error.
    """
    if allow_unusual_timing:
        return
    for key, value, (low, high) in (("EchoTime", echo_time, ECHO_TIME_RANGE_S),
                                    ("RepetitionTime", repetition_time,
                                     REPETITION_TIME_RANGE_S)):
        if value is None or low <= value <= high:
            continue
        hint = ""
        if low <= value / 1000 <= high:
            hint = "; it looks like milliseconds, but BIDS sidecars give it in seconds"
        elif low <= value * 1000 <= high:
            hint = ("; it is 1000 times too small, as when a DICOM stores it in seconds "
                    "instead of milliseconds")
        raise ValueError(f"{who}: {key}={value:g} s in {where} is outside the plausible range "
                         f"of DSC-MRI, {low:g}-{high:g} s{hint}. Pass --allow-unusual-timing "
                         "(allow_unusual_timing=True) if the data really are so.")


def read_sidecar(path, who, *, source=None, allow_unusual_timing=False):
    """Read and validate the JSON sidecar of a DSC image.

    Parameters
    ----------
    path : path-like
        The ``.json`` file.
    who : str
        Prefix of error messages, e.g. ``"subject sub-001"``.
    source : str or None, default=None
        What to call the file in messages; default ``path`` (e.g. the DICOM
        series of a sidecar that dcm2niix wrote into a temporary folder).
    allow_unusual_timing : bool, default=False
        Accept timing outside the plausible DSC ranges (:func:`check_timing`).

    Returns
    -------
    sidecar : Sidecar

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Invalid JSON (nested too deeply, numbers too long), no, non-finite
        or non-positive ``EchoTime``/``RepetitionTime``, timing outside the
        plausible ranges, a bad ``FlipAngle`` or ``NonSteadyStateVolumes``;
        the message names the file.
    """
    path = Path(path)
    name = path if source is None else source
    if not path.is_file():
        raise FileNotFoundError(f"{who}: missing sidecar {name} (needs EchoTime and "
                                "RepetitionTime in seconds).")
    try:
        sidecar = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, too long a number
        raise ValueError(f"{who}: sidecar {name} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise ValueError(f"{who}: sidecar {name} is nested too deeply to be a sidecar.") from None
    if not isinstance(sidecar, dict):
        raise ValueError(f"{who}: sidecar {name} must hold a JSON object.")
    timing = {}
    for key in ("EchoTime", "RepetitionTime"):
        if key not in sidecar:
            raise ValueError(f"{who}: sidecar {name} has no {key!r} (seconds).")
        timing[key] = _number(sidecar, key, name, who)
    check_timing(timing["EchoTime"], timing["RepetitionTime"], who, name,
                 allow_unusual_timing=allow_unusual_timing)
    flip_angle = None
    if sidecar.get("FlipAngle") is not None:
        flip_angle = _number(sidecar, "FlipAngle", name, who)
        if flip_angle > 180:
            raise ValueError(f"{who}: FlipAngle={flip_angle:g} in {name} is above 180 degrees.")
    n_skip = sidecar.get(NON_STEADY_KEY, 0)
    if isinstance(n_skip, bool) or not isinstance(n_skip, int) or n_skip < 0:
        raise ValueError(f"{who}: {NON_STEADY_KEY} in {name} must be a non-negative integer; "
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


def _check_rows(path, root):
    """Refuse a row with more or fewer tab-separated fields than the header."""
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError):  # reported by the parser with its own message
        return
    if not lines:
        return
    width = len(lines[0].split("\t"))
    for row, line in enumerate(lines[1:], start=1):
        fields = len(line.split("\t"))
        if fields != width:
            raise ValueError(f"cohort {root}: row {row} of {path} has {fields} tab-separated "
                             f"fields, the header {width}; fix that row.")


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
    _check_rows(path, root)
    try:
        table = pd.read_csv(path, sep="\t", dtype={"participant_id": str, "grade": str},
                            na_values=["n/a"], keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"cohort {root}: cannot parse {path}: {exc}") from exc
    for column in ("participant_id", "grade"):
        if column not in table.columns:
            raise ValueError(f"cohort {root}: {path} has no {column!r} column.")
    if table.empty:
        raise ValueError(f"cohort {root}: {path} lists no subjects (a header only); add one "
                         "row per subject.")
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
