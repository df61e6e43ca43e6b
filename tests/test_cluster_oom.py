"""A real out-of-memory on SLURM, recovered: a tiny run whose batch does not fit its job's
`--mem` is killed by the OOM killer in the job's memory cgroup (SIGKILL, no text from the
trainer), the job ends OUT_OF_MEMORY, `runs monitor` resubmits it at half the batch with twice
the accumulation, and it completes.

Measured on the 2-core CI machine (peak of the job's memory cgroup, 8 images at 128 px, one
thread): batch 8 needs ~800 MiB, batch 4 ~560 MiB, so a 650 MiB cap kills 8 and fits 4.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from helpers import run_cli
from support.slurm_cluster import SlurmCluster

PLAN = """\
# Runs plan: tiny-oom

- **Backend**: tiny

## Defaults
- **Dataset**: data
- **Epochs**: 1
- **Batch size**: 8

## Runs

| Run | Base model | Method | GPUs | Learning rate | Notes |
|---|---|---|---|---|---|
| capped | bundled | lora | cpu | 1e-3 | batch 8 does not fit the job's 650 MiB |
"""
MEM = "650M"


def experiment(tmp_path: Path, env: dict[str, str], plan: str = PLAN) -> Path:
    """The plan's run dirs, configs (at 128 px) and sbatch scripts (--mem 650M)."""
    from trainwright.backends.tiny_model.data import write_example_dataset

    exp = tmp_path / "tiny-oom"
    exp.mkdir()
    (exp / "runs_plan.md").write_text(plan)
    write_example_dataset(exp / "data", count=8, size=128)
    for args in (["plan"], ["setup-dirs"], ["configs"]):
        proc = run_cli("runs", *args, str(exp))
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    (run,) = [p.parent for p in exp.glob("*/finetune.yaml")]
    config = run / "finetune.yaml"
    config.write_text(config.read_text().replace("resolution: 64", "resolution: 128"))
    assert yaml.safe_load(config.read_text())["resolution"] == 128
    args = ["slurm-scripts", str(exp), "--cpus", "1", "--mem", MEM, "--time", "10"]
    proc = run_cli("runs", *args, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"#SBATCH --mem={MEM}" in (run / "finetune.slurm").read_text()
    return exp


@pytest.mark.slow
@pytest.mark.slurm
def test_a_job_over_its_memory_is_resubmitted_at_half_the_batch(
    slurm_memcap_cluster: SlurmCluster, tmp_path: Path
) -> None:
    cluster = slurm_memcap_cluster
    env = cluster.env
    exp = experiment(tmp_path, env)
    config = exp / "capped" / "finetune.yaml"

    launched = run_cli("runs", "launch", str(exp), "--json", env=env)
    assert launched.returncode == 0, launched.stdout + launched.stderr
    first = json.loads(launched.stdout)["submitted"]["capped"]
    follow = run_cli(
        "runs", "monitor", str(exp), "--follow", "--max-interval", "2", "--json", env=env
    )
    assert follow.returncode == 0, follow.stdout + follow.stderr

    assert cluster.job(first)["JobState"] == "OUT_OF_MEMORY"  # SLURM's own word for it
    run = yaml.safe_load((exp / "runs_status.yaml").read_text())["runs"]["capped"]
    assert run["state"] == "COMPLETED", run
    assert run["oom_retries"] == 1 and run["job_id"] != first
    (attempt,) = run["attempts"]
    assert attempt["job_id"] == first and attempt["state"] == "OUT_OF_MEMORY"
    assert (attempt["batch_size"], attempt["gradient_accumulation_steps"]) == (8, 1)
    assert "resubmitted with batch 8->4, accumulation 1->2" in attempt["reason"]
    killed = Path(attempt["log"]).read_text()
    assert "oom-kill event" in killed  # slurmstepd's line: the cgroup's OOM killer acted
    assert "can't allocate memory" not in killed and "MemoryError" not in killed
    assert (run["batch_size"], run["gradient_accumulation_steps"]) == (4, 2)
    cfg = yaml.safe_load(config.read_text())
    assert (cfg["batch_size"], cfg["gradient_accumulation_steps"]) == (4, 2)
    assert run["progress"]["step"] == run["progress"]["total_steps"] == 1  # 8 images, eff. 8
    assert list((exp / "capped" / "checkpoints").glob("capped-epoch-*.safetensors"))


def _trainer_pid(run_dir: Path) -> int | None:
    """The tiny trainer the job started in `run_dir` (its working folder)."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = (proc / "cwd").resolve()
        except OSError:
            continue
        if b"trainwright.backends.tiny_model.train" in argv and cwd == run_dir.resolve():
            return int(proc.name)
    return None


@pytest.mark.slow
@pytest.mark.slurm
def test_a_person_killing_the_trainer_is_not_an_out_of_memory(
    slurm_memcap_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """`kill -9` on the trainer inside a job that fits its memory: SIGKILL, exit 137, no text,
    and SLURM says FAILED, not OUT_OF_MEMORY; the run is not resubmitted at a smaller batch."""
    cluster = slurm_memcap_cluster
    env = cluster.env
    plan = PLAN.replace("Batch size**: 8", "Batch size**: 2").replace("Epochs**: 1", "Epochs**: 50")
    exp = experiment(tmp_path, env, plan)
    config = exp / "capped" / "finetune.yaml"
    launched = run_cli("runs", "launch", str(exp), "--json", env=env)
    assert launched.returncode == 0, launched.stdout + launched.stderr
    job = json.loads(launched.stdout)["submitted"]["capped"]
    log = exp / "capped" / "logs"
    deadline = time.monotonic() + 60
    pid = None
    try:
        while time.monotonic() < deadline:
            texts = [p.read_text(errors="replace") for p in log.glob("*.out")]
            pid = _trainer_pid(config.parent)
            if pid and any("tiny: step=" in t for t in texts):
                break
            time.sleep(0.3)
        assert pid, f"the trainer did not start: {cluster.job(job)}"
    finally:
        if pid is None:
            cluster.run(["scancel", job])
    os.kill(pid, signal.SIGKILL)
    follow = run_cli("runs", "monitor", str(exp), "--follow", "--max-interval", "2", env=env)
    assert follow.returncode == 1, follow.stdout + follow.stderr  # a run ended unfinished
    assert cluster.job(job)["JobState"] == "FAILED"
    run = yaml.safe_load((exp / "runs_status.yaml").read_text())["runs"]["capped"]
    assert run["state"] == "FAILED" and run["job_id"] == job, run
    assert run.get("oom_retries", 0) == 0 and not run.get("attempts")
    assert "not by the out-of-memory killer" in run["reason"]
    assert yaml.safe_load(config.read_text())["batch_size"] == 2  # untouched
