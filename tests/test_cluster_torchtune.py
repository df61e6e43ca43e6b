"""The whole experiment path with the real torchtune on tiny-llm (issue 15 §2), from a
`trainwright init` project root with relative paths, the commands in the order the skills give
them (plan-runs, setup-experiment-dirs, create-torchtune-config, generate-slurm-script,
launch-runs, monitor-jobs): a base-model row and LoRA at two learning rates, on the real
single-node SLURM cluster and, without sbatch, one after another here."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from helpers import run_cli
from support.slurm_cluster import SlurmCluster
from support.tune_project import add_plan_columns, make_tune_project, ok

pytestmark = pytest.mark.skipif(
    not __import__("importlib").util.find_spec("torchtune"),
    reason="torchtune is not installed (pip install '.[tune]')",
)
STEPS = 60  # about 3 s of training on a quiet 2-core machine: long enough for a look
EXP = "tt"


def prepare(root: Path, env: dict[str, str]) -> None:
    """plan -> (the person adds Max steps and Checkpoint dir) -> setup-dirs -> configs ->
    slurm-scripts, as the skills prescribe."""
    ok(run_cli("runs", "plan", EXP, "--model", "tiny-llm", "--dataset",
               "../llm/data/instruct.json", "--backend", "torchtune", "--runs", "2", cwd=root,
               env=env))  # fmt: skip
    add_plan_columns(root / EXP / "runs_plan.md", STEPS, "../llm/model")
    ok(run_cli("runs", "validate", EXP, cwd=root, env=env))
    ok(run_cli("runs", "plan", EXP, cwd=root, env=env))
    ok(run_cli("runs", "setup-dirs", EXP, cwd=root, env=env))
    ok(run_cli("runs", "torchtune-configs", EXP, "--validate", cwd=root, env=env, timeout=300))
    args = ["--cpus", "1", "--mem", "2G", "--time", "15"]
    ok(run_cli("runs", "slurm-scripts", EXP, *args, cwd=root, env=env))
    plan = (root / EXP / "runs_plan.md").read_text()
    assert "| run1 | tiny-llm | lora |" in plan and "| cpu | 3e-4 |" in plan
    cfg = yaml.safe_load((root / EXP / "run1" / "finetune.yaml").read_text())
    assert cfg["device"] == "cpu" and cfg["model"]["embed_dim"] == 256
    assert cfg["checkpointer"]["checkpoint_dir"] == str(root / "llm" / "model")
    assert (
        cfg["optimizer"]["lr"]
        != yaml.safe_load((root / EXP / "run2" / "finetune.yaml").read_text())["optimizer"]["lr"]
    )


def check_completed(root: Path, runs: list[dict]) -> None:
    by_name = {r["run"]: r for r in runs}
    assert by_name["base"]["state"] == "SKIPPED"
    for name in ("run1", "run2"):
        run = by_name[name]
        assert run["state"] == "COMPLETED", run
        assert run["step"] == run["total_steps"] == STEPS, run
        assert 0 < run["loss"] < 10
        epoch = root / EXP / name / "output" / "epoch_0"
        assert (epoch / "adapter_model.safetensors").is_file()
        log = Path(run["log"]).read_text()
        assert f"1|{STEPS}|Loss: " in log  # torchtune's own bar, not a synthetic log


@pytest.mark.slow
@pytest.mark.slurm
def test_torchtune_experiment_on_slurm(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    env = slurm_cluster.env
    root = make_tune_project(tmp_path / "studio")
    prepare(root, env)
    start = time.monotonic()
    first = json.loads(ok(run_cli("runs", "launch", EXP, "--json", cwd=root, env=env)))
    assert sorted(first["submitted"]) == ["run1", "run2"]
    seen: dict[str, tuple] = {}  # a person's look while they train: step, loss and ETA
    deadline = time.monotonic() + 600
    while not seen and time.monotonic() < deadline:
        look = json.loads(run_cli("runs", "monitor", EXP, "--json", cwd=root, env=env).stdout)
        for r in look["runs"]:
            if r["state"] == "RUNNING" and r["step"] and r["eta_s"] is not None:
                seen[r["run"]] = (r["step"], r["total_steps"], r["loss"], r["eta_s"])
        if all(r["state"] in ("COMPLETED", "SKIPPED", "FAILED") for r in look["runs"]):
            break
        time.sleep(0.2)
    assert seen, "no look caught a running run with its step, loss and ETA"
    (step, total, loss, eta) = next(iter(seen.values()))
    assert 0 < step <= total == STEPS and 0 < loss < 10 and eta >= 0
    follow = run_cli("runs", "monitor", EXP, "--follow", "--max-interval", "3", "--json",
                     cwd=root, env=env, timeout=900)  # fmt: skip
    assert follow.returncode == 0, follow.stdout + follow.stderr
    wall = time.monotonic() - start
    check_completed(root, json.loads(follow.stdout)["runs"])
    st = yaml.safe_load((root / EXP / "runs_status.yaml").read_text())["runs"]
    assert st["run1"]["job_id"] == first["submitted"]["run1"]
    again = json.loads(ok(run_cli("runs", "launch", EXP, "--json", cwd=root, env=env)))
    assert again["submitted"] == {}
    print(f"3-run torchtune experiment on the local SLURM cluster: {wall:.1f} s (launch->done)")


@pytest.mark.slow
def test_torchtune_experiment_without_sbatch(tmp_path: Path) -> None:
    empty = tmp_path / "no-slurm-here"
    empty.mkdir()
    env = {"PATH": str(empty)}  # no sbatch: the local executor runs the scripts one by one
    root = make_tune_project(tmp_path / "studio")
    prepare(root, env)
    start = time.monotonic()
    out = json.loads(ok(run_cli("runs", "launch", EXP, "--json", cwd=root, env=env, timeout=900)))
    wall = time.monotonic() - start
    assert out["executor"] == "local"
    assert out["final"] == {"base": "SKIPPED", "run1": "COMPLETED", "run2": "COMPLETED"}
    st = yaml.safe_load((root / EXP / "runs_status.yaml").read_text())["runs"]
    assert st["run1"]["ended"] <= st["run2"]["submitted"]  # one after another
    look = json.loads(ok(run_cli("runs", "monitor", EXP, "--json", cwd=root, env=env)))
    check_completed(root, look["runs"])
    again = json.loads(ok(run_cli("runs", "launch", EXP, "--json", cwd=root, env=env)))
    assert again["submitted"] == {}
    print(f"3-run torchtune experiment, local executor: {wall:.1f} s")
