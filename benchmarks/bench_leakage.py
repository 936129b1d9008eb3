"""Speed of the leakage corrections: BSW and the bidirectional exchange model.

100,000 voxels x 60 frames (one shared AIF, as in an exam; 80 % normal tissue,
20 % leaky tumour, noise at SNR 50) in float32 and float64. Prints, per
method, the best of a few runs (wall and process CPU time) of

- the bare BSW solve (:func:`skperfusion.physics.leakage.bsw_fit`: one
  pseudo-inverse and one matrix product for all voxels; goal <= 0.1 s),
- ``LeakageCorrector.fit`` (reference selection) and ``transform``
  (validation, solve, corrected copy) for both methods.

Timings depend on the machine and on other load.

Run: ``python benchmarks/bench_leakage.py [n_voxels]``.
"""

import functools
import sys
import warnings

import numpy as np
from _timing import best_time

N_TIMES, TR, REPEATS = 60, 1.0, 5


def _curves(n_voxels, dtype):
    from skperfusion.datasets import gamma_variate, simulate_concentration
    from skperfusion.physics import convolve_aif
    from skperfusion.physics.leakage import tofts_kernel

    rng = np.random.default_rng(0)
    aif = functools.partial(gamma_variate, t0=10.0, alpha=3.0, beta=1.5, peak=6.0)
    n_tumour = n_voxels // 5
    cbf = rng.uniform(20.0, 60.0, n_voxels)
    tissue, arterial = simulate_concentration(aif, TR, cbf, rng.uniform(3.0, 6.0, n_voxels),
                                              n_times=N_TIMES, oversample=4)
    tissue *= 44.0
    times = np.arange(N_TIMES) * TR
    ktrans = rng.uniform(0.02, 0.12, n_tumour)[:, None] / 60.0
    leak = convolve_aif(arterial / 0.55, tofts_kernel(times, ktrans, ktrans / 0.3), TR)
    tissue[:n_tumour] -= 26.0 * leak
    tissue += rng.normal(0.0, 0.67, tissue.shape)
    X = np.empty((n_voxels, 2, N_TIMES), dtype=dtype)
    X[:, 0], X[:, 1] = tissue, 7.6 * arterial
    return X


def main(n_voxels=100_000):
    """Print the timing table."""
    print(f"{n_voxels:,} voxels x {N_TIMES} frames, best of {REPEATS} (wall / CPU s)")
    print(f"{'method':<16} {'dtype':<8} {'solve':>15} {'fit':>15} {'transform':>15}")
    for dtype in (np.float32, np.float64):
        X = _curves(n_voxels, dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for method in ("bsw", "bidirectional"):
                print(_row(method, X))


def _row(method, X):
    from skperfusion.physics.leakage import bsw_design_matrix, bsw_fit
    from skperfusion.preprocessing import LeakageCorrector

    corrector = LeakageCorrector(method, tr=TR).fit(X)
    fit = best_time(functools.partial(LeakageCorrector(method, tr=TR).fit, X), REPEATS)
    transform = best_time(functools.partial(corrector.transform, X), REPEATS)
    solve = "-"
    if method == "bsw":
        design = bsw_design_matrix(corrector.reference_curve_, TR)
        tissue = np.ascontiguousarray(X[:, 0])
        wall, cpu = best_time(functools.partial(bsw_fit, tissue, design), REPEATS)
        solve = f"{wall:.3f} / {cpu:.3f}"
    return (f"{method:<16} {X.dtype.name:<8} {solve:>15} {fit[0]:>7.3f} / {fit[1]:.3f} "
            f"{transform[0]:>7.3f} / {transform[1]:.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
