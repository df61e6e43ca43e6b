"""The tiny trainer on a real two-node SLURM cluster (tests/support/slurm_two_nodes.py).

The multi-node script `runs slurm-scripts` writes (srun + torchrun, rendezvous at the first host
of `scontrol show hostnames`) trains data-parallel over both nodes with gloo on the CPU; the
same global batch and seed on one node gives the same loss. A node set down under a running
job: `runs monitor` reports NODE_FAIL and resubmits once; a job the person cancels stays
cancelled.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers import run_cli
from support.slurm_two_nodes import NODE_NAMES, TwoNodeCluster
from trainwright.cluster import joblog

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

PLAN = """\
# Runs plan: {name}

- **Backend**: tiny

## Defaults
- **Dataset**: {data}
- **Epochs**: {epochs}
- **Batch size**: {batch}

## Runs

| Run | Base model | Method | GPUs | Nodes | Learning rate |
|---|---|---|---|---|---|
| {run} | bundled | lora | cpu | {nodes} | 1e-3 |
"""
GLOBAL_BATCH = 4
STEP_LINE = re.compile(r"^tiny: step=(\d+)/(\d+) .*?loss=([0-9.]+)", re.M)


def experiment(root: Path, name: str, nodes: int, epochs: int) -> Path:
    """A one-run plan, its folders, configs and sbatch script, at the same global batch."""
    from trainwright.backends.tiny_model.data import write_example_dataset

    data = root / "data"
    if not data.is_dir():
        write_example_dataset(data, count=8)
    exp = root / name
    exp.mkdir()
    text = PLAN.format(
        name=name, data=data, epochs=epochs, batch=GLOBAL_BATCH // nodes, run="run", nodes=nodes
    )
    (exp / "runs_plan.md").write_text(text)
    for args in (["plan"], ["setup-dirs"], ["configs"]):
        proc = run_cli("runs", *args, str(exp))
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    cfg = exp / "run" / "finetune.yaml"
    cfg.write_text(cfg.read_text() + "threads: 1\nsave_every_n_epochs: 1\n")
    args = ["slurm-scripts", str(exp), "--cpus", "1", "--mem", "1G", "--time", "10"]
    proc = run_cli("runs", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return exp


def status(exp: Path) -> dict:
    return yaml.safe_load((exp / "runs_status.yaml").read_text())["runs"]["run"]


def launch(cluster: TwoNodeCluster, exp: Path) -> str:
    proc = run_cli("runs", "launch", str(exp), "--json", env=cluster.env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)["submitted"]["run"]


def follow(cluster: TwoNodeCluster, exp: Path) -> float:
    started = time.monotonic()
    args = ["monitor", str(exp), "--follow", "--max-interval", "2", "--json"]
    proc = run_cli("runs", *args, env=cluster.env)
    assert proc.returncode == 0, proc.stdout + proc.stderr + cluster.logs()
    return time.monotonic() - started


def losses(log: str) -> dict[int, float]:
    return {int(m[1]): float(m[3]) for m in STEP_LINE.finditer(log)}


def wait_for(predicate, timeout: float, what: str, cluster: TwoNodeCluster) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen after {timeout:.0f} s\n{cluster.logs()}")


def test_two_node_job_matches_one_node(slurm_two_nodes: TwoNodeCluster, tmp_path: Path) -> None:
    cluster = slurm_two_nodes
    timings = {}
    logs = {}
    for name, nodes in (("one-node", 1), ("two-node", 2)):
        exp = experiment(tmp_path, name, nodes, epochs=3)
        script = (exp / "run" / "finetune.slurm").read_text()
        if nodes == 2:
            assert "#SBATCH --nodes=2" in script
            assert 'scontrol show hostnames "$SLURM_JOB_NODELIST"' in script
            assert re.search(r"LAUNCH=\(srun .*torchrun --nnodes \"\$SLURM_NNODES\"", script)
        job = launch(cluster, exp)
        wall = follow(cluster, exp)
        entry = status(exp)
        assert entry["state"] == "COMPLETED", entry
        assert entry["progress"]["step"] == entry["progress"]["total_steps"] == 6, entry
        record = cluster.job(job)
        assert record["NumNodes"] == str(nodes), record
        logs[name] = Path(entry["log"]).read_text()
        timings[name] = (wall, record.get("RunTime"))
        saved = sorted((exp / "run" / "checkpoints").glob("run-epoch-*.safetensors"))
        assert [p.name for p in saved] == [f"run-epoch-{e:04d}.safetensors" for e in (1, 2, 3)]
    two = logs["two-node"]
    ranks = dict(re.findall(r"^tiny: rank (\d)/2 host=(\S+)", two, re.M))
    assert ranks == {"0": NODE_NAMES[0], "1": NODE_NAMES[1]}, two
    assert "world_size=2 global_batch=4" in two and "batch=2 " in two
    assert two.count("tiny: step=6/6") == 1, "only rank 0 logs steps"
    assert "world_size=1 global_batch=4" in logs["one-node"]
    one_loss, two_loss = losses(logs["one-node"]), losses(two)
    assert sorted(one_loss) == sorted(two_loss) == [1, 2, 3, 4, 5, 6]
    assert abs(two_loss[6] - one_loss[6]) <= 0.02 * one_loss[6], (one_loss, two_loss)
    print(f"\ntwo-node timings (monitor wall s, SLURM RunTime): {timings}; losses {one_loss[6]}")


def set_node_down(cluster: TwoNodeCluster) -> None:
    """What an admin (or a dying machine) does; slurmd answers, so it returns to service."""
    down = ["scontrol", "update", f"nodename={NODE_NAMES[1]}", "state=down", "reason=test"]
    res = cluster.run(down)
    assert res.returncode == 0, res.stderr


def monitor(cluster: TwoNodeCluster, exp: Path) -> list[dict]:
    proc = run_cli("runs", "monitor", str(exp), "--json", env=cluster.env)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return json.loads(proc.stdout)["events"]


def test_node_failure_resubmits_once_and_cancel_does_not(
    slurm_two_nodes: TwoNodeCluster, tmp_path: Path
) -> None:
    cluster = slurm_two_nodes
    exp = experiment(tmp_path, "node-fail", 2, epochs=400)
    first = launch(cluster, exp)

    def training() -> bool:
        log = Path(status(exp)["log"])
        return log.is_file() and "tiny: checkpoint" in joblog.last_attempt(log.read_text())

    def launched() -> bool:
        log = Path(status(exp)["log"])
        return log.is_file() and "trainwright: start" in log.read_text()

    def state_of(job: str, want: str) -> bool:
        return cluster.job(job).get("JobState") == want

    # 1. A job that may not be requeued ends NODE_FAIL: the monitor resubmits it, resuming.
    wait_for(training, 60, "a checkpoint of the two-node job", cluster)
    monitor(cluster, exp)
    assert cluster.run(["scontrol", "update", f"jobid={first}", "requeue=0"]).returncode == 0
    set_node_down(cluster)
    wait_for(lambda: state_of(first, "NODE_FAIL"), 30, "NODE_FAIL", cluster)
    events = monitor(cluster, exp)
    assert [(e["from"], e["to"]) for e in events] == [("RUNNING", "PENDING")], events
    entry = status(exp)
    (attempt,) = entry["attempts"]
    assert attempt["state"] == "NODE_FAIL" and attempt["job_id"] == first, entry
    second = entry["job_id"]
    assert second != first and entry["node_fail_retries"] == 1 and entry["resume"] is True
    assert "resubmitted once, resuming" in entry["reason"]
    wait_for(launched, 60, "the resubmitted job", cluster)
    assert "trainwright: resuming from the last checkpoint" in Path(entry["log"]).read_text()

    # 2. Its node fails too; SLURM requeues it (the script asks --requeue): the retry is
    # spent, so the monitor cancels it and records NODE_FAIL.
    monitor(cluster, exp)
    set_node_down(cluster)
    wait_for(lambda: state_of(second, "PENDING"), 30, "the requeued job", cluster)
    events = monitor(cluster, exp)
    assert [e["to"] for e in events] == ["NODE_FAIL"], events
    entry = status(exp)
    assert entry["state"] == "NODE_FAIL" and entry["job_id"] == second, entry
    assert "not resubmitted again" in entry["reason"]
    wait_for(lambda: state_of(second, "CANCELLED"), 30, "the cancelled requeue", cluster)
    assert len(entry["attempts"]) == 1

    # 3. Relaunched by the person, then cancelled by the person: it stays cancelled.
    third = launch(cluster, exp)
    wait_for(launched, 60, "the relaunched job", cluster)
    monitor(cluster, exp)
    assert cluster.run(["scancel", third]).returncode == 0
    wait_for(lambda: state_of(third, "CANCELLED"), 30, "CANCELLED", cluster)
    monitor(cluster, exp)
    entry = status(exp)
    assert entry["state"] == "CANCELLED" and entry["job_id"] == third, entry
    assert len(entry["attempts"]) == 2, "a cancelled job is not resubmitted"
    assert cluster.run(["squeue", "-h", "-o", "%i"]).stdout.split() == []


def _steps_alive(conf: Path) -> list[int]:
    from support.slurm_cluster import _parents, _pid_alive, _step_of

    return [pid for pid in _parents() if _step_of(pid, conf) and _pid_alive(pid)]


@pytest.mark.parametrize("cancel_first", [True, False], ids=["scancel", "daemons-only"])
def test_teardown_ends_job_steps_and_network(cancel_first: bool) -> None:
    """The fixture's teardown leaves no slurmstepd, namespace, veth or bridge behind, whether
    it cancels the jobs first or only stops the daemons (steps outlive slurmd's SIGTERM)."""
    import tempfile

    from support.slurm_cluster import _missing_requirements, end_jobs
    from support.slurm_two_nodes import (
        DIR_PREFIX,
        namespaces_refused,
        start_two_nodes,
        stop_two_nodes,
    )

    reason = _missing_requirements() or namespaces_refused()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
    cluster = start_two_nodes(root)
    problems: list[str] = []
    try:
        script = cluster.workdir / "sleep.sh"
        script.write_text("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --mem=100M\nsrun sleep 300\n")
        args = ["sbatch", "--parsable", "-D", str(cluster.workdir), str(script)]
        job = cluster.run(args).stdout.strip()
        assert job, cluster.logs()
        wait_for(lambda: len(_steps_alive(cluster.conf)) >= 3, 30, "batch + 2 steps", cluster)
        problems = end_jobs(cluster) if cancel_first else []
    finally:
        problems += stop_two_nodes(root)
    assert problems == []
    assert _steps_alive(cluster.conf) == []
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    spaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for name in cluster.netns:
        assert name not in spaces
    tag = cluster.netns[0].split("-")[1]
    assert f"twb{tag}" not in links and f"twh{tag}" not in links
    shutil.rmtree(root, ignore_errors=True)
