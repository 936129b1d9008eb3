#!/usr/bin/env bash
# The GPU check of the device paths, in one call (about 5 minutes on one H200):
#   1. the CUDA tests (skipped elsewhere): PHAE and parametric fit on the GPU
#      equal to the CPU within float32 / float64 tolerance, training there;
#   2. benchmarks/bench_goals.py --device cuda: the GPU table, current code
#      beside the code before the work where git can check it out.
# Python, the first that works:
#   - the repository's .venv;
#   - a python3 whose torch sees CUDA. Packages it lacks (an offline GPU image
#     often has no skorch or nibabel) are installed from wheels in .whl/ if
#     that folder exists, into a private folder put on PYTHONPATH; make them
#     on a machine with an index:
#       pip download --no-deps --only-binary=:all: --python-version 3.12 \
#         --platform manylinux_2_28_x86_64 -d .whl skorch nibabel scikit-learn==1.9.*
#   - a new .venv installed with pip (needs a package index).
# Extra arguments go to bench_goals.py (e.g. --quick, --skip study).
# Usage: bash benchmarks/gpu_check.sh [bench_goals options]
set -euo pipefail
cd "$(dirname "$0")/.."
log=${OUT:-/tmp}/gpu_check.log
if [[ -x .venv/bin/python ]]; then
    py=.venv/bin/python
elif python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    py=python3
    if compgen -G ".whl/*.whl" >/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/skperfusion-site .whl/*.whl
        export PYTHONPATH=/tmp/skperfusion-site
    fi
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
else
    python3 -m venv .venv
    py=.venv/bin/python
    "$py" -m pip install -q torch
    "$py" -m pip install -q -e ".[test]"
fi
export PYTHONUNBUFFERED=1
"$py" -c "import torch, skorch, sklearn, nibabel; assert torch.cuda.is_available(), 'torch ' \
+ torch.__version__ + ' sees no CUDA device'; print('torch', torch.__version__, \
torch.cuda.get_device_name(), '| scikit-learn', sklearn.__version__, '| skorch', \
skorch.__version__)" | tee "$log"
# A failing test does not stop the table: the exit status is the first failure's.
status=0
timeout 150 "$py" -m pytest -q -p no:cacheprovider -rs -k cuda \
    tests/test_device.py tests/test_phae.py 2>&1 | tee -a "$log" || status=$?
timeout 330 "$py" benchmarks/bench_goals.py --device "${DEVICE:-cuda}" --repeats 2 "$@" 2>&1 \
    | tee -a "$log" || { rc=$?; (( status )) || status=$rc; }
exit "$status"
