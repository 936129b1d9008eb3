"""Speed of the PHAE: inference voxels per second and training seconds per epoch.

Inference: ``transform`` of simulated voxels (60 frames; 120 without
``--quick``) with the paper's encoder width 32, for several inference batch
sizes (``chunk_size``), best of a few runs. In the same run, as a baseline,
the same model with its batch normalisations *not* folded into the
convolutions (evaluation mode, no gradient: the inference path of
skperfusion 0.1 before folding). Goal on a 2-core CPU: >= 9,000 voxels/s at
width 32 and 60 frames (issue 12; 5,200 measured before).

Training: seconds per epoch, extrapolated to 100,000 voxels from one timed
epoch (after a warm-up epoch), batch 1536 (the paper's). Goal <= 30 s on 2
cores (about 80 s measured before).

Weights do not change the cost, so the models are trained for one short
epoch only. Timings depend on the machine, the torch thread count and other
load on it: compare rows of one run, not runs. Voxels per CPU-second
(process time, all threads) is less sensitive to other load.

Run: ``python benchmarks/bench_phae.py [--quick] [--threads N] [--device cuda]``.
"""

import argparse
import functools
from contextlib import nullcontext

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


class _Unfolded:
    """Context in which the PHAE encoder runs its batch normalisations unfolded (baseline)."""

    def __init__(self, model):
        self.module = model.net_.module_

    def __enter__(self):
        self.module._folded_encoder = lambda: self.module.encoder

    def __exit__(self, *exc):
        del self.module._folded_encoder


def _inference(X, width, chunk_sizes, repeats, device):
    model = PHAEDeconvolver(tr=TR, max_epochs=1, epoch_voxels=512, batch_size=256,
                            module__width=width, device=device, random_state=0).fit(X[:2048])
    rows = []
    for chunk_size in chunk_sizes:
        model.set_params(chunk_size=chunk_size)
        for label in ("folded BN", "unfolded (baseline)"):
            context = _Unfolded(model) if label.startswith("unfolded") else nullcontext()
            with context:
                model.transform(X[:chunk_size])  # warm-up (oneDNN primitive creation)
                best, best_cpu = best_time(lambda: model.transform(X), repeats)
            rows.append((X.shape[2], width, chunk_size, label, len(X) / best, len(X) / best_cpu))
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
    gpu = args.device.startswith("cuda")
    n_infer, n_train = (6_000, 3_072) if args.quick else (16_000, 6_144)
    if gpu:
        n_infer, n_train = 20 * n_infer, 20 * n_train
    frames = (60,) if args.quick else (60, 120)
    chunk_sizes = (4096, 16384) if gpu else ((256,) if args.quick else (128, 256, 1024))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {args.device}")

    print(f"\nInference ({n_infer} voxels, width 32, best of 2)")
    print(f"{'frames':>6} {'width':>5} {'batch':>6} {'encoder':>20} {'voxels/s':>10} "
          f"{'voxels/CPU-s':>12}")
    for n_times in frames:
        for row in _inference(_curves(n_infer, n_times), 32, chunk_sizes, 2, args.device):
            print(f"{row[0]:>6} {row[1]:>5} {row[2]:>6} {row[3]:>20} {row[4]:>10.0f} "
                  f"{row[5]:>12.0f}")

    print(f"\nTraining (one epoch of {n_train} voxels, batch 1536, extrapolated)")
    print(f"{'frames':>6} {'width':>5} {'voxels':>7} {'s/epoch':>8} {'s/epoch/100k vox':>16}")
    for n_times in frames:
        row = _training(_curves(n_train, n_times), 32, args.device)
        print(f"{row[0]:>6} {row[1]:>5} {row[2]:>7} {row[3]:>8.2f} {row[4]:>16.1f}")


if __name__ == "__main__":
    main()
