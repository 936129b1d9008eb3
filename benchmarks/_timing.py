"""Timing shared by the benchmark scripts."""

import time


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
