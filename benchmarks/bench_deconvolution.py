"""Speed and memory of the oSVD, cSVD, sSVD and Tikhonov deconvolvers.

Deconvolves 100,000 voxels x 60 frames (one shared AIF, as in an exam) in
float32 and float64 and prints, per method, the best of a few runs of
``transform`` in wall and in process CPU time (summed over threads, less
distorted by other load on a shared machine), the peak resident memory of
that process (each configuration runs in a fresh subprocess; it includes the
Python, numpy, scikit-learn and torch imports and the 100,000-voxel input)
and the peak memory allocated during one ``transform`` (tracemalloc, output
included), which ``chunk_size`` bounds. "sys s" and "faults" are the kernel
time and minor page faults of the fastest run: memory that the allocator
returned to the system between chunks and touches again (on some virtual
machines they cost as much as a third of the computation, and change from
run to run with the process's allocation history).
Timings depend on the machine and on other load; ``scipy.fft`` uses all cores.

Run: ``python benchmarks/bench_deconvolution.py [n_voxels] [method ...]``
(all methods by default), e.g. ``... 100000 oSVD``.
"""

import functools
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

N_TIMES, TR, REPEATS = 60, 1.0, 3
METHODS = {
    "oSVD": ("OSVDDeconvolver", {}),
    "cSVD": ("OSVDDeconvolver", {"method": "cSVD"}),
    "sSVD": ("OSVDDeconvolver", {"method": "sSVD"}),
    "Tikhonov GCV": ("TikhonovDeconvolver", {"lambda_selection": "gcv"}),
    "Tikhonov L-curve": ("TikhonovDeconvolver", {"lambda_selection": "lcurve"}),
    "Tikhonov fixed": ("TikhonovDeconvolver", {"lambda_selection": "fixed"}),
}


def _curves(n_voxels, dtype):
    from skperfusion import pair_curves
    from skperfusion.datasets import gamma_variate, simulate_concentration

    rng = np.random.default_rng(0)
    cbf = rng.uniform(10.0, 70.0, 500)
    mtt = rng.uniform(2.0, 12.0, 500)
    tissue, aif = simulate_concentration(functools.partial(gamma_variate, t0=10.0, peak=100.0),
                                         TR, cbf, mtt, n_times=N_TIMES)
    tissue = tissue[rng.integers(0, 500, n_voxels)]
    tissue += rng.normal(0.0, 0.05 * tissue.max(), tissue.shape)
    return pair_curves(tissue, aif).astype(dtype)


def _run_one(method, dtype, n_voxels):
    import skperfusion

    name, params = METHODS[method]
    X = _curves(n_voxels, dtype)
    estimator = getattr(skperfusion, name)(tr=TR, **params).fit(X)
    runs = []  # (wall, CPU, sys) seconds and minor faults of each run
    for _ in range(REPEATS):
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        estimator.transform(X)
        wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
        sys_time = after.ru_stime - before.ru_stime
        runs.append((wall, after.ru_utime - before.ru_utime + sys_time, sys_time,
                     after.ru_minflt - before.ru_minflt))
    best, best_cpu = min(run[0] for run in runs), min(run[1] for run in runs)
    _, _, fastest_sys, fastest_faults = min(runs)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    estimator.transform(X)
    transform_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{best:.4f} {best_cpu:.4f} {peak_rss / 1024:.0f} {transform_peak / 2**20:.0f} "
          f"{fastest_sys:.4f} {fastest_faults}")


def main():
    n_voxels = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    methods = sys.argv[2:] or list(METHODS)
    print(f"{n_voxels} voxels x {N_TIMES} frames, shared AIF, best of {REPEATS}")
    print(f"{'method':<18}{'dtype':<9}{'wall s':>8}{'CPU s':>8}{'peak RSS MB':>13}"
          f"{'transform MB':>14}{'sys s':>8}{'faults':>9}")
    for method in methods:
        for dtype in ("float32", "float64"):
            out = subprocess.run(
                [sys.executable, __file__, "--one", method, dtype, str(n_voxels)],
                capture_output=True, text=True, check=True).stdout.split()
            print(f"{method:<18}{dtype:<9}{float(out[0]):>8.3f}{float(out[1]):>8.3f}{out[2]:>13}"
                  f"{out[3]:>14}{float(out[4]):>8.3f}{out[5]:>9}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        _run_one(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
