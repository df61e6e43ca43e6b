"""The experiment-run skills and the Skill Workflow section cannot drift from the commands."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from helpers import REPO, run_cli

SEQUENCE = (
    "plan-runs",
    "setup-experiment-dirs",
    "create-torchtune-config",
    "generate-slurm-script",
    "launch-runs",
    "monitor-jobs",
)
OURS = tuple(s for s in SEQUENCE if s != "create-torchtune-config")
FENCE = re.compile(r"^## Quick start\n```\n(.*?)```", re.S | re.M)


def test_agents_md_has_the_skill_workflow_in_order() -> None:
    text = (REPO / "AGENTS.md").read_text()
    section = text.split("## Skill Workflow", 1)[1].split("\n## ", 1)[0]
    positions = [section.index(f"{i}. {name}") for i, name in enumerate(SEQUENCE, start=1)]
    assert positions == sorted(positions)
    for name in SEQUENCE:
        assert (REPO / ".claude" / "skills" / name / "SKILL.md").is_file(), name
    assert "@AGENTS.md" in (REPO / "CLAUDE.md").read_text()


@pytest.mark.parametrize("skill", OURS)
def test_each_skill_names_its_place_and_the_next_step(skill: str) -> None:
    text = (REPO / ".claude" / "skills" / skill / "SKILL.md").read_text()
    step = SEQUENCE.index(skill) + 1
    assert f"step {step} of 6" in text.lower()
    assert "**Scope:" in text
    if step < len(SEQUENCE):
        assert SEQUENCE[step] in text.split("## Next", 1)[1]


def test_the_quick_starts_run_in_sequence(tmp_path: Path) -> None:
    """Every `trainwright runs ...` line of the quick starts, in the workflow's order."""
    commands: list[list[str]] = []
    for skill in SEQUENCE:
        text = (REPO / ".claude" / "skills" / skill / "SKILL.md").read_text()
        if skill == "create-torchtune-config":
            commands.append(["runs", "torchtune-configs", "exp/qwen-vs-llama"])
            continue
        (block,) = FENCE.findall(text)
        for line in block.splitlines():
            if line.startswith("trainwright runs"):
                commands.append(shlex.split(line)[1:])
    assert [c[1] for c in commands] == [
        "plan",
        "validate",
        "setup-dirs",
        "torchtune-configs",
        "slurm-scripts",
        "launch",
        "launch",
        "monitor",
        "monitor",
    ]
    no_slurm = {"PATH": str(tmp_path)}
    expected = {"torchtune-configs": 1, "launch": 1}  # the weights folder is still SET-ME
    for args in commands:
        if "--follow" in args:
            continue
        proc = run_cli(*args, cwd=tmp_path, env=no_slurm)
        assert proc.returncode == expected.get(args[1], 0), (args, proc.stdout, proc.stderr)
    exp = tmp_path / "exp" / "qwen-vs-llama"
    assert (exp / "run3" / "finetune.slurm").is_file()
    assert "#SBATCH --partition=gpu" in (exp / "run3" / "finetune.slurm").read_text()
    assert (
        "checkpoint_dir is SET-ME"
        in run_cli("runs", "launch", str(exp), "--dry-run", env=no_slurm).stdout
    )
