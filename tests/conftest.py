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
