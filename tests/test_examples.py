"""Every gallery example runs to the end.

The examples use small settings of their own, so running them is both the
test and what the documentation build does; each runs in a fresh
interpreter, with a non-interactive matplotlib backend, in a temporary
working directory.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("plot_*.py"))
# Generous per-script limit: a hung example fails instead of stalling CI.
TIMEOUT_S = 120


def test_gallery_is_not_empty():
    assert SCRIPTS, f"no plot_*.py examples in {EXAMPLES}"


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("script", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_example_runs(script, tmp_path):
    # One torch/BLAS thread: the examples' arrays are small, and extra threads
    # only oversubscribe the cores when the suite shares the machine.
    env = {"OMP_NUM_THREADS": "1", **os.environ, "MPLBACKEND": "Agg"}
    completed = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )
    assert completed.returncode == 0, (
        f"{script.name} failed with exit code {completed.returncode}:\n"
        f"{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}"
    )
