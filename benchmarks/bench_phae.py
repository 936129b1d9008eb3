"""Speed of the PHAE: inference throughput and training time per epoch.

Inference: ``transform`` of ``n_voxels`` simulated voxels (60 and 120
frames) with the paper's encoder width 32 (and a lighter width), for several
inference batch sizes (``chunk_size``), in voxels per second (best of a few
runs). The paper reports 8.4 s per patient on a 16-core Xeon; the target on
a 2-core CPU is >= 7,000 voxels/s at 60 frames (a 100,000-voxel brain in
<= 15 s).

Training: seconds per epoch, extrapolated to 100,000 voxels from one timed
epoch (after a warm-up epoch) on a smaller set, batch 1536 (the paper's).

Weights do not change the cost, so the models are trained for one short
epoch only. Timings depend on the machine, the torch thread count and other
load on it; voxels per CPU-second (process time, all threads) is less
sensitive to other load than the wall-clock rate.

Run: ``python benchmarks/bench_phae.py [--quick] [--threads N] [--device DEV]``.
"""

import argparse
import functools

import numpy as np
import torch
from _timing import best_time

from skperfusion import PHAEDeconvolver, pair_curves
from skperfusion.datasets import gamma_variate, simulate_concentration

TR = 1.0


def _curves(n_voxels, n_times):
    rng = np.random.default_rng(0)
    tissue, aif = simulate_concentration(
        functools.partial(gamma_variate, t0=10.0, peak=100.0), TR,
        rng.uniform(10.0, 70.0, 500), rng.uniform(2.0, 12.0, 500), family="lorentzian",
        n_times=n_times)
    tissue = tissue[rng.integers(0, 500, n_voxels)]
    tissue += rng.normal(0.0, 0.02 * tissue.max(), tissue.shape)
    return pair_curves(tissue, aif).astype(np.float32)


def _inference(X, width, chunk_sizes, repeats, device):
    model = PHAEDeconvolver(tr=TR, max_epochs=1, epoch_voxels=512, batch_size=256,
                            module__width=width, device=device, random_state=0).fit(X[:2048])
    rows = []
    for chunk_size in chunk_sizes:
        model.set_params(chunk_size=chunk_size)
        model.transform(X[:chunk_size])  # warm-up (oneDNN primitive creation)
        best, best_cpu = best_time(lambda: model.transform(X), repeats)
        rows.append((X.shape[2], width, chunk_size, len(X) / best, 1e5 * best / len(X),
                     len(X) / best_cpu))
    return rows


def _training(X, width, device):
    model = PHAEDeconvolver(tr=TR, max_epochs=2, batch_size=1536, module__width=width,
                            device=device, random_state=0).fit(X)
    seconds = model.history_[-1, "dur"]
    return X.shape[2], width, len(X), seconds, seconds * 1e5 / len(X)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer voxels and settings")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n_infer, n_train = (6_000, 3_072) if args.quick else (16_000, 6_144)
    widths = (32,) if args.quick else (16, 32)
    chunk_sizes = (128, 256, 1024) if args.quick else (128, 256, 512, 1024, 4096)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {args.device}")

    print(f"\nInference ({n_infer} voxels, best of 2)")
    print(f"{'frames':>6} {'width':>5} {'batch':>6} {'voxels/s':>10} {'s/100k vox':>10} "
          f"{'voxels/CPU-s':>12}")
    for n_times in (60, 120):
        X = _curves(n_infer, n_times)
        for width in widths:
            for row in _inference(X, width, chunk_sizes, 2, args.device):
                print(f"{row[0]:>6} {row[1]:>5} {row[2]:>6} {row[3]:>10.0f} {row[4]:>10.1f} "
                      f"{row[5]:>12.0f}")

    print(f"\nTraining (one epoch of {n_train} voxels, batch 1536, extrapolated)")
    print(f"{'frames':>6} {'width':>5} {'voxels':>7} {'s/epoch':>8} {'s/epoch/100k vox':>16}")
    for n_times in (60, 120):
        X = _curves(n_train, n_times)
        for width in widths:
            row = _training(X, width, args.device)
            print(f"{row[0]:>6} {row[1]:>5} {row[2]:>7} {row[3]:>8.2f} {row[4]:>16.1f}")


if __name__ == "__main__":
    main()
