"""Timing shared by the benchmark scripts."""

import subprocess
import sys
import time

# Peak RSS of the command itself: VmHWM of this process image. (ru_maxrss is
# not: Linux carries the forking parent's resident size over the exec into
# it, so a large benchmark process would inflate every child's figure.)
_COMMAND_PROBE = """
import re, resource, sys, time
start = time.perf_counter()
from skperfusion.cli import main
status = main(sys.argv[1:])
wall = time.perf_counter() - start
try:
    with open("/proc/self/status") as status_file:
        peak_kb = int(re.search(r"VmHWM:\\s*(\\d+)", status_file.read()).group(1))
except OSError:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(status, wall, peak_kb)
"""


def best_time(function, repeats):
    """Best wall-clock and process-CPU seconds of ``function()`` over ``repeats`` runs.

    Process CPU time sums all threads and is less distorted by other load on
    a shared machine than the wall-clock time.
    """
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    return best, best_cpu


def run_command(argv, env=None, cwd=None):
    """Run ``skperfusion ARGV`` in a fresh interpreter, measuring wall time and peak memory.

    ``env`` and ``cwd`` are those of the subprocess (the working folder comes
    first on ``sys.path``: run from elsewhere than the repository to import
    skperfusion from ``PYTHONPATH``).

    Returns
    -------
    wall : float
        Seconds from before the CLI import to the end of the command.
    peak_mb : float
        Peak resident memory of the command's process, in MB.

    Raises
    ------
    RuntimeError
        If the command fails, with the end of its stderr.
    """
    result = subprocess.run([sys.executable, "-c", _COMMAND_PROBE, *map(str, argv)],
                            capture_output=True, text=True, check=False, env=env, cwd=cwd)
    lines = result.stdout.split()
    if result.returncode != 0 or len(lines) < 3 or lines[-3] != "0":
        raise RuntimeError(f"skperfusion {' '.join(map(str, argv))} failed:\n"
                           f"{result.stderr[-2000:]}")
    return float(lines[-2]), int(lines[-1]) / 1024
