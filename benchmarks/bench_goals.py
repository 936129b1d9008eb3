"""The speed and scale goals of issue 12, each measured in one run beside its old value.

Prints one table: figure, the value the issue measured before the work
("issue"), the value measured now ("now"), the goal, and for the oSVD row
the code as it was before the work (``BASELINE`` commit, loaded from git)
and OSIPI ``osipy`` 0.1.4 on the same data in the same run.

osipy needs Python >= 3.12, so it runs in its own interpreter: pass
``--osipy-python PATH`` (or set ``OSIPY_PYTHON``), e.g. after
``python3.12 -m venv /tmp/osipy && /tmp/osipy/bin/pip install osipy==0.1.4``;
without one the column says so. Figures run in fresh subprocesses where the
process matters (start-up, whole commands, peak memory).

Timings depend on the machine and on other load (best of ``--repeats``
runs; a shared machine inflates every figure, the same-run ratios less).

Run: ``python benchmarks/bench_goals.py [--quick] [--skip study,train,...]``.
"""

import argparse
import functools
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import best_time, run_command

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "1fbcb71"
"""The commit the issue's figures were measured on (before issue 12's work)."""

ISSUE = {  # figure -> (value the issue measured, goal)
    "osvd": ("1.35 s (osipy 2.26 s, 1.7x)", "<= 0.3 s, >= 8x osipy"),
    "phae_inference": ("5,200 voxels/s", ">= 9,000 voxels/s"),
    "maps_osvd": ("8.8 s", "<= 3 s"),
    "maps_phae": ("79 s", "<= 15 s"),
    "help": ("6.9 s", "<= 1 s"),
    "phae_epoch": ("~80 s", "<= 30 s"),
    "train": ("704 s", "<= 60 s"),
    "study": ("258 s", "<= 150 s"),
    "memory": ("993 MB", "<= 1 GB"),
}
TR = 1.0

_OSIPY_PROBE = """
import sys, time
import numpy as np
from osipy.dsc.deconvolution.svd import deconvolve_oSVD
data = np.load(sys.argv[1])
tissue, aif, repeats = data["tissue"], data["aif"], int(sys.argv[2])
times = np.arange(tissue.shape[1]) * float(sys.argv[3])
best, best_cpu = float("inf"), float("inf")
for _ in range(repeats):
    start, start_cpu = time.perf_counter(), time.process_time()
    deconvolve_oSVD(tissue, aif, times)
    best = min(best, time.perf_counter() - start)
    best_cpu = min(best_cpu, time.process_time() - start_cpu)
print(best, best_cpu)
"""

def _osvd_curves(n_voxels, n_times=60):
    from skperfusion.datasets import gamma_variate, simulate_concentration

    rng = np.random.default_rng(0)
    tissue, aif = simulate_concentration(functools.partial(gamma_variate, t0=10.0, peak=100.0),
                                         TR, rng.uniform(10, 70, 500), rng.uniform(2, 12, 500),
                                         n_times=n_times)
    tissue = tissue[rng.integers(0, 500, n_voxels)]
    tissue += rng.normal(0.0, 0.05 * tissue.max(), tissue.shape)
    return tissue, aif


def _baseline_osvd():
    """``OSVDDeconvolver`` of the ``BASELINE`` commit (None where git cannot show it)."""
    try:
        source = subprocess.run(["git", "-C", str(ROOT), "show",
                                 f"{BASELINE}:skperfusion/deconvolution/svd.py"],
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as file:
        file.write(source)
    spec = importlib.util.spec_from_file_location("skperfusion.deconvolution._svd_baseline",
                                                  file.name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    os.unlink(file.name)
    return module.OSVDDeconvolver


def bench_osvd(n_voxels, repeats, osipy_python):
    from skperfusion import OSVDDeconvolver, pair_curves

    tissue, aif = _osvd_curves(n_voxels)
    X = pair_curves(tissue, aif)
    now = OSVDDeconvolver(tr=TR).fit(X)
    row = {"now": best_time(lambda: now.transform(X), repeats)}
    old_class = _baseline_osvd()
    if old_class is not None:
        old = old_class(tr=TR).fit(X)
        row["old code"] = best_time(lambda: old.transform(X), repeats)
        same = np.allclose(old.transform(X), now.transform(X), rtol=1e-12, equal_nan=True)
        row["same maps"] = "identical" if same else "differ"
    if osipy_python:
        with tempfile.TemporaryDirectory() as tmp:
            np.savez(Path(tmp) / "curves.npz", tissue=tissue, aif=aif)
            result = subprocess.run([osipy_python, "-c", _OSIPY_PROBE,
                                     str(Path(tmp) / "curves.npz"), str(repeats), str(TR)],
                                    capture_output=True, text=True, check=False)
        if result.returncode == 0:
            row["osipy"] = tuple(map(float, result.stdout.split()[-2:]))
        else:
            row["osipy error"] = result.stderr.strip().splitlines()[-1:]
    return row


def bench_phae(repeats):
    import torch
    from bench_phae import _curves, _inference, _training

    torch.set_num_threads(os.cpu_count() or 1)
    X = _curves(16_000, 60)
    # Rows (frames, width, batch, encoder, voxels/s, voxels/CPU-s); the
    # "unfolded" encoder is the inference path before the work, same run.
    rows = _inference(X, 32, (256, 1024), repeats, "cpu")
    now = max(row[4] for row in rows if not row[3].startswith("unfolded"))
    before = max((row[4] for row in rows if row[3].startswith("unfolded")), default=None)
    epoch = _training(_curves(6_144, 60), 32, "cpu")[4]
    return now, before, epoch


def bench_help(repeats):
    def once():
        subprocess.run([sys.executable, "-c", "import sys\nfrom skperfusion.cli import main\n"
                        "sys.exit(main(['--help']))"], check=True, capture_output=True)

    return best_time(once, repeats)[0]


def _simulated_exam(folder, shape, n_times, tiles=(1, 1, 1)):
    """A simulated HGG exam with ``n_times`` frames, optionally tiled to a larger volume."""
    from skperfusion.datasets import draw_subject_parameters, simulate_exam
    from skperfusion.exam import Exam, write_exam

    seed = 0
    while draw_subject_parameters("HGG", np.random.default_rng(seed))["n_times"] != n_times:
        seed += 1
    exam = simulate_exam("sub-big", "HGG", shape=shape, snr=30.0, random_state=seed)
    if tiles != (1, 1, 1):
        exam = Exam(signal=np.tile(exam.signal, (*tiles, 1)), te=exam.te, tr=exam.tr,
                    affine=exam.affine @ np.diag([1 / t for t in tiles] + [1.0]),
                    masks={k: np.tile(m, tiles) for k, m in exam.masks.items()},
                    subject_id="sub-big", n_skip=exam.n_skip)
    write_exam(exam, folder)
    return exam


def bench_maps(tmp, quick, repeats):
    from skperfusion import PerfusionMapper
    from skperfusion.deconvolution import PHAEDeconvolver

    shape = (48, 48, 10) if quick else (96, 96, 20)
    exam = _simulated_exam(tmp / "sub-big", shape, 60)
    n_brain = int(exam.masks["brain"].sum())
    walls = {}
    for method in ("osvd", "phae"):
        argv = ["maps", tmp / "sub-big", "--out", tmp / f"maps_{method}", "--overwrite",
                "--method", method]
        if method == "phae":  # weights do not change the cost: one short epoch
            model = tmp / "phae.pt"
            phae = PHAEDeconvolver(max_epochs=1, epoch_voxels=2048, batch_size=512,
                                   random_state=0)
            PerfusionMapper(phae, max_train_voxels=4096, random_state=0).fit([exam]) \
                .deconvolver_.save(model)
            argv += ["--model", model]
        walls[method] = min(run_command(argv)[0] for _ in range(repeats))
    return shape, n_brain, walls


def bench_memory(tmp, quick):
    tiles = (4, 4, 3) if quick else (8, 8, 5)
    exam = _simulated_exam(tmp / "sub-mem", (16, 16, 4), 120, tiles)
    _, peak = run_command(["maps", tmp / "sub-mem", "--out", tmp / "maps_mem", "--overwrite"])
    return exam.signal.shape, peak


def bench_train(tmp, quick):
    cohort = tmp / "cohort6"
    run_command(["simulate", cohort, "--n-subjects", "6", "--seed", "1"])
    argv = ["train", cohort, tmp / "train.pt", "--overwrite"]
    if quick:
        argv += ["--epochs", "2"]
    return run_command(argv)[0]


def bench_study(tmp, quick):
    argv = ["study", "--demo", "--out", tmp / "study", "--overwrite"]
    if quick:
        argv += ["--n-subjects", "12", "--n-boot", "200", "--snrs", "30", "10"]
    return run_command(argv)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller data everywhere (the figures are then not the goals')")
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs")
    parser.add_argument("--osipy-python", default=os.environ.get("OSIPY_PYTHON"),
                        help="Python >= 3.12 with osipy installed (default $OSIPY_PYTHON)")
    parser.add_argument("--skip", default="",
                        help="comma-separated figures to skip: " + ",".join(ISSUE))
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    rows = []

    def add(key, figure, now):
        rows.append((figure, ISSUE[key][0], now, ISSUE[key][1]))
        print(f"  measured {figure}: {now}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if "osvd" not in skip:
            n = 20_000 if args.quick else 100_000
            r = bench_osvd(n, args.repeats, args.osipy_python)
            def seconds(key):
                (wall, cpu), (now_wall, now_cpu) = r[key], r["now"]
                return (f"{wall:.3f} s, CPU {cpu:.3f} s" if key == "now" else
                        f"{wall:.3f} s ({wall / now_wall:.1f}x), CPU {cpu:.3f} s "
                        f"({cpu / now_cpu:.1f}x)")

            parts = [seconds("now")]
            if "old code" in r:
                parts.append(f"old code {seconds('old code')}, maps {r['same maps']}")
            if "osipy" in r:
                parts.append(f"osipy {seconds('osipy')}")
            else:
                parts.append("osipy not run: " + (str(r.get("osipy error")) if args.osipy_python
                                                  else "no --osipy-python (needs Python >= 3.12)"))
            add("osvd", f"oSVD, {n // 1000}k voxels x 60 frames, float64", "; ".join(parts))
        if "phae_inference" not in skip or "phae_epoch" not in skip:
            inference, before, epoch = bench_phae(args.repeats)
            add("phae_inference", "PHAE inference, width 32, 60 frames",
                f"{inference:,.0f} voxels/s" + ("" if before is None else
                                                f" (unfolded encoder, as before: {before:,.0f})"))
            add("phae_epoch", "PHAE training, 100k voxels x 60 frames, one epoch",
                f"{epoch:.1f} s (extrapolated from 6,144 voxels)")
        if "maps_osvd" not in skip:
            shape, n_brain, walls = bench_maps(tmp, args.quick, args.repeats)
            label = f"`maps` wall, {'x'.join(map(str, shape))}x60 ({n_brain // 1000}k brain voxels)"
            add("maps_osvd", f"{label}, oSVD", f"{walls['osvd']:.1f} s")
            add("maps_phae", f"{label}, PHAE", f"{walls['phae']:.1f} s")
        if "help" not in skip:
            add("help", "`skperfusion --help`", f"{bench_help(args.repeats):.2f} s")
        if "train" not in skip:
            add("train", "`skperfusion train`, defaults, 6 small subjects"
                + (" (--epochs 2)" if args.quick else ""), f"{bench_train(tmp, args.quick):.0f} s")
        if "study" not in skip:
            add("study", "`skperfusion study --demo`" + (" (12 subjects)" if args.quick else ""),
                f"{bench_study(tmp, args.quick):.0f} s")
        if "memory" not in skip:
            shape, peak = bench_memory(tmp, args.quick)
            add("memory", f"peak RSS, `maps` oSVD on {'x'.join(map(str, shape))}",
                f"{peak:.0f} MB")
    print(f"\n{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} at the end, "
          f"{time.perf_counter() - started:.0f} s in all, best of {args.repeats}\n")
    print("| figure | issue (before) | now (this run) | goal |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
