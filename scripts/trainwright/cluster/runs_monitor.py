"""`trainwright runs monitor`: poll every job at once, read the logs, react to out-of-memory.

A run whose log shows an out-of-memory (or whose job ended OUT_OF_MEMORY) is resubmitted with
half the batch and twice the accumulation, up to three times. A job killed by SIGKILL with no
such line counts as out-of-memory only when SLURM says OUT_OF_MEMORY (its cgroup saw the OOM
killer act); FAILED with exit 137 is someone's kill. A job that ended NODE_FAIL (a node of it
went down) is resubmitted once, resuming from its last checkpoint; a job the person cancelled
is not. Other endings are recorded; a
later `trainwright runs launch` resubmits failed runs, resuming from their checkpoints.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainwright.cluster import joblog, lifecycle, slurm, states
from trainwright.cluster.runs_plan import Plan, PlannedRun
from trainwright.cluster.status import editing

BACKOFF_START_S = 2.0
BACKOFF_FACTOR = 1.5
BACKOFF_CAP_S = 60.0
MAX_NODE_FAIL_RETRIES = 1
# What slurmstepd writes into the job's output when a node of the job fails.
NODE_FAILURE = r"\*\*\* JOB {job} ON \S+ CANCELLED AT \S+ DUE TO NODE FAILURE"


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _progress(entry: dict[str, Any], backend: str | None, text: str) -> None:
    if not text or backend is None:
        return
    prog = joblog.progress(joblog.last_attempt(text), backend)
    found = {k: v for k, v in prog.items() if k != "finished" and v is not None}
    if found:
        entry["progress"] = found


def _settle(
    experiment_dir: Path,
    plan: Plan | None,
    name: str,
    entry: dict[str, Any],
    info: slurm.JobInfo | None,
    resubmit: bool,
) -> dict[str, Any] | None:
    """Record what a poll found; resubmit after an OOM. Returns an event for the report."""
    text = joblog.read(entry.get("log"))
    run = _planned(plan, name)
    _progress(entry, run.backend if run else None, text)
    old = entry.get("state")
    if entry.get("executor") == "local":
        if states.is_live(old or "") and not _pid_alive(entry.get("pid")):
            code = joblog.script_exit(text)
            state = states.COMPLETED if code == 0 else states.FAILED
            if code is None:
                state, code = states.LOST, None
            info = slurm.JobInfo(entry.get("job_id") or "", state, str(code), "executor stopped")
        else:
            return None
    if info is None:
        return None
    state = info.state
    if state == states.LOST:
        code = joblog.script_exit(text)
        if code is not None:
            state = states.COMPLETED if code == 0 else states.FAILED
            info.exit_code = f"{code}:0"
    if states.is_live(state) and entry.get("executor") != "local":
        event = _requeued_after_node_fail(name, old, entry, info, text, resubmit)
        if event:
            return event
    if states.is_live(state):
        entry["state"] = state
        if info.reason:
            entry["reason"] = info.reason
        else:
            entry.pop("reason", None)
        if state == states.RUNNING and info.start and not entry.get("started"):
            entry["started"] = info.start
        return {"run": name, "from": old, "to": state} if state != old else None
    oom = None
    # What the scheduler saw of the OOM killer (not known for a lost job or a local executor).
    unknown = info.state == states.LOST or entry.get("executor") == "local"
    oom_kill = None if unknown else state == states.OUT_OF_MEMORY
    if state in (states.FAILED, states.OUT_OF_MEMORY, states.LOST):
        oom = joblog.out_of_memory(text, joblog.exit_number(info.exit_code), oom_kill)
        if state == states.OUT_OF_MEMORY and not oom:
            oom = "the job went over its memory (SLURM state OUT_OF_MEMORY)"
    if oom and run is not None and resubmit and entry.get("executor") != "local":
        lifecycle.finish(entry, states.OUT_OF_MEMORY, info.exit_code, oom)
        if info.end and info.end not in ("Unknown", "None"):
            entry["ended"] = info.end
        reason = lifecycle.shrink_after_oom(experiment_dir, run, entry, oom)
        if reason is None:
            return {"run": name, "from": old, "to": entry["state"], "reason": entry.get("reason")}
        entry["reason"] = reason
        job_id = lifecycle.submit_run(experiment_dir, run, entry, resume=False)
        entry["reason"] = reason
        return {"run": name, "from": old, "to": states.PENDING, "job_id": job_id, "reason": reason}
    if state == states.NODE_FAIL and run is not None and resubmit:
        event = _after_node_fail(experiment_dir, run, name, old, entry, info)
        if event:
            return event
    reason = oom or info.reason
    if oom:
        state = states.OUT_OF_MEMORY
    elif state == states.FAILED and text:
        reason = joblog.failure_reason(text, joblog.exit_number(info.exit_code), oom_kill)
    lifecycle.finish(entry, state, info.exit_code, reason)
    if state == states.FAILED and text and run is not None:
        lifecycle.note_lasting(experiment_dir, run, entry, text, info.exit_code)
    if info.end and info.end not in ("Unknown", "None"):
        entry["ended"] = info.end
    return {"run": name, "from": old, "to": state, "reason": entry.get("reason")}


def _after_node_fail(
    experiment_dir: Path,
    run: PlannedRun,
    name: str,
    old: str | None,
    entry: dict[str, Any],
    info: slurm.JobInfo,
) -> dict[str, Any] | None:
    """Resubmit once after a node failure (resuming); None when that retry is spent."""
    retries = int(entry.get("node_fail_retries") or 0)
    if retries >= MAX_NODE_FAIL_RETRIES or entry.get("executor") == "local":
        return None
    why = f"a node of job {info.job_id} failed" + (f" ({info.reason})" if info.reason else "")
    lifecycle.finish(entry, states.NODE_FAIL, info.exit_code, why)
    if info.end and info.end not in ("Unknown", "None"):
        entry["ended"] = info.end
    job_id = lifecycle.submit_run(experiment_dir, run, entry, resume=True)
    entry["node_fail_retries"] = retries + 1
    entry["reason"] = f"{why}; resubmitted once, resuming from the last checkpoint"
    return {"run": name, "from": old, "to": states.PENDING, "job_id": job_id, "reason": why}


def _requeued_after_node_fail(
    name: str,
    old: str | None,
    entry: dict[str, Any],
    info: slurm.JobInfo,
    text: str,
    resubmit: bool,
) -> dict[str, Any] | None:
    """SLURM requeued the job itself after a node failure (the script asks `--requeue`): that
    requeue is the one resubmission; a second node failure cancels the job."""
    seen = len(re.findall(NODE_FAILURE.format(job=re.escape(info.job_id)), text))
    if seen <= int(entry.get("node_failures") or 0):
        return None
    entry["node_failures"] = seen
    retries = int(entry.get("node_fail_retries") or 0)
    why = f"a node of job {info.job_id} failed (NODE_FAIL)"
    if retries < MAX_NODE_FAIL_RETRIES or not resubmit:
        entry["node_fail_retries"] = retries + 1
        entry["state"] = info.state
        entry["reason"] = f"{why}; SLURM requeued it once, resuming from the last checkpoint"
        return {"run": name, "from": old, "to": info.state, "reason": entry["reason"]}
    slurm.cancel(info.job_id)
    reason = f"{why} again after {retries} resubmission; cancelled, not resubmitted again"
    lifecycle.finish(entry, states.NODE_FAIL, info.exit_code, reason)
    return {"run": name, "from": old, "to": states.NODE_FAIL, "reason": reason}


def _planned(plan: Plan | None, name: str) -> PlannedRun | None:
    if plan is None:
        return None
    for run in plan.runs:
        if run.name == name:
            return run
    return None


def refresh(
    experiment_dir: Path, data: dict[str, Any], plan: Plan | None, resubmit: bool = True
) -> list[dict[str, Any]]:
    """Update every run with a live job in `data` (already locked by the caller)."""
    runs = data.get("runs", {})
    polled = {
        name: entry
        for name, entry in runs.items()
        if states.is_live(entry.get("state", ""))
        and (entry.get("job_id") or entry.get("executor") == "local")
    }
    slurm_ids = [e["job_id"] for e in polled.values() if e.get("executor") != "local"]
    found = slurm.poll(slurm_ids) if slurm_ids and slurm.have_sbatch() else {}
    events = []
    for name, entry in polled.items():
        info = found.get(entry.get("job_id") or "")
        if entry.get("executor") != "local" and info is None:
            continue  # SLURM tools not reachable from here: leave the state as it was
        event = _settle(experiment_dir, plan, name, entry, info, resubmit)
        if event:
            events.append(event)
    return events


def snapshot(data: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, entry in data.get("runs", {}).items():
        prog = entry.get("progress") or {}
        rows.append(
            {
                "run": name,
                "state": entry.get("state"),
                "job_id": entry.get("job_id"),
                "executor": entry.get("executor"),
                "step": prog.get("step"),
                "total_steps": prog.get("total_steps"),
                "loss": prog.get("loss"),
                "eta_s": prog.get("eta_s"),
                "oom_retries": entry.get("oom_retries", 0),
                "batch_size": entry.get("batch_size"),
                "reason": entry.get("reason"),
                "log": entry.get("log"),
            }
        )
    return rows


def monitor_once(experiment_dir: Path, plan: Plan | None, resubmit: bool = True) -> dict[str, Any]:
    with editing(experiment_dir) as data:
        events = refresh(experiment_dir, data, plan, resubmit)
        rows = snapshot(data)
    return {"experiment_dir": str(experiment_dir), "runs": rows, "events": events}


def follow(
    experiment_dir: Path,
    plan: Plan | None,
    on_report: Callable[[dict[str, Any]], None],
    cap_s: float = BACKOFF_CAP_S,
    max_polls: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    resubmit: bool = True,
) -> dict[str, Any]:
    """Poll until no run is live: 2 s at first, 1.5x longer while nothing changes, capped."""
    delay = BACKOFF_START_S
    polls = 0
    while True:
        report = monitor_once(experiment_dir, plan, resubmit)
        polls += 1
        on_report(report)
        live = [r for r in report["runs"] if states.is_live(r["state"] or "")]
        if not live or (max_polls is not None and polls >= max_polls):
            report["polls"] = polls
            return report
        delay = BACKOFF_START_S if report["events"] else min(cap_s, delay * BACKOFF_FACTOR)
        sleep(delay)


def summary_exit_code(report: dict[str, Any]) -> int:
    """1 when a run ended without finishing (a check found a problem), else 0."""
    return 1 if any(r["state"] in states.UNFINISHED for r in report["runs"]) else 0


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
