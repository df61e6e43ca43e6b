"""Trace each framework's loss head on the CPU: the factors behind resources/models/loss-heads.yaml.

    .venv/bin/python bench/trace_loss_heads.py [--dtype bf16,fp32] [--only hf,torchtune]

Needs torch, transformers, trl and torchtune (torchtune-compile also a C++ compiler for inductor;
about 30 s). Prints bytes per token per vocabulary entry: kept into backward, and the peak total
(kept + what the loss head adds at its worst moment). See scripts/trainwright/hardware/
bench/loss_trace.py for how; compare with the data file by hand and edit it with the figures.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "bench"))

import loss_trace  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="bf16,fp32")
    ap.add_argument("--only", default=",".join(loss_trace.FRAMEWORKS))
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    print(f"{'framework':22s} {'dtype':5s} {'kept':>7s} {'peak':>7s} {'seconds':>8s}")
    for framework in args.only.split(","):
        for dtype in args.dtype.split(","):
            start = time.time()
            got = loss_trace.per_vocab(framework, dtype=dtype)
            took = time.time() - start
            print(f"{framework:22s} {dtype:5s} {got['kept']:7.3f} {got['peak']:7.3f} {took:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
