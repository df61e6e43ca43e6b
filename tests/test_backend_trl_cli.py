"""The trl backend through the real command line, from a fresh `trainwright init` project, the
way a person works: the tiny random-init Qwen2 (built here, no download) passes Gate 1 on its
JSONL, is configured, passes Gates 2-4, trains with `launch` and is read by `monitor`; a
two-run plan runs with `runs launch` on the local executor and on the real single-node SLURM
cluster. Relative paths as typed, flags at their defaults."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import run_cli
from support.slurm_cluster import SlurmCluster

pytestmark = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("trl", "peft")),
    reason="trl is not installed (pip install '.[trl]')",
)


def ok(proc, *fragments: str) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for frag in fragments:
        assert frag in proc.stdout, (frag, proc.stdout)
    return proc.stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root with the tiny model (llm/model), its data (llm/data) and project demo,
    whose intent names the model and the SFT file, and studio.md the model's folder."""
    import subprocess

    root = tmp_path / "studio"
    ok(run_cli("init", str(root)))
    built = subprocess.run(
        [sys.executable, "-m", "trainwright.demo.tiny_llm", "llm"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    ok(run_cli("grimoire", "new", "demo", cwd=root))
    ok(run_cli("grimoire", "set", "intent", "--project", "demo", "Base model=tiny-qwen2",
               "Dataset folder=llm/data/sft.jsonl", cwd=root))  # fmt: skip
    ok(run_cli("grimoire", "set", "studio", "--section", "Model: tiny-qwen2", "File=llm/model",
               cwd=root))  # fmt: skip
    return root


@pytest.mark.slow
def test_configure_gate_dry_run_launch_monitor(project: Path) -> None:
    root, times = project, {}
    start = time.monotonic()
    ok(run_cli("gate", "check", "demo", "--gate", "1", cwd=root), "Gate 1 (dataset) for demo: GO",
       "36 SFT rows")  # fmt: skip
    out = ok(
        run_cli("config", "--project", "demo", "--backend", "trl", "--preset", "quick",
                "precision=fp32", cwd=root),
        "trl config for 'demo' (tiny-qwen2)",
    )  # fmt: skip
    assert "GiB of system RAM" in out  # sized for the CPU: no GPU here
    folder = root / "grimoire" / "training" / "demo"
    cfg = yaml.safe_load((folder / "trl.yaml").read_text())
    # relative to the folder TRL starts in, so the project runs wherever it is copied
    assert cfg["model_name_or_path"] == "../../../llm/model"
    assert (folder / cfg["datasets"][0]["data_files"]).resolve() == root / "llm/data/sft.jsonl"
    ok(run_cli("gate", "check", "demo", "--gate", "2", cwd=root), "Gate 2 (config) for demo: GO")
    ok(run_cli("env", "check", "demo", cwd=root), "The trl backend is installed")
    ok(run_cli("gate", "check", "demo", "--gate", "3", cwd=root), "GO")
    times["gates 1-3 + config"] = time.monotonic() - start
    start = time.monotonic()
    ok(run_cli("dry-run", "demo", cwd=root, timeout=600), "Gate 4 GO", "3 training steps ran")
    times["dry-run"] = time.monotonic() - start
    assert not (folder / "output").exists()  # the dry run kept nothing in output/
    start = time.monotonic()
    ok(run_cli("launch", "demo", cwd=root, timeout=600), "training finished")
    times["launch"] = time.monotonic() - start
    state = json.loads(ok(run_cli("monitor", "demo", "--json", cwd=root)))
    assert state["format"] == "trl" and state["status"] == "complete"
    assert state["step"] == state["steps"] == 9  # 36 rows, batch 4, one epoch
    assert 0 < state["loss"] < 10 and 0 < state["loss_start"] < 10
    assert (folder / "output" / "adapter_model.safetensors").is_file()
    assert (folder / "output" / "checkpoint-9" / "trainer_state.json").is_file()
    print("trl via the CLI:", {k: f"{v:.1f} s" for k, v in times.items()})


@pytest.mark.slow
def test_gate_two_names_what_trl_would_choke_on(project: Path) -> None:
    root = project
    refused = run_cli("config", "--project", "demo", "--backend", "trl", "lora_rnk=4", cwd=root)
    assert refused.returncode == 2 and "'lora_rnk' (did you mean 'lora_r'?)" in refused.stderr
    ok(run_cli("config", "--project", "demo", "--backend", "trl", "trainer=dpo",
               "dataset_dir=llm/data/sft.jsonl", cwd=root))  # fmt: skip
    gate = run_cli("gate", "check", "demo", "--gate", "2", cwd=root)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "NO-GO" in gate.stdout and "lacks chosen, rejected" in gate.stdout
    assert "its columns are messages" in gate.stdout


PLAN = """\
# Runs plan: trl-two

- **Backend**: trl

## Runs

| Run | Base model | Method | Dataset | GPUs | Learning rate | Epochs | Max steps | Model path |
|---|---|---|---|---|---|---|---|---|
| fast | tiny-qwen2 | lora | ../llm/data/sft.jsonl | cpu | 3e-3 | 1 | 6 | ../llm/model |
| slow | tiny-qwen2 | lora | ../llm/data/sft.jsonl | cpu | 1e-3 | 1 | 6 | ../llm/model |
"""


def prepare_two_runs(root: Path, env: dict[str, str]) -> Path:
    """plan -> setup-dirs -> configs -> slurm-scripts, as plan-runs and its followers give them."""
    exp = root / "trl-two"
    exp.mkdir()
    (exp / "runs_plan.md").write_text(PLAN)
    for step in ("plan", "setup-dirs", "configs"):
        ok(run_cli("runs", step, "trl-two", cwd=root, env=env))
    ok(run_cli("runs", "slurm-scripts", "trl-two", "--cpus", "1", "--mem", "3G", "--time", "15",
               cwd=root, env=env))  # fmt: skip
    cfg = yaml.safe_load((exp / "fast" / "finetune.yaml").read_text())
    assert cfg["model_name_or_path"] == str(root / "llm" / "model") and cfg["use_cpu"] is True
    return exp


def check_two_completed(root: Path, env: dict[str, str], exp: Path) -> None:
    runs = json.loads(ok(run_cli("runs", "monitor", "trl-two", "--json", cwd=root, env=env)))
    by_name = {r["run"]: r for r in runs["runs"]}
    for name in ("fast", "slow"):
        assert by_name[name]["state"] == "COMPLETED"
        assert by_name[name]["step"] == by_name[name]["total_steps"] == 6
        assert 0 < by_name[name]["loss"] < 10
        assert (exp / name / "output" / "checkpoint-6" / "adapter_model.safetensors").is_file()
        assert "trainer_state.json" in {p.name for p in (exp / name / "output").rglob("*.json")}


@pytest.mark.slow
def test_two_runs_through_runs_launch_here(project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-slurm-here"
    empty.mkdir()
    env = {"PATH": str(empty)}  # no sbatch: the local executor runs the scripts one by one
    exp = prepare_two_runs(project, env)
    start = time.monotonic()
    out = ok(run_cli("runs", "launch", "trl-two", cwd=project, env=env, timeout=600))
    print(f"runs launch, two 6-step runs: {time.monotonic() - start:.1f} s")
    assert "fast: ->COMPLETED" in out and "slow: ->COMPLETED" in out, out
    check_two_completed(project, env, exp)


@pytest.mark.slow
def test_two_runs_on_the_slurm_cluster(project: Path, slurm_cluster: SlurmCluster) -> None:
    env = slurm_cluster.env
    exp = prepare_two_runs(project, env)
    script = (exp / "fast" / "finetune.slurm").read_text()
    assert "#SBATCH --mem=3G" in script
    first = json.loads(ok(run_cli("runs", "launch", "trl-two", "--json", cwd=project, env=env)))
    assert sorted(first["submitted"]) == ["fast", "slow"]
    start = time.monotonic()
    follow = run_cli("runs", "monitor", "trl-two", "--follow", "--max-interval", "3", "--json",
                     cwd=project, env=env, timeout=900)  # fmt: skip
    assert follow.returncode == 0, follow.stdout + follow.stderr
    print(f"two 6-step TRL runs on the local SLURM cluster: {time.monotonic() - start:.1f} s")
    states = {r["run"]: r["state"] for r in json.loads(follow.stdout)["runs"]}
    assert states == {"fast": "COMPLETED", "slow": "COMPLETED"}, follow.stdout
    check_two_completed(project, env, exp)
    again = json.loads(ok(run_cli("runs", "launch", "trl-two", "--json", cwd=project, env=env)))
    assert again["submitted"] == {}
