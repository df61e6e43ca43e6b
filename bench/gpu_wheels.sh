#!/usr/bin/env bash
# The wheels bench/gpu_check.sh needs on the device image that the image lacks (it has torch,
# triton, transformers, peft, accelerate, click, numpy, pillow, pyyaml, scipy, attrs, pytest,
# nvidia-ml-py): diffusers, imagehash + PyWavelets, jsonschema and its dependencies, and
# bitsandbytes for the loop step's 8-bit optimizers and 4-bit base. Downloads them for CPython
# 3.12 on x86-64 into bench/wheels/ (gitignored), one version each, and checks that they stay
# under the device's 64 MiB for everything that travels. The bitsandbytes wheel (43 MB) holds a
# library per CUDA and ROCm version; it is repacked with the CUDA 13.0 one alone (the image's
# torch is 2.11+cu130) and the CPU one, about 2 MB.
#   bash bench/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=bench/wheels
mkdir -p "$DEST"
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
WHEELS=(
  "diffusers==0.36.0"
  "imagehash==4.3.2"
  "pywavelets==1.9.0"
  "jsonschema==4.25.1"
  "jsonschema-specifications==2025.9.1"
  "referencing==0.37.0"
  "rpds-py==0.30.0"
  "importlib-metadata==8.7.0"  # diffusers imports it; the image has zipp, not this
)
for w in "${WHEELS[@]}"; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${PLATFORMS[@]}" -d "$DEST" "$w"
done
BNB=bitsandbytes==0.50.2
FULL=$(mktemp -d)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${PLATFORMS[@]}" --platform manylinux_2_24_x86_64 -d "$FULL" "$BNB"
python3 - "$FULL"/bitsandbytes-*.whl "$DEST" <<'PY'
import re, sys, zipfile
from pathlib import Path
src, dest = Path(sys.argv[1]), Path(sys.argv[2])
drop = re.compile(r"bitsandbytes/libbitsandbytes_(?!cuda130\.so$|cpu\.so$)[^/]+$")
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest / src.name, "w", zipfile.ZIP_DEFLATED) as zout:
    for item in zin.infolist():
        if drop.match(item.filename):
            continue
        data = zin.read(item.filename)
        if item.filename.endswith(".dist-info/RECORD"):
            data = b"".join(ln for ln in data.splitlines(keepends=True)
                            if not drop.match(ln.split(b",")[0].decode()))
        zout.writestr(item, data)
print(f"{src.name}: {src.stat().st_size >> 20} MiB -> {(dest / src.name).stat().st_size >> 20} MiB")
PY
rm -rf "$FULL"
ls -la "$DEST"
total=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
echo "wheels: $((total / 1024 / 1024)) MiB in $DEST"
if [ "$total" -gt $((40 * 1024 * 1024)) ]; then
  echo "too large: the wheels and the working tree must fit 64 MiB together" >&2
  exit 1
fi
