#!/usr/bin/env bash
# Every CUDA path of the pack on one GPU, in one prepared run (issue 18). Under 8 minutes on one
# H100 by design: each step has its own time limit (bench/gpu_check.py LIMITS, 465 s in all).
#
# On a session with a device, once here:   bash bench/gpu_wheels.sh     (bench/wheels/, ~12 MiB)
# then one device call (the run tool):
#   command:   bash bench/gpu_check.sh
#   carry:     ["bench/wheels"]
#   timeout_s: 540
# It installs the carried wheels into /tmp/site, runs the package from this checkout
# (PYTHONPATH=scripts) against the image's own torch and triton, prints the table and writes
# gpu_check.json, gpu_check.md and gpu_check.log under $OUT. Give the machine back afterwards.
#
# Here (no GPU): `bash bench/gpu_check.sh --cpu` skips the GPU steps with their reasons, runs the
# dedup engines at a small size, and exits 0. Extra arguments go to bench/gpu_check.py.
set -uo pipefail
cd "$(dirname "$0")/.."
# (only where the checkout has no .venv of its own: the device machine)
if [ ! -x .venv/bin/python ] && compgen -G "bench/wheels/*.whl" > /dev/null \
  && [ ! -e /tmp/site/.gpu_check ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site bench/wheels/*.whl && touch /tmp/site/.gpu_check \
    || echo "gpu_check: the carried wheels did not install; steps that need them are skipped"
fi
[ -e /tmp/site/.gpu_check ] && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
# HF_HUB_OFFLINE: bitsandbytes 0.50 tries to fetch a CPU kernel from the Hub at import; the
# device reaches nothing, so it is told not to try.
export PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
LOG=${OUT:-bench/out}/gpu_check.log
mkdir -p "$(dirname "$LOG")"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv 2>&1 | tee "$LOG"
"$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)" 2>&1 | tee -a "$LOG"
"$PY" bench/gpu_check.py "$@" 2>&1 | tee -a "$LOG"
exit "${PIPESTATUS[0]}"
