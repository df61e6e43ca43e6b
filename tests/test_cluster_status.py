"""runs_status.yaml: atomic, keeps what a person adds, refuses a broken file before any run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import assert_one_line_error, run_cli
from trainwright.backends.tiny_model.data import write_example_dataset
from trainwright.cluster.checks import load_plan
from trainwright.cluster.configs import write_configs
from trainwright.cluster.dirs import setup_dirs
from trainwright.cluster.generate import Settings, write_scripts
from trainwright.cluster.runs_monitor import follow
from trainwright.cluster.scaffold import scaffold
from trainwright.cluster.status import editing, read_status

PLAN = """\
# Runs plan: st

- **Backend**: tiny

## Runs

| Run | Base model | Method | Dataset | GPUs |
|---|---|---|---|---|
| one | bundled | lora | data | cpu |
| two | bundled | lora | data | cpu |
"""


@pytest.fixture
def ready(tmp_path: Path) -> Path:
    """An experiment ready to launch whose 'trainer' is /bin/true (fast, real bash)."""
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "runs_plan.md").write_text(PLAN)
    write_example_dataset(exp / "data", count=2, size=32)  # pre-flight reads it, as the trainer
    scaffold(exp)
    plan = load_plan(exp)
    setup_dirs(exp, plan)
    write_configs(exp, plan)
    write_scripts(exp, plan, Settings(python="/bin/true"))
    return exp


def no_sbatch(tmp_path: Path) -> dict[str, str]:
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    return {"PATH": str(empty)}


BROKEN = {
    "unclosed-list": ("experiment: st\nruns:\n  one:\n    state: PLANNED\n  two: [unclosed\n", 6),
    "tab": ("experiment: st\nruns:\n  one:\n\tstate: PLANNED\n", 4),
    "state-not-text": ("experiment: st\nruns:\n  one:\n    state: 3\n", 4),
    "job-id-not-an-id": (
        "experiment: st\nruns:\n  one:\n    state: PLANNED\n    job_id: $(rm -rf ~)\n",
        5,
    ),
}


@pytest.mark.parametrize(
    "case,command",
    [(case, "launch") for case in BROKEN]
    + [("unclosed-list", cmd) for cmd in ("monitor", "validate", "plan")],
)
def test_a_hand_broken_status_file_stops_every_command(
    ready: Path, tmp_path: Path, case: str, command: str
) -> None:
    broken, line = BROKEN[case]
    status = ready / "runs_status.yaml"
    status.write_text(broken)
    proc = run_cli("runs", command, str(ready), env=no_sbatch(tmp_path))
    assert_one_line_error(proc, f"runs_status.yaml:{line}")
    assert status.read_text() == broken
    assert not list(ready.glob("*/logs/*.out")), "something ran"


def test_status_writes_keep_keys_a_person_added(ready: Path, tmp_path: Path) -> None:
    status = ready / "runs_status.yaml"
    data = yaml.safe_load(status.read_text())
    data["runs"]["one"]["notes"] = "the one with the new tokenizer"
    data["owner"] = "dev"
    status.write_text(yaml.safe_dump(data))
    proc = run_cli("runs", "launch", str(ready), "--json", env=no_sbatch(tmp_path))
    assert proc.returncode == 0, proc.stderr
    after = yaml.safe_load(status.read_text())
    assert after["runs"]["one"]["notes"] == "the one with the new tokenizer"
    assert after["owner"] == "dev"
    assert after["runs"]["one"]["state"] == "COMPLETED"
    assert not list(ready.glob(".runs_status.yaml.*.tmp"))


def test_editing_writes_nothing_when_the_block_fails(ready: Path) -> None:
    before = (ready / "runs_status.yaml").read_bytes()
    with pytest.raises(RuntimeError), editing(ready) as data:
        data["runs"]["one"]["state"] = "RUNNING"
        raise RuntimeError("boom")
    assert (ready / "runs_status.yaml").read_bytes() == before
    assert read_status(ready)["runs"]["one"]["state"] == "PLANNED"


def test_local_launch_runs_each_once_and_a_rerun_submits_nothing(
    ready: Path, tmp_path: Path
) -> None:
    env = no_sbatch(tmp_path)
    first = json.loads(run_cli("runs", "launch", str(ready), "--json", env=env).stdout)
    assert first["executor"] == "local"
    assert [d["action"] for d in first["decisions"]] == ["submit", "submit"]
    second = run_cli("runs", "launch", str(ready), "--json", env=env)
    assert second.returncode == 0, second.stderr
    out = json.loads(second.stdout)
    assert [d["action"] for d in out["decisions"]] == ["skip", "skip"]
    assert all("already completed" in d["reason"] for d in out["decisions"])
    assert len(list(ready.glob("*/logs/local-*.out"))) == 2


def test_launch_dry_run_writes_nothing(ready: Path, tmp_path: Path) -> None:
    before = (ready / "runs_status.yaml").read_bytes()
    proc = run_cli("runs", "launch", str(ready), "--dry-run", "--json", env=no_sbatch(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert [d["action"] for d in json.loads(proc.stdout)["decisions"]] == ["submit", "submit"]
    assert (ready / "runs_status.yaml").read_bytes() == before
    assert not list(ready.glob("*/logs/*.out"))


def test_preflight_reports_every_problem_and_submits_nothing(ready: Path, tmp_path: Path) -> None:
    (ready / "one" / "finetune.slurm").unlink()
    (ready / "two" / "finetune.yaml").write_text("batch_size: 0\n")
    before = (ready / "runs_status.yaml").read_bytes()
    proc = run_cli("runs", "launch", str(ready), "--json", env=no_sbatch(tmp_path))
    assert proc.returncode == 1
    problems = json.loads(proc.stdout)["preflight"]["problems"]
    assert any("one/finetune.slurm is missing" in p for p in problems)
    assert any("batch_size is 0" in p for p in problems)
    assert (ready / "runs_status.yaml").read_bytes() == before
    assert not list(ready.glob("*/logs/*.out"))


def test_only_names_a_run_that_exists(ready: Path, tmp_path: Path) -> None:
    proc = run_cli("runs", "launch", str(ready), "--only", "nope", env=no_sbatch(tmp_path))
    assert_one_line_error(proc, "no run named 'nope'")


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_follow_polls_with_back_off_while_nothing_changes(ready: Path) -> None:
    with editing(ready) as data:
        data["runs"]["one"].update(
            state="RUNNING", executor="local", pid=os.getpid(), job_id=f"local-{os.getpid()}"
        )
    delays: list[float] = []
    report = follow(
        ready, load_plan(ready), on_report=lambda r: None, cap_s=5, max_polls=5, sleep=delays.append
    )
    assert report["polls"] == 5
    assert delays == [3.0, 4.5, 5, 5]


def test_a_local_run_whose_process_is_gone_is_settled_from_its_log(ready: Path) -> None:
    logs = ready / "one" / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "a.out").write_text("trainwright: start x\ntiny: done\ntrainwright: end y exit=0\n")
    (logs / "b.out").write_text("trainwright: start x\nKilled\n")
    with editing(ready) as data:
        for run, log in (("one", "a.out"), ("two", "b.out")):
            data["runs"][run].update(
                state="RUNNING", executor="local", pid=_dead_pid(), log=str(logs / log)
            )
    proc = run_cli("runs", "monitor", str(ready), "--json")
    assert proc.returncode == 1
    states = {r["run"]: r["state"] for r in json.loads(proc.stdout)["runs"]}
    assert states == {"one": "COMPLETED", "two": "LOST"}
