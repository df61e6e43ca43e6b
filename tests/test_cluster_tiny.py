"""A plan of three runs of the embedded tiny trainer, on the real SLURM cluster and without it.

One run trains, one fails (its dataset folder is missing: the pre-flight check refuses it; then
its base model file is damaged, which only loading shows: it fails for real, and a relaunch holds
it back because nothing it reads changed), one runs out of memory (the tiny trainer's
`memory_limit_mb` caps its address space, so the allocator fails for real) until its batch is
small enough.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import run_cli
from support.slurm_cluster import SlurmCluster

PLAN = """\
# Runs plan: tiny-three

- **Backend**: tiny

## Defaults
- **Dataset**: data
- **Epochs**: 1
- **Batch size**: 4

## Runs

| Run | Base model | Method | GPUs | Learning rate | Notes |
|---|---|---|---|---|---|
| base | bundled | base | - | | the untouched model, for comparison |
| good | bundled | lora | cpu | 1e-3 | |
| broken | bundled | lora | cpu | 1e-3 | its dataset folder is missing |
| oom | bundled | lora | cpu | 1e-3 | 16 MB of headroom: out of memory until batch 1 |
"""
OOM_LIMIT_MB = 16


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    from trainwright import backends
    from trainwright.backends import tiny
    from trainwright.backends.tiny_model.data import write_example_dataset

    ok, why = backends.installed(tiny)
    assert ok, f"the tiny backend cannot run here: {why}"
    exp = tmp_path / "tiny-three"
    exp.mkdir()
    (exp / "runs_plan.md").write_text(PLAN)
    write_example_dataset(exp / "data", count=4)
    for args in (["plan"], ["setup-dirs"], ["configs"]):
        proc = run_cli("runs", *args, str(exp))
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    broken = exp / "broken" / "finetune.yaml"
    broken.write_text(broken.read_text().replace(str(exp / "data"), str(exp / "no-such-data")))
    oom = exp / "oom" / "finetune.yaml"
    # Batch 2 fails in PyTorch's allocator under this cap and batch 1 fits (measured on both
    # paths); at batch 4 oneDNN sometimes fails first with an error that does not say "memory".
    text = oom.read_text().replace("batch_size: 4", "batch_size: 2")
    oom.write_text(text + f"memory_limit_mb: {OOM_LIMIT_MB}\n")
    for run in ("good", "broken", "oom"):
        # One thread: the runs share two cores, and oneDNN's many-thread buffers would make
        # the memory cap fail inside oneDNN rather than in PyTorch's allocator.
        path = exp / run / "finetune.yaml"
        path.write_text(path.read_text() + "threads: 1\n")
    return exp


def damage_model(exp: Path) -> None:
    """`broken` gets its dataset back and a base model file that exists but does not load."""
    bad = exp / "damaged.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    path = exp / "broken" / "finetune.yaml"
    text = path.read_text().replace(str(exp / "no-such-data"), str(exp / "data"))
    path.write_text(text.replace("base_model: bundled", f"base_model: {bad}"))


def scripts(exp: Path, env: dict[str, str] | None = None) -> None:
    args = ["slurm-scripts", str(exp), "--cpus", "1", "--mem", "1G", "--time", "10"]
    proc = run_cli("runs", *args, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def runs(exp: Path) -> dict:
    return yaml.safe_load((exp / "runs_status.yaml").read_text())["runs"]


def config(exp: Path, run: str) -> dict:
    return yaml.safe_load((exp / run / "finetune.yaml").read_text())


@pytest.mark.slurm
def test_three_tiny_runs_on_slurm(slurm_cluster: SlurmCluster, experiment: Path) -> None:
    env = slurm_cluster.env
    scripts(experiment, env)
    refused = run_cli("runs", "launch", str(experiment), "--json", env=env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    problems = json.loads(refused.stdout)["preflight"]["problems"]
    assert any("'broken'" in p and "no-such-data" in p for p in problems), problems
    assert json.loads(refused.stdout)["submitted"] == {}
    damage_model(experiment)
    first = run_cli("runs", "launch", str(experiment), "--json", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    submitted = json.loads(first.stdout)["submitted"]
    assert sorted(submitted) == ["broken", "good", "oom"]

    again = run_cli("runs", "launch", str(experiment), "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["submitted"] == {}
    queued = slurm_cluster.run(["squeue", "-h", "-r", "-o", "%j"]).stdout.splitlines()
    assert all(queued.count(f"tiny-three/{r}") <= 1 for r in submitted)

    follow = run_cli(
        "runs", "monitor", str(experiment), "--follow", "--max-interval", "3", "--json", env=env
    )
    assert follow.returncode == 1, follow.stderr  # a run failed: the check found a problem
    st = runs(experiment)
    assert st["base"]["state"] == "SKIPPED"
    good = st["good"]
    assert good["state"] == "COMPLETED" and good["job_id"] == submitted["good"]
    assert good["progress"]["step"] == good["progress"]["total_steps"] == 1
    assert list((experiment / "good" / "checkpoints").glob("good-epoch-*.safetensors"))
    broken = st["broken"]
    assert broken["state"] == "FAILED" and broken["exit_code"].startswith("3")
    assert "damaged.safetensors" in broken["reason"]
    assert broken["lasting_failure"]["kind"] == "model"
    oom = st["oom"]
    assert oom["state"] == "COMPLETED", oom
    assert oom["oom_retries"] == 1
    (attempt,) = oom["attempts"]
    assert (attempt["batch_size"], attempt["gradient_accumulation_steps"]) == (2, 1)
    assert attempt["state"] == "OUT_OF_MEMORY" and attempt["job_id"] == submitted["oom"]
    assert "resubmitted with batch 2->1, accumulation 1->2" in attempt["reason"]
    assert oom["job_id"] != submitted["oom"]
    assert (oom["batch_size"], oom["gradient_accumulation_steps"]) == (1, 2)
    cfg = config(experiment, "oom")
    assert (cfg["batch_size"], cfg["gradient_accumulation_steps"]) == (1, 2)  # effective 2 kept
    assert "can't allocate memory" in Path(oom["attempts"][0]["log"]).read_text()

    third = run_cli("runs", "launch", str(experiment), "--json", env=env)
    assert third.returncode == 1, third.stderr  # broken is held back: it would fail the same way
    out = json.loads(third.stdout)
    actions = {d["run"]: d["action"] for d in out["decisions"]}
    assert actions == {"base": "skip", "good": "skip", "broken": "hold", "oom": "skip"}
    assert out["submitted"] == {} and out["held"] == ["broken"]
    third = run_cli("runs", "launch", str(experiment), "--retry", "--json", env=env)
    out = json.loads(third.stdout)
    actions = {d["run"]: d["action"] for d in out["decisions"]}
    assert actions == {"base": "skip", "good": "skip", "broken": "resume", "oom": "skip"}
    assert list(out["submitted"]) == ["broken"]
    run_cli("runs", "monitor", str(experiment), "--follow", "--max-interval", "2", env=env)
    broken = runs(experiment)["broken"]
    assert broken["state"] == "FAILED" and broken["resume"] is True
    assert len(broken["attempts"]) == 1


@pytest.mark.slow
def test_three_tiny_runs_without_slurm(experiment: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-slurm-here"
    empty.mkdir()
    env = {"PATH": str(empty)}  # no sbatch, nothing else either: the script needs only bash
    scripts(experiment, env)
    # `good` is the same path as on SLURM; leaving it out keeps the test short.
    refused = run_cli("runs", "launch", str(experiment), "--only", "broken,oom", "--json", env=env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    out = json.loads(refused.stdout)
    assert any("'broken'" in p and "no-such-data" in p for p in out["preflight"]["problems"])
    assert out["submitted"] == {} and "final" not in out
    assert not list(experiment.glob("*/logs/*.out")), "a run started although pre-flight failed"
    damage_model(experiment)
    proc = run_cli("runs", "launch", str(experiment), "--only", "broken,oom", "--json", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["executor"] == "local"
    assert out["final"] == {
        "base": "SKIPPED",
        "good": "PLANNED",
        "broken": "FAILED",
        "oom": "COMPLETED",
    }
    st = runs(experiment)
    assert st["oom"]["job_id"].startswith("local-") and st["oom"]["executor"] == "local"
    assert "damaged.safetensors" in st["broken"]["reason"]
    assert st["broken"]["lasting_failure"]["kind"] == "model"
    assert [a["batch_size"] for a in st["oom"]["attempts"]] == [2]
    assert st["oom"]["attempts"][0]["state"] == "OUT_OF_MEMORY"
    assert st["oom"]["oom_retries"] == 1 and st["oom"]["batch_size"] == 1
    assert st["broken"]["ended"] <= st["oom"]["attempts"][0]["submitted"]  # one after another
    monitor = run_cli("runs", "monitor", str(experiment), "--json", env=env)
    assert monitor.returncode == 1
    table = {r["run"]: r["state"] for r in json.loads(monitor.stdout)["runs"]}
    assert table == out["final"]
    # A relaunch does not run `broken` again while nothing it reads changed; --retry does.
    again = run_cli("runs", "launch", str(experiment), "--only", "broken", "--json", env=env)
    assert again.returncode == 1, again.stderr
    held = json.loads(again.stdout)
    assert held["held"] == ["broken"] and held["submitted"] == {} and "final" not in held
    assert "model" in held["decisions"][0]["reason"]
    retry = run_cli(
        "runs",
        "launch",
        str(experiment),
        "--only",
        "broken",
        "--retry",
        "--dry-run",
        "--json",
        env=env,
    )
    assert retry.returncode == 0 and json.loads(retry.stdout)["decisions"][0]["action"] == "resume"
