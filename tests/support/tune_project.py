"""A `trainwright init` project with the catalog's tiny-llm built into llm/ (the way a person
builds it: `python -m trainwright.backends.torchtune_tiny llm` from the project root) and a
project `demo` whose intent names tiny-llm and llm/data/instruct.json, and studio.md the model
folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import run_cli


def ok(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for frag in fragments:
        assert frag in proc.stdout, (frag, proc.stdout)
    return proc.stdout


def make_tune_project(root: Path) -> Path:
    ok(run_cli("init", str(root)))
    built = subprocess.run(
        [sys.executable, "-m", "trainwright.backends.torchtune_tiny", "llm"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    ok(run_cli("grimoire", "new", "demo", cwd=root))
    ok(run_cli("grimoire", "set", "intent", "--project", "demo", "Base model=tiny-llm",
               "Dataset folder=llm/data/instruct.json", cwd=root))  # fmt: skip
    ok(run_cli("grimoire", "set", "studio", "--section", "Model: tiny-llm", "File=llm/model",
               cwd=root))  # fmt: skip
    return root


def add_plan_columns(plan: Path, steps: int, checkpoint: str) -> None:
    """What a person adds to the scaffolded table by hand: Max steps and the Checkpoint dir."""
    lines = []
    for line in plan.read_text().split("\n"):
        if line.startswith("| Run |"):
            line += " Max steps | Checkpoint dir |"
        elif line.startswith("|---|"):
            line += "---|---|"
        elif line.startswith("| base "):
            line += f" | {checkpoint} |"
        elif line.startswith("| run"):
            line += f" {steps} | {checkpoint} |"
        lines.append(line)
    plan.write_text("\n".join(lines))
