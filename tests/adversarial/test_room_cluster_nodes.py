"""The cluster room, node failures: a node that goes down under a job (squeue says NODE_FAIL)
is resubmitted once, resuming; a job the person cancelled is not. The same on a real two-node
cluster: tests/test_cluster_two_nodes.py (slow)."""

from __future__ import annotations

import os

import pytest
import yaml
from harness import Case, cli, run_case
from room_kit import fake_bin, ok, params
from test_room_cluster import EXP, STATUS, _plan


def _launched(p):
    _plan(p)
    path = fake_bin("nf-launch", {"sbatch": "echo 4242", "squeue": "exit 0", "sacct": "exit 0"})
    ok(cli(p, "runs", "launch", EXP, "--only", "run1", PATH={**os.environ, "PATH": path}["PATH"]))


def _env(kind: str, state: str, reason: str) -> dict:
    squeue = f'echo "4242|{state}|{reason}|N/A|exp/run1"'
    return {"PATH": fake_bin(kind, {"sbatch": "echo 4343", "squeue": squeue, "sacct": "exit 0"})}


def _run1(r) -> dict:
    return yaml.safe_load((r.project / "exp/runs_status.yaml").read_text())["runs"]["run1"]


def _resubmitted_once(r) -> None:
    run = _run1(r)
    assert run["job_id"] == "4343" and run["resume"] is True, run
    assert [a["state"] for a in run["attempts"]] == ["NODE_FAIL"], run
    assert run["node_fail_retries"] == 1 and "resubmitted once" in run["reason"], run


def _left_cancelled(r) -> None:
    run = _run1(r)
    assert run["state"] == "CANCELLED" and run["job_id"] == "4242", run
    assert not run.get("attempts"), run


CASES = [
    Case(
        "node-down-mid-job",
        "cluster",
        "lying-tool",
        "correct",
        ["runs", "monitor", EXP],
        setup=_launched,
        env=_env("nf-down", "NODE_FAIL", "NodeDown"),
        may_change=STATUS,
        check=_resubmitted_once,
    ),
    Case(
        "job-cancelled-by-the-person",
        "cluster",
        "lying-tool",
        "refused",  # exit 1: a run ended without finishing, and the monitor says so
        ["runs", "monitor", EXP],
        setup=_launched,
        env=_env("nf-cancel", "CANCELLED", "None"),
        may_change=STATUS,
        check=_left_cancelled,
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
