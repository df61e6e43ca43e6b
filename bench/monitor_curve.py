"""How long `trainwright monitor --log L --curve C` takes on long runs (issue 13).

Run by hand: .venv/bin/python bench/monitor_curve.py [STEPS ...] [--format tiny|kohya]
             [--timeout SECONDS]
Writes a log of each size (default 20k, 600k and 1M steps) in a temp folder, in the tiny
backend's format or kohya's tqdm-bar format (each bar redrawn with a carriage return), then
times the real command as a subprocess, wall clock, once. A run past --timeout (default 900 s)
is reported as such.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_STEPS = (20_000, 600_000, 1_000_000)


def loss_at(step: int, rng: random.Random) -> float:
    return 0.05 + 0.2 * math.exp(-step / 50_000) + rng.gauss(0, 0.01)


def clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def write_log(path: Path, steps: int, fmt: str) -> None:
    rng = random.Random(0)
    epochs = 10
    per_epoch = max(1, steps // epochs)
    with open(path, "w", encoding="utf-8") as fh:
        if fmt == "tiny":
            fh.write(f"tiny: start backend=tiny device=cpu epochs={epochs} steps={steps}\n")
            for s in range(1, steps + 1):
                ep = min(epochs, (s - 1) // per_epoch + 1)
                fh.write(
                    f"tiny: step={s}/{steps} epoch={ep}/{epochs} loss={loss_at(s, rng):.6f} "
                    f"lr=0.0001 batch=4 elapsed_s={s * 0.5:.1f}\n"
                )
            fh.write(f"tiny: done steps={steps} epochs={epochs} elapsed_s={steps * 0.5:.1f}\n")
        else:
            fh.write(f"running training / 学習開始\n  total optimization steps: {steps}\n")
            for s in range(1, steps + 1):
                if (s - 1) % per_epoch == 0:
                    fh.write(f"\nepoch {(s - 1) // per_epoch + 1}/{epochs}\n")
                pct = s * 100 // steps
                el, left = clock(s * 0.5), clock((steps - s) * 0.5)
                fh.write(
                    f"\rsteps: {pct:3d}%|#####     | {s}/{steps} [{el}<{left}, "
                    f" 2.00it/s, avr_loss={loss_at(s, rng):.4f}]"
                )
            fh.write("\n")


def time_monitor(log: Path, curve: Path, timeout: float) -> float | None:
    cmd = [sys.executable, "-m", "trainwright", "monitor", "--log", str(log), "--curve", str(curve)]
    t = time.perf_counter()
    try:
        subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("steps", nargs="*", type=int, default=list(DEFAULT_STEPS))
    ap.add_argument("--format", choices=("tiny", "kohya"), default="tiny")
    ap.add_argument("--timeout", type=float, default=900.0)
    args = ap.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, format {args.format}")
    print("| steps | log size | monitor --curve |")
    print("|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for steps in args.steps:
            log = Path(tmp) / f"train-{steps}.log"
            write_log(log, steps, args.format)
            took = time_monitor(log, Path(tmp) / f"curve-{steps}.png", args.timeout)
            size = f"{log.stat().st_size / 1e6:.1f} MB"
            shown = f"over {args.timeout:.0f} s (stopped)" if took is None else f"{took:.1f} s"
            print(f"| {steps:,} | {size} | {shown} |", flush=True)
            log.unlink()


if __name__ == "__main__":
    main()
