#!/usr/bin/env bash
# The softmax block-size sweep on a GPU machine, by hand: `bash bench/kernel_sweep.sh [VENV]`.
# Writes the cuda report (reports/cuda/ or the registry's cuda folder), the full JSON and the
# GPU's description under bench/out/, and prints where they are. Without a GPU it runs the
# interpreter correctness check instead and says so (no report).
set -euo pipefail
VENV=${1:-.venv}
OUT=bench/out/kernel-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory --format=csv \
  > "$OUT/gpu.csv" 2>&1 || echo "no nvidia-smi" > "$OUT/gpu.csv"
"$VENV/bin/python" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" \
  | tee "$OUT/versions.txt"
/usr/bin/time -v "$VENV/bin/trainwright" bench kernel --json > "$OUT/sweep.json" 2> "$OUT/time.txt"
"$VENV/bin/python" - "$OUT/sweep.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("gpu:", d["gpu"], "| device:", d["device"]["name"], "| report:", d["report"])
for r in d["results"]:
    c = r["config"]
    bw = "-" if r["bandwidth_gbs"] is None else f"{r['bandwidth_gbs']:.0f} GB/s"
    print(f"  BLOCK_SIZE={c['BLOCK_SIZE']:>5} warps={c.get('num_warps')}: {bw} correct={r['correct']} {r['error'] or ''}")
if d.get("peer"):
    print(f"  peer {d['peer']['name']}: {d['peer']['bandwidth_gbs']:.0f} GB/s")
PY
echo "saved in $OUT"
