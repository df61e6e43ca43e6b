"""Tokens per second of tiny-llm (issue 15 §1) under the real torchtune recipes on this CPU.

Builds the model and its instruction set into a temporary folder, writes the LoRA and full
configs with the pack's writer (device cpu, fp32, no recomputation: what `runs configs` writes
for a CPU row), runs `tune run ... max_steps_per_epoch=STEPS` for each, and reads torchtune's own
DiskLogger `tokens_per_second_per_gpu` (the first step, which includes warm-up, is left out).

Run: `.venv/bin/python bench/tiny_llm_tokens.py [STEPS]`
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trainwright.backends import torchtune as tt
from trainwright.backends.torchtune_tiny import make_dataset, make_model


def measure(root: Path, method: str, steps: int) -> dict[str, float]:
    out = root / f"out-{method}"
    cfg = tt.torchtune_config(
        "tiny-llm", method=method, checkpoint_dir=str(root / "model"), output_dir=str(out),
        dataset=str(root / "instruct.json"), device="cpu", dtype="fp32",
        activation_checkpointing=False, max_seq_len=512,
    )  # fmt: skip
    path = root / f"{method}.yaml"
    path.write_text(tt.to_yaml(cfg))
    start = time.monotonic()
    tune = tt.command(path)[0]
    subprocess.run(
        [tune, "run", tt.recipe_for(method), "--config", str(path),
         f"max_steps_per_epoch={steps}"],
        check=True, capture_output=True,
    )  # fmt: skip
    wall = time.monotonic() - start
    text = "".join(p.read_text() for p in (out / "logs").glob("log_*.txt"))
    rates = [float(x) for x in re.findall(r"tokens_per_second_per_gpu:([\d.]+)", text)][1:]
    return {"median tokens/s": statistics.median(rates), "wall s": wall}


def main() -> int:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    print(f"cores: {os.cpu_count()}, load before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_model(root / "model")
        make_dataset(root / "instruct.json")
        for method in ("lora", "full"):
            result = measure(root, method, steps)
            print(f"{method}: " + ", ".join(f"{k} {v:.1f}" for k, v in result.items()))
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
