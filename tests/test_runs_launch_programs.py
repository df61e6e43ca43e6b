"""`runs launch` refuses, before anything is submitted, a job script whose trainer program
cannot start here (issue 15's bad input "`tune` missing"): sbatch hands the submitting PATH to
the job, so a bare `tune` that is not on it fails in the job with exit 127 after the queue wait."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from helpers import run_cli
from support.tune_project import add_plan_columns, make_tune_project, ok
from trainwright.cluster.runs_launch import missing_programs

HEAD = "#!/bin/bash\n#SBATCH --nodes=1\n\nset -uo pipefail\n"
BODY = 'RUN_DIR=/x\ncd -- "$RUN_DIR" || exit 1\n'


def script(launch: str, setup: str = "") -> str:
    return HEAD + setup + BODY + f"LAUNCH=({launch})\n"


def test_a_bare_name_off_path_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert missing_programs(script("tune run lora_finetune_single_device --config f.yaml")) == [
        "`tune`, which is not on PATH"
    ]


def test_setup_lines_may_put_it_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    text = script("tune run r --config f.yaml", setup="module load torchtune\n")
    assert missing_programs(text) == []


def test_a_path_must_be_an_executable_file(tmp_path: Path) -> None:
    gone = tmp_path / "venv" / "bin" / "tune"
    assert missing_programs(script(f"{gone} run r")) == [
        f"{gone}, which is not an executable file here"
    ]
    plain = tmp_path / "plain"
    plain.write_text("not a program")
    assert missing_programs(script(f"{plain} run r")) == [
        f"{plain}, which is not an executable file here"
    ]
    assert missing_programs(script(f"{sys.executable} -u -m x f.yaml")) == []


def test_srun_and_its_options_are_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    launch = 'srun --kill-on-bad-exit=1 --ntasks-per-node=1 tune run --nnodes "$SLURM_NNODES" r'
    assert missing_programs(script(launch)) == ["`tune`, which is not on PATH"]
    assert missing_programs(script('"$TRAINER" --config f.yaml')) == []  # the job expands it


@pytest.mark.slow
def test_launch_refuses_a_script_whose_tune_is_missing(tmp_path: Path) -> None:
    """The person renders with the system Python (no torchtune beside it) on a PATH without
    `tune`: launch names the program and the fix, and submits nothing; with `tune` on PATH the
    same scripts run."""
    root = make_tune_project(tmp_path / "studio")
    empty = tmp_path / "no-tune-here"
    empty.mkdir()
    env = {"PATH": str(empty)}
    ok(run_cli("runs", "plan", "tt", "--model", "tiny-llm", "--dataset",
               "../llm/data/instruct.json", "--backend", "torchtune", "--runs", "1", cwd=root,
               env=env))  # fmt: skip
    add_plan_columns(root / "tt" / "runs_plan.md", 4, "../llm/model")
    for step in ("plan", "setup-dirs", "configs"):
        ok(run_cli("runs", step, "tt", cwd=root, env=env))
    ok(run_cli("runs", "slurm-scripts", "tt", "--python", "/usr/bin/python3", cwd=root, env=env))
    assert "LAUNCH=(tune run " in (root / "tt" / "run1" / "finetune.slurm").read_text()
    proc = run_cli("runs", "launch", "tt", cwd=root, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # refused by the pre-flight
    assert "finetune.slurm would start `tune`, which is not on PATH" in proc.stdout
    assert "pip install 'trainwright[tune]'" in proc.stdout
    assert "nothing was submitted" in proc.stdout and "Traceback" not in proc.stderr
    status = root / "tt" / "runs_status.yaml"
    assert not status.exists() or "job_id" not in status.read_text()
    again = run_cli("runs", "launch", "tt", "--json", cwd=root,
                    env={"PATH": f"{Path(sys.executable).parent}:{empty}"})  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["final"]["run1"] == "COMPLETED"
