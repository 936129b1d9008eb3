"""The grading study before and after sharing each exam's curves, in one run.

Simulates one cohort to disk, then runs the same small study (oSVD,
Tikhonov and a short PHAE training, BSW leakage correction and Table 1
without it, cross-validation, noise draws) with the library of a reference
git revision (extracted with ``git archive``) and with the working tree, each
in a fresh process on the same cohort, and prints:

- wall and CPU seconds of ``compute_study`` (the cohort loaded beforehand);
- how many exam-to-curves conversions each ran (one per exam, method and
  transform before; one per exam and configuration, and per noisy copy,
  after), counted by wrapping ``ExamToCurves.transform_chunks`` (in the
  study's own process: with ``--n-jobs 1``);
- whether the two runs' tables agree (ratios, Table 1 without its times,
  cross-validation, noise robustness, map errors): bit for bit, or the largest
  relative difference. Agreement is expected only when nothing but the
  study's plumbing changed between the two revisions (other changes to the
  deconvolvers move the maps).

Run: ``python benchmarks/bench_study.py [--ref c1de08a] [--new REV]
[--n-subjects 16] [--n-jobs 1]``.
"""

import argparse
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]

_CHILD = """
import collections, inspect, pickle, sys, time, warnings
warnings.simplefilter("ignore")
import torch
torch.set_num_threads(1)
from skperfusion.exam import ExamToCurves, load_cohort
from skperfusion.exam import pipeline
from skperfusion.study import run

cohort, out, n_jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
calls = collections.Counter()
chunks = pipeline.ExamToCurves.transform_chunks

def counted(self, exam, *args, **kwargs):
    calls[exam.subject_id] += 1
    return chunks(self, exam, *args, **kwargs)

pipeline.ExamToCurves.transform_chunks = counted
exams = load_cohort(cohort)
settings = dict(methods=("osvd", "tikhonov", "phae"), test_size=0.5, snrs=(30, 10),
                n_draws=2, n_splits=4, n_repeats=2, n_boot=200, random_state=0,
                progress=False, curves=ExamToCurves(leakage="bsw"),
                compare_curves={"no leakage correction": ExamToCurves()},
                method_params={"phae": {"max_epochs": 3, "epoch_voxels": 1024,
                                        "batch_size": 256, "module__width": 8}})
jobs = "n_workers" if "n_workers" in inspect.signature(run.compute_study).parameters else "n_jobs"
settings[jobs] = n_jobs
start, cpu = time.perf_counter(), time.process_time()
results = run.compute_study(exams, **settings)
wall, cpu = time.perf_counter() - start, time.process_time() - cpu
pickle.dump({"wall": wall, "cpu": cpu, "conversions": sum(calls.values()),
             "tables": results.tables}, open(out, "wb"))
"""

_COMPARED = ("ratios", "table1_cv", "cv_folds", "noise_robustness", "map_errors",
             "table1_curves")


def _extract(ref, folder):
    """The library of ``ref`` (git archive) under ``folder``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "skperfusion"],
                             check=True, capture_output=True).stdout
    with tempfile.TemporaryFile() as handle:
        handle.write(archive)
        handle.seek(0)
        with tarfile.open(fileobj=handle) as tar:
            tar.extractall(folder, filter="data")
    return folder


def _run(library, cohort, out, n_jobs):
    """compute_study in a fresh process with ``library`` first on the path."""
    subprocess.run([sys.executable, "-c", _CHILD, str(cohort), str(out), str(n_jobs)],
                   check=True, env={**os.environ, "PYTHONPATH": str(library)}, cwd=library)
    with open(out, "rb") as handle:
        return pickle.load(handle)


def _difference(old, new):
    """'identical', or the largest relative difference of the numeric cells."""
    old = old[[c for c in old.columns if "time" not in str(c)]]
    new = new[old.columns]
    if old.astype(str).equals(new.astype(str)):
        return "identical"
    a = old.select_dtypes("number").to_numpy(float)
    b = new.select_dtypes("number").to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return f"max rel. diff {np.nanmax(np.abs(a - b) / np.abs(a)):.2g}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="c1de08a",
                        help="git revision before the change (default: before issue 18)")
    parser.add_argument("--new", default=None,
                        help="git revision after the change (default: the working tree)")
    parser.add_argument("--n-subjects", type=int, default=16)
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="the study's parallel workers, both runs")
    args = parser.parse_args()
    from skperfusion.datasets import simulate_cohort

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        simulate_cohort(folder / "cohort", args.n_subjects, shape=(16, 16, 4), snr=100.0,
                        random_state=0, leakage=True)
        libraries = {args.ref: _extract(args.ref, folder / "old"),
                     args.new or "working tree": (REPO if args.new is None
                                                  else _extract(args.new, folder / "new"))}
        results = {}
        for name, library in libraries.items():
            started = time.perf_counter()
            results[name] = _run(library, folder / "cohort", folder / f"{len(results)}.pkl",
                                 args.n_jobs)
            print(f"{name}: done in {time.perf_counter() - started:.0f} s", flush=True)
    table = pd.DataFrame({name: {"compute_study wall (s)": round(r["wall"], 1),
                                 "compute_study CPU (s)": round(r["cpu"], 1),
                                 "exam-to-curves runs": r["conversions"]}
                          for name, r in results.items()})
    print(f"\n{args.n_subjects} subjects, 16x16x4, n_jobs {args.n_jobs}\n")
    print(table.to_string())
    old, new = (r["tables"] for r in results.values())
    print(json.dumps({name: _difference(old[name], new[name]) for name in _COMPARED},
                     indent=1))


if __name__ == "__main__":
    main()
