"""`runs monitor` after a node failure, without a cluster: the decisions on SLURM's answers.

The same paths run against the real two-node cluster in tests/test_cluster_two_nodes.py (slow);
here the scheduler's answers are the JobInfo records it gives there, and submitting or cancelling
a job is recorded instead of done.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from trainwright.cluster import lifecycle, runs_monitor, slurm, states

FAILURE_LINE = (
    "slurmstepd-twnode1: error: *** JOB {job} ON twnode1 CANCELLED AT 2026-12-05T20:09:14 "
    "DUE TO NODE FAILURE, SEE SLURMCTLD LOG FOR DETAILS ***\n"
)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    made: dict[str, list[Any]] = {"submit": [], "cancel": []}

    def submit(experiment_dir: Path, run: Any, entry: dict[str, Any], resume: bool) -> str:
        job_id = str(100 + len(made["submit"]))
        made["submit"].append((run.name, resume))
        lifecycle.start_attempt(
            entry, job_id=job_id, executor="slurm", log="", resume=resume, batch=(2, 1)
        )
        return job_id

    monkeypatch.setattr(lifecycle, "submit_run", submit)
    monkeypatch.setattr(slurm, "cancel", lambda job_id: made["cancel"].append(job_id))
    return made


PLAN = SimpleNamespace(runs=[SimpleNamespace(name="run", backend="tiny")])


def entry_for(job_id: str, log: Path, state: str = states.RUNNING) -> dict[str, Any]:
    return {"state": state, "job_id": job_id, "executor": "slurm", "log": str(log)}


def settle(tmp_path: Path, entry: dict[str, Any], info: slurm.JobInfo) -> dict[str, Any] | None:
    return runs_monitor._settle(tmp_path, PLAN, "run", entry, info, True)  # type: ignore[arg-type]


def test_node_fail_resubmits_once_resuming(tmp_path: Path, calls: dict) -> None:
    log = tmp_path / "slurm-7.out"
    log.write_text("trainwright: start\n" + FAILURE_LINE.format(job=7))
    entry = entry_for("7", log)
    event = settle(tmp_path, entry, slurm.JobInfo("7", states.NODE_FAIL, "0:0", "NodeDown"))
    assert calls["submit"] == [("run", True)]
    assert event and event["to"] == states.PENDING and event["job_id"] == "100"
    assert entry["attempts"][0]["state"] == states.NODE_FAIL
    assert entry["node_fail_retries"] == 1 and "resubmitted once" in entry["reason"]

    event = settle(tmp_path, entry, slurm.JobInfo("100", states.NODE_FAIL, "0:0", "NodeDown"))
    assert calls["submit"] == [("run", True)], "a second node failure is not resubmitted"
    assert entry["state"] == states.NODE_FAIL and event and event["to"] == states.NODE_FAIL


def test_slurm_requeue_after_node_failure_is_the_one_resubmission(
    tmp_path: Path, calls: dict
) -> None:
    log = tmp_path / "slurm-8.out"
    log.write_text("trainwright: start\ntiny: step=1/9\n")
    entry = entry_for("8", log)
    assert settle(tmp_path, entry, slurm.JobInfo("8", states.RUNNING)) is None
    log.write_text(log.read_text() + FAILURE_LINE.format(job=8))
    event = settle(tmp_path, entry, slurm.JobInfo("8", states.PENDING, reason="BeginTime"))
    assert event and "SLURM requeued it once" in event["reason"]
    assert entry["state"] == states.PENDING and entry["node_fail_retries"] == 1
    assert calls == {"submit": [], "cancel": []}
    # The same line on the next poll is the same failure, not a second one.
    assert settle(tmp_path, entry, slurm.JobInfo("8", states.PENDING, reason="BeginTime")) is None

    log.write_text(log.read_text() + "trainwright: start\n" + FAILURE_LINE.format(job=8))
    event = settle(tmp_path, entry, slurm.JobInfo("8", states.PENDING, reason="BeginTime"))
    assert calls == {"submit": [], "cancel": ["8"]}
    assert entry["state"] == states.NODE_FAIL and "not resubmitted again" in entry["reason"]
    assert event and event["to"] == states.NODE_FAIL


def test_a_cancelled_job_is_not_resubmitted(tmp_path: Path, calls: dict) -> None:
    log = tmp_path / "slurm-9.out"
    log.write_text("trainwright: start\nslurmstepd: error: *** JOB 9 ON twnode1 CANCELLED ***\n")
    entry = entry_for("9", log)
    event = settle(tmp_path, entry, slurm.JobInfo("9", states.CANCELLED, "0:15", "by 0"))
    assert calls == {"submit": [], "cancel": []}
    assert entry["state"] == states.CANCELLED and event and event["to"] == states.CANCELLED
