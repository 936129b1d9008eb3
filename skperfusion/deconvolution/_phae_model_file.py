"""The PHAE model file: what :meth:`PHAEDeconvolver.save` writes, checked before use.

One torch file, read with ``weights_only=True`` (no code runs on loading),
holding a dict::

    format            "skperfusion.PHAEDeconvolver"
    version           2
    params            {name: None | bool | int | float | str}, get_params()'s plain values
    module            bytes, skorch's save_params(f_params=...) of the module state dict
    history           str, skorch's History as JSON
    n_times           int, time points seen in fit
    feature_names_in  list of 2 * n_times str, or None

:func:`read_model_file` checks this structure and bounds the stored sizes
of the grid before anything is allocated from them: ``n_times`` at most
:data:`MAX_TIMES`, ``tr`` finite and at most :data:`MAX_TR` seconds (a
crafted file with ``n_times = 1e8`` once made ``maps`` allocate 65 GiB).
The parameter values are then validated by the estimator's constraints
(``module__width`` at most :data:`MAX_WIDTH`, so that the network cannot
take hundreds of gigabytes) before the network is built, and the weights
by skorch's ``load_params`` (shapes must match).
"""

import io
import json
import math
import re
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write

__all__ = ["FORMAT", "MAX_TIMES", "MAX_TR", "MAX_WIDTH", "VERSION", "plain_params",
           "read_model_file", "write_model_file"]

FORMAT = "skperfusion.PHAEDeconvolver"
VERSION = 2

MAX_WIDTH = 512
"""Largest ``module__width``: 16 times the paper's 32, 33 M weights (132 MB)."""

MAX_TIMES = 4096
"""Most time points of a model's grid: a DSC series has at most a few hundred frames
(1000 would be 5 minutes at TR 0.3 s)."""

MAX_TR = 60.0
"""Longest sampling interval of a model's grid, in seconds."""

_PLAIN = (type(None), bool, int, float, str)
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


def plain_params(params):
    """The parameters that are plain scalars (numpy scalars and devices converted).

    Parameters
    ----------
    params : dict
        ``get_params()`` of the estimator.

    Returns
    -------
    plain : dict
        ``{name: None | bool | int | float | str}``; other values (callbacks,
        splits, random states) only matter for training and are left out.
    """
    plain = {}
    for name, value in params.items():
        value = value.item() if isinstance(value, np.generic) else value
        value = str(value) if isinstance(value, torch.device) else value
        if isinstance(value, _PLAIN):
            plain[name] = value
    return plain


def write_model_file(path, net, params, n_times, feature_names_in=None):
    """Write a model file, atomically (``skperfusion._io.atomic_write``).

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    net : skorch.NeuralNet
        The trained net (its module state through skorch's ``save_params``).
    params : dict
        ``get_params()`` of the estimator; only the plain scalars are kept.
    n_times : int
        Time points seen in ``fit``.
    feature_names_in : array_like of str or None, default=None
        Column names seen in ``fit``.
    """
    module = io.BytesIO()
    net.save_params(f_params=module)
    payload = {"format": FORMAT, "version": VERSION, "params": plain_params(params),
               "module": module.getvalue(), "history": json.dumps(net.history.to_list()),
               "n_times": int(n_times),
               "feature_names_in": None if feature_names_in is None else list(feature_names_in)}
    path = Path(path)
    atomic_write({path.name: lambda temp: torch.save(payload, temp)}, path.parent)


def _problems(payload):
    """Why ``payload`` is not a model dict of the documented structure (first reasons)."""
    types = {"params": dict, "module": bytes, "history": str, "n_times": int}
    for key, kind in types.items():
        if not isinstance(payload.get(key), kind) or isinstance(payload.get(key), bool):
            yield f"{key!r} is missing or not a {kind.__name__}"
            return
    if not 1 <= payload["n_times"] <= MAX_TIMES:
        yield f"n_times={payload['n_times']} is not in [1, {MAX_TIMES}]"
    for name, value in payload["params"].items():
        if not isinstance(name, str) or not _NAME.match(name):
            yield f"parameter name {name!r} is not a lower-case identifier"
        elif not isinstance(value, _PLAIN):
            yield f"parameter {name!r} is a {type(value).__name__}, not a plain scalar"
    tr = payload["params"].get("tr")
    if isinstance(tr, int | float) and not (math.isfinite(tr) and 0 < tr <= MAX_TR):
        yield f"tr={tr!r} is not a finite number of seconds in (0, {MAX_TR:g}]"
    names = payload.get("feature_names_in")
    if names is not None and (not isinstance(names, list) or len(names) != 2 * payload["n_times"]
                              or not all(isinstance(name, str) for name in names)):
        yield "feature_names_in is not a list of 2 * n_times str"


def read_model_file(path):
    """Read a PHAE model file with ``weights_only=True`` and check its structure.

    Parameters
    ----------
    path : str or os.PathLike
        File written by :meth:`skperfusion.PHAEDeconvolver.save`.

    Returns
    -------
    payload : dict
        The structure of the module docstring.

    Raises
    ------
    ValueError
        Naming the file and what is wrong with it.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch's message may advise weights_only=False: unsafe
        raise ValueError(f"{path} is not a model file written by 'skperfusion train' "
                         f"(PHAEDeconvolver.save): it cannot be read as one "
                         f"({type(error).__name__}).") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a file written by PHAEDeconvolver.save.")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path} is a PHAE model file of version {payload.get('version')!r}; "
                         f"this skperfusion reads version {VERSION}: save the model again.")
    problem = next(_problems(payload), None)
    if problem is not None:
        raise ValueError(f"{path} is not a valid PHAEDeconvolver model: {problem}.")
    return payload
