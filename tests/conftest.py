"""Test-session settings shared by every module.

One OpenMP/BLAS thread (unless the caller chose otherwise), set before numpy's
BLAS and torch are loaded: the tests' arrays are small, so a second thread
only adds synchronisation, and on a busy 2-core machine it made the
torch-based tests about 1.5 times slower in CPU time (and 1.5 times in wall
time: tests/test_parametric.py and tests/test_exam_estimators.py, 10 s of CPU
against 15 s). Results do not depend on the thread count of the machine
either. Child processes (the gallery examples, the ``skperfusion`` command)
inherit it.
"""

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")


import pytest  # noqa: E402  (after the thread settings, which must precede numpy/torch)


@pytest.fixture(scope="session")
def simulate_cli_cohort(tmp_path_factory):
    """Write a small cohort with ``skperfusion simulate`` (8×8×2 voxels, seed 3); return its path.

    Called as ``simulate_cli_cohort(name, n_subjects)``, ``name`` the folder's stem.
    """
    from skperfusion.cli import main

    def simulate(name, n_subjects):
        root = tmp_path_factory.mktemp(name) / "cohort"
        assert main(["simulate", str(root), "--n-subjects", str(n_subjects), "--shape", "8",
                     "8", "2", "--seed", "3"]) == 0
        return root

    return simulate
