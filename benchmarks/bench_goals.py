"""Issue 23's speed goals, each measured in one run with the code before the work beside it.

Prints one table, the CPU's (default) or the GPU's (``--device cuda``):
figure, the value the issue measured before the work ("issue"), the value
measured now with the current code ("now"), the same figure with the code of
the ``BASELINE`` commit in the same run ("old code", where it can run it),
and the goal.

The old code is a ``git worktree`` of ``BASELINE`` (made in a temporary
folder, removed at the end) imported through ``PYTHONPATH`` in fresh
interpreters: every figure runs in a subprocess, old and new alike, so both
pay the same start-up. Without git history (a copy of the tree) the old-code
column says so.

osipy needs Python >= 3.12, so it runs in its own interpreter: pass
``--osipy-python PATH`` (or set ``OSIPY_PYTHON``), e.g. after
``python3.12 -m venv /tmp/osipy && /tmp/osipy/bin/pip install osipy==0.1.4``;
without one the oSVD row says so.

Timings depend on the machine and on other load (best of ``--repeats``
runs; a shared machine inflates every figure, the same-run ratios less; the
CPU-second figures, all threads of the process, less still).

Run: ``python benchmarks/bench_goals.py [--device cuda] [--quick] [--skip study,...]``.
"""

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from _timing import run_command

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "c1de08a"
"""The commit the issue's figures were measured on (before issue 23's work)."""

CPU_ISSUE = {  # figure -> (value the issue measured, goal); 2-core machine
    "osvd": ("0.31 s vs osipy 1.36 s (4.4x)", ">= 8x osipy"),
    "maps_phae": ("21.6 s (oSVD 2.5 s)", "<= 12 s"),
    "maps_parametric": ("48.9 s, 1.25 GB peak", "<= 15 s, <= 1 GB"),
    "phae_inference": ("10,000 voxels/s", ">= 9,000 voxels/s"),
    "study": ("263 s", "<= 150 s"),
}
GPU_ISSUE = {  # one NVIDIA H200, 16 CPU cores
    "phae_inference": ("0.63-0.83 M voxels/s", ">= 5 M voxels/s"),
    "phae_training": ("~0.13 M voxels/s (65 epochs over 4 M voxels: 250 s)",
                      ">= 1 M voxels/s (< 5 min)"),
    "parametric": ("46 k voxels/s", ">= 1 M voxels/s"),
    "maps": ("impossible (no --device)", "<= 3 s"),
    "study": ("112 s", "<= 40 s"),
}
TR = 1.0
GPU_CHUNK = 65_536
"""Voxels encoded at once by the PHAE on a GPU."""

_PROBE = r"""
import json, sys, time
import numpy as np
what, data_file, repeats, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
X = np.load(data_file)["X"]

def best(function):
    walls, cpus = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return min(walls), min(cpus)

result = {}
if what == "osvd":
    from skperfusion import OSVDDeconvolver
    model = OSVDDeconvolver(tr=1.0).fit(X)
    result["wall"], result["cpu"] = best(lambda: model.transform(X))
elif what == "phae_inference":
    from skperfusion import PHAEDeconvolver
    chunk, precision = sys.argv[5], sys.argv[6]
    model = PHAEDeconvolver(tr=1.0, max_epochs=1, epoch_voxels=512, batch_size=256,
                            device=device, random_state=0).fit(X[:2048])
    if chunk != "default":
        model.set_params(chunk_size=int(chunk))
    if precision != "float32":  # the code before the work has no such parameter
        model.set_params(precision=precision)
    model.transform(X[:model.chunk_size or 256])  # warm-up (kernel selection)
    result["wall"], result["cpu"] = best(lambda: model.transform(X))
    if device != "cpu" or precision != "float32":  # the same weights, float32 on the CPU
        subset = X[:20_000]
        measured = model.transform(subset)
        model.save("model.pt")
        reference = PHAEDeconvolver.load("model.pt", device="cpu").set_params(
            precision="float32").transform(subset)
        finite = np.isfinite(reference[:, :3])
        result["max_rel_diff"] = float(np.max(np.abs(measured[:, :3] - reference[:, :3])[finite]
                                              / np.abs(reference[:, :3])[finite]))
elif what == "phae_training":
    from skperfusion import PHAEDeconvolver
    model = PHAEDeconvolver(tr=1.0, max_epochs=int(sys.argv[5]), batch_size=1536, lr=1e-4,
                            device=device, random_state=0).fit(X)
    durations = model.history_[:, "dur"][1:]  # the first epoch warms up
    result["voxels_per_s"] = len(X) / min(durations)
    result["epoch_s"] = [round(d, 2) for d in model.history_[:, "dur"]]
elif what == "parametric":
    from skperfusion.deconvolution import ParametricDeconvolver
    model = ParametricDeconvolver(tr=1.0, device=device)
    result["wall"], result["cpu"] = best(lambda: model.fit_transform(X))
print(json.dumps(result))
"""

_OSIPY_PROBE = """
import sys, time
import numpy as np
from osipy.dsc.deconvolution.svd import deconvolve_oSVD
X = np.load(sys.argv[1])["X"]
tissue, aif, repeats = X[:, 0], X[0, 1], int(sys.argv[2])
times = np.arange(tissue.shape[1]) * float(sys.argv[3])
best, best_cpu = float("inf"), float("inf")
for _ in range(repeats):
    start, start_cpu = time.perf_counter(), time.process_time()
    deconvolve_oSVD(tissue, aif, times)
    best = min(best, time.perf_counter() - start)
    best_cpu = min(best_cpu, time.process_time() - start_cpu)
print(best, best_cpu)
"""


@contextmanager
def old_code():
    """A worktree of ``BASELINE`` to put on ``PYTHONPATH``; None where git cannot make one."""
    with tempfile.TemporaryDirectory() as name:
        tree = Path(name) / "old"
        made = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree),
                               BASELINE], capture_output=True, text=True, check=False)
        try:
            yield tree if made.returncode == 0 else None
        finally:
            if made.returncode == 0:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(tree)], capture_output=True, check=False)


def _env(tree):
    """Environment importing skperfusion from ``tree`` (the current code for None)."""
    paths = [str(tree or ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def probe(what, X, repeats, device, tree, *extra):
    """Run one ``_PROBE`` figure in a fresh interpreter on the code of ``tree``."""
    with tempfile.TemporaryDirectory() as name:
        np.savez(Path(name) / "curves.npz", X=X)
        result = subprocess.run([sys.executable, "-c", _PROBE, what, str(Path(name) /
                                 "curves.npz"), str(repeats), device, *map(str, extra)],
                                capture_output=True, text=True, check=False, cwd=name,
                                env=_env(tree))
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(result.stdout.splitlines()[-1])


def command(argv, tree, repeats=1):
    """Best wall time (s) and its peak memory (MB) of ``skperfusion ARGV`` on ``tree``'s code."""
    runs = []
    for _ in range(repeats):
        try:
            runs.append(run_command(argv, env=_env(tree), cwd=tempfile.gettempdir()))
        except RuntimeError as error:
            return {"error": str(error).strip().splitlines()[-1]}
    wall, peak = min(runs)
    return {"wall": wall, "peak": peak}


def _curves(n_voxels, n_times=60, noise=0.05):
    """Simulated oSVD/PHAE curves of one shared AIF, ``(n_voxels, 2, n_times)``."""
    from skperfusion import pair_curves
    from skperfusion.datasets import gamma_variate, simulate_concentration

    rng = np.random.default_rng(0)
    tissue, aif = simulate_concentration(functools.partial(gamma_variate, t0=10.0, peak=100.0),
                                         TR, rng.uniform(10, 70, 500), rng.uniform(2, 12, 500),
                                         n_times=n_times)
    tissue = tissue[rng.integers(0, 500, n_voxels)]
    tissue += rng.normal(0.0, noise * tissue.max(), tissue.shape)
    return pair_curves(tissue, aif)


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


def _phae_model(exam, path, tree):
    """A one-epoch PHAE model file of ``exam``'s grid by ``tree``'s code (weights do not
    change the cost; each code reads the files it writes)."""
    code = ("import sys\nfrom skperfusion import PerfusionMapper\n"
            "from skperfusion.deconvolution import PHAEDeconvolver\n"
            "from skperfusion.exam import load_exam\n"
            "phae = PHAEDeconvolver(max_epochs=1, epoch_voxels=2048, batch_size=512, "
            "random_state=0)\n"
            "PerfusionMapper(phae, max_train_voxels=4096, random_state=0)"
            ".fit([load_exam(sys.argv[1])]).deconvolver_.save(sys.argv[2])\n")
    result = subprocess.run([sys.executable, "-c", code, str(exam), str(path)], check=False,
                            cwd=path.parent, env=_env(tree), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"training the PHAE model failed:\n{result.stderr[-2000:]}")


def _seconds(result, reference=None):
    if "error" in result:
        return f"failed: {result['error']}"
    text = f"{result['wall']:.2f} s wall, {result['cpu']:.2f} CPU-s"
    if reference is not None and "error" not in reference:
        text += (f" ({result['wall'] / reference['wall']:.1f}x now's wall, "
                 f"{result['cpu'] / reference['cpu']:.1f}x now's CPU)")
    return text


def _command_text(result):
    if "error" in result:
        return f"failed: {result['error']}"
    return f"{result['wall']:.1f} s, {result['peak']:.0f} MB peak"


def cpu_table(args, tmp, tree, add):
    n_osvd = 20_000 if args.quick else 100_000
    if "osvd" not in args.skip:
        X = _curves(n_osvd)
        now = probe("osvd", X, args.repeats, "cpu", None)
        old = probe("osvd", X, args.repeats, "cpu", tree) if tree else None
        osipy = "osipy not run (no --osipy-python; needs Python >= 3.12)"
        if args.osipy_python:
            np.savez(tmp / "osvd.npz", X=X)
            result = subprocess.run([args.osipy_python, "-c", _OSIPY_PROBE,
                                     str(tmp / "osvd.npz"), str(args.repeats), str(TR)],
                                    capture_output=True, text=True, check=False)
            if result.returncode == 0:
                wall, cpu = map(float, result.stdout.split()[-2:])
                osipy = "osipy 0.1.4 " + _seconds({"wall": wall, "cpu": cpu}, now)
            else:
                osipy = f"osipy failed: {result.stderr.strip().splitlines()[-1:]}"
        add("osvd", f"oSVD, {n_osvd // 1000}k voxels x 60 frames, float64",
            _seconds(now), "" if old is None else _seconds(old, now), osipy)
    if "phae_inference" not in args.skip:
        X = _curves(4_000 if args.quick else 16_000).astype(np.float32)
        def inference(code, precision):
            return probe("phae_inference", X, args.repeats, "cpu", code, "default", precision)

        now, bf16 = inference(None, "float32"), inference(None, "bfloat16")
        old = inference(tree, "float32") if tree else None

        def rate(result):
            if "error" in result:
                return f"failed: {result['error']}"
            text = f"{len(X) / result['wall']:,.0f} voxels/s ({len(X) / result['cpu']:,.0f} " \
                   "per CPU-s)"
            if "max_rel_diff" in result:
                text += f", maps vs float32 max rel. diff {result['max_rel_diff']:.1e}"
            return text

        add("phae_inference", "PHAE inference, width 32, 60 frames, default chunks",
            rate(now), "" if old is None else rate(old), f"precision='bfloat16': {rate(bf16)}")
    exam_figures = [f for f in ("maps_phae", "maps_parametric") if f not in args.skip]
    if "maps_phae" in exam_figures:
        shape = (48, 48, 10) if args.quick else (96, 96, 20)
        exam = _simulated_exam(tmp / "sub-phae", shape, 60)
        base = ["maps", tmp / "sub-phae", "--overwrite", "--method"]
        results = {}
        for i, code in enumerate([None, tree] if tree else [None]):
            _phae_model(tmp / "sub-phae", tmp / f"phae_{i}.pt", code)
            results[code] = command([*base, "phae", "--model", tmp / f"phae_{i}.pt", "--out",
                                     tmp / f"phae_{i}"], code, args.repeats)
        bf16 = command([*base, "phae", "--model", tmp / "phae_0.pt", "--precision", "bfloat16",
                        "--out", tmp / "phae_bf16"], None, args.repeats)
        osvd = command([*base, "osvd", "--out", tmp / "osvd"], None, args.repeats)
        add("maps_phae", f"`maps --method phae`, {'x'.join(map(str, shape))}x60 "
            f"({int(exam.masks['brain'].sum()) // 1000}k brain voxels)",
            _command_text(results[None]) + f" (oSVD {_command_text(osvd)})",
            _command_text(results[tree]) if tree else "",
            f"--precision bfloat16: {_command_text(bf16)}")
    if "maps_parametric" in exam_figures:
        tiles = (4, 4, 3) if args.quick else (8, 8, 5)
        exam = _simulated_exam(tmp / "sub-param", (16, 16, 4), 120, tiles)
        base = ["maps", tmp / "sub-param", "--overwrite", "--method"]
        results = {code: command([*base, "parametric", "--out", tmp / f"param_{i}"], code)
                   for i, code in enumerate([None, tree] if tree else [None])}
        add("maps_parametric", f"`maps --method parametric`, "
            f"{'x'.join(map(str, exam.signal.shape))}", _command_text(results[None]),
            _command_text(results[tree]) if tree else "")
    if "study" not in args.skip:
        argv = ["study", "--demo", "--out", tmp / "study", "--overwrite"]
        if args.quick:
            argv += ["--n-subjects", "12", "--n-boot", "200", "--snrs", "30", "10"]
        now = command(argv, None)
        # The demo cohort, simulated by the first run, is reused by the second.
        bf16 = command([*argv, "--precision", "bfloat16"], None)
        add("study", "`study --demo`" + (" (12 subjects)" if args.quick else ""),
            _command_text(now), "", f"--precision bfloat16: {_command_text(bf16)}")


def gpu_table(args, tmp, tree, add):
    device = args.device
    if "phae_inference" not in args.skip:
        X = _curves(100_000 if args.quick else 1_000_000).astype(np.float32)
        rows = {code: probe("phae_inference", X, args.repeats, device, code, GPU_CHUNK,
                            "float32") for code in ([None, tree] if tree else [None])}
        tf32, bf16 = (probe("phae_inference", X, args.repeats, device, None, GPU_CHUNK, precision)
                      for precision in ("tf32", "bfloat16"))

        def rate(result):
            if "error" in result:
                return f"failed: {result['error']}"
            text = f"{len(X) / result['wall'] / 1e6:.2f} M voxels/s"
            if "max_rel_diff" in result:
                text += f", maps vs CPU max rel. diff {result['max_rel_diff']:.1e}"
            return text

        add("phae_inference", f"PHAE inference, width 32, 60 frames, {len(X) // 1000}k voxels, "
            f"chunks of {GPU_CHUNK}", rate(rows[None]), rate(rows[tree]) if tree else "",
            f"precision='tf32': {rate(tf32)}; precision='bfloat16': {rate(bf16)}")
    if "phae_training" not in args.skip:
        X = _curves(100_000 if args.quick else 500_000).astype(np.float32)
        rows = {code: probe("phae_training", X, 1, device, code, 3)
                for code in ([None, tree] if tree else [None])}

        def rate(result):
            if "error" in result:
                return f"failed: {result['error']}"
            speed = result["voxels_per_s"]
            return (f"{speed / 1e6:.2f} M voxels/s (65 epochs over 4 M voxels: "
                    f"{65 * 4e6 / speed:.0f} s; epochs {result['epoch_s']} s)")

        add("phae_training", f"PHAE training, paper settings (batch 1536), {len(X) // 1000}k "
            "voxels, best of epochs 2-3", rate(rows[None]), rate(rows[tree]) if tree else "")
    if "parametric" not in args.skip:
        X = _curves(20_000 if args.quick else 200_000, noise=0.02)
        rows = {code: probe("parametric", X, 1, device, code)
                for code in ([None, tree] if tree else [None])}

        def rate(result):
            if "error" in result:
                return f"failed: {result['error']}"
            return f"{len(X) / result['wall'] / 1e3:,.0f} k voxels/s"

        add("parametric", f"parametric fit, {len(X) // 1000}k voxels", rate(rows[None]),
            rate(rows[tree]) if tree else "")
    if "maps" not in args.skip:
        tiles = (4, 4, 3) if args.quick else (8, 8, 5)
        exam = _simulated_exam(tmp / "sub-gpu", (16, 16, 4), 60, tiles)
        _phae_model(tmp / "sub-gpu", tmp / "phae.pt", None)
        base = ["maps", tmp / "sub-gpu", "--overwrite", "--device", device, "--method"]
        phae = command([*base, "phae", "--model", tmp / "phae.pt", "--chunk-size", GPU_CHUNK,
                        "--out", tmp / "gpu_phae"], None, args.repeats)
        parametric = command([*base, "parametric", "--out", tmp / "gpu_param"], None,
                             args.repeats)
        add("maps", f"`maps --device {device}`, {'x'.join(map(str, exam.signal.shape))}",
            f"phae {_command_text(phae)}; parametric {_command_text(parametric)}", "")
    if "study" not in args.skip:
        argv = ["study", "--demo", "--out", tmp / "study", "--overwrite", "--device", device]
        if args.quick:
            argv += ["--n-subjects", "12", "--n-boot", "200", "--snrs", "30", "10"]
        add("study", f"`study --demo --device {device}`" + (" (12 subjects)" if args.quick
                                                             else ""),
            _command_text(command(argv, None)), "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu",
                        help="cpu: the 2-core table; cuda (or cuda:N): the GPU table")
    parser.add_argument("--quick", action="store_true",
                        help="smaller data everywhere (the figures are then not the goals')")
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs")
    parser.add_argument("--osipy-python", default=os.environ.get("OSIPY_PYTHON"),
                        help="Python >= 3.12 with osipy installed (default $OSIPY_PYTHON)")
    parser.add_argument("--no-old-code", action="store_true",
                        help=f"do not measure the code of {BASELINE} beside the current one")
    parser.add_argument("--skip", default="", help="comma-separated figures to skip: "
                        f"{','.join(CPU_ISSUE)} (CPU), {','.join(GPU_ISSUE)} (GPU)")
    args = parser.parse_args()
    args.skip = set(filter(None, args.skip.split(",")))
    gpu = args.device != "cpu"
    issue = GPU_ISSUE if gpu else CPU_ISSUE
    rows = []

    def add(key, figure, now, old, *notes):
        rows.append((figure, issue[key][0], "; ".join([now, *notes]), old or "not run",
                     issue[key][1]))
        print(f"  measured {figure}: {rows[-1][2]} | old code: {rows[-1][3]}", file=sys.stderr,
              flush=True)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as name, old_code() as tree:
        if tree is None and not args.no_old_code:
            print(f"  (no worktree of {BASELINE}: old code not measured)", file=sys.stderr)
        (gpu_table if gpu else cpu_table)(args, Path(name), None if args.no_old_code else tree,
                                          add)
    print(f"\n{os.cpu_count()} CPU(s), device {args.device}, load average "
          f"{os.getloadavg()[0]:.1f} at the end, {time.perf_counter() - started:.0f} s in all, "
          f"best of {args.repeats}\n")
    print(f"| figure | issue (before) | now (this run) | old code ({BASELINE}), same run "
          "| goal |\n|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
