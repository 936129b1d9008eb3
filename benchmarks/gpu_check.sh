#!/usr/bin/env bash
# The GPU check of the device paths, in one call (about 6 minutes on one H200):
#   1. the CUDA tests (skipped elsewhere): PHAE and parametric fit on the GPU
#      equal to the CPU within float32 / float64 tolerance, training there;
#   2. benchmarks/bench_goals.py --device cuda: the GPU table, current code
#      beside the code before the work where git can check it out.
# Python: the repository's .venv if there is one, else a python3 whose torch
# sees CUDA (skperfusion installed into a venv on top of it, without
# downloads), else a new .venv installed with pip (needs a package index).
# Extra arguments go to bench_goals.py (e.g. --quick, --skip study).
# Usage: bash benchmarks/gpu_check.sh [bench_goals options]
set -euo pipefail
cd "$(dirname "$0")/.."
log=${OUT:-/tmp}/gpu_check.log
if [[ -x .venv/bin/python ]]; then
    py=.venv/bin/python
elif python3 -c "import torch, skorch, sklearn, nibabel, scipy; assert torch.cuda.is_available()" \
        2>/dev/null; then
    python3 -m venv --system-site-packages /tmp/skperfusion-gpu
    py=/tmp/skperfusion-gpu/bin/python
    "$py" -m pip install -q --no-deps --no-build-isolation -e .
else
    python3 -m venv .venv
    py=.venv/bin/python
    "$py" -m pip install -q torch
    "$py" -m pip install -q -e ".[test]"
fi
export PYTHONUNBUFFERED=1
"$py" -c "import torch; assert torch.cuda.is_available(), 'torch ' + torch.__version__ \
+ ' sees no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" | tee "$log"
timeout 150 "$py" -m pytest -q -p no:cacheprovider -rs -k cuda \
    tests/test_device.py tests/test_phae.py 2>&1 | tee -a "$log"
timeout 330 "$py" benchmarks/bench_goals.py --device "${DEVICE:-cuda}" --repeats 2 "$@" 2>&1 \
    | tee -a "$log"
