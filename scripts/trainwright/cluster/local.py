"""The executor for a machine without SLURM: the same scripts, one run after another, here.

`#SBATCH` lines are comments to bash, so `finetune.slurm` runs as it is. The status file gets
the same fields as on a cluster (job ids are `local-<pid>`), and an out-of-memory is retried
with half the batch right away, as `monitor` does on a cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainwright.clock import file_stamp
from trainwright.cluster import joblog, lifecycle, states
from trainwright.cluster.adapters import SCRIPT_NAME
from trainwright.cluster.dirs import run_dir
from trainwright.cluster.runs_plan import PlannedRun
from trainwright.cluster.status import editing, run_entry
from trainwright.run import oom_kills


def _bash() -> str:
    return shutil.which("bash") or "/bin/bash"


def _log_path(folder: Path) -> Path:
    stamp = file_stamp()
    path = folder / "logs" / f"local-{stamp}.out"
    n = 1
    while path.exists():
        n += 1
        path = folder / "logs" / f"local-{stamp}-{n}.out"
    return path


def _run_once(experiment_dir: Path, run: PlannedRun, resume: bool) -> tuple[int, Path, bool | None]:
    """Run the script once; returns its exit code, its log, and whether the kernel's OOM-kill
    counters rose meanwhile (None: none readable here)."""
    folder = run_dir(experiment_dir, run.name)
    log = _log_path(folder)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    if resume:
        env["TRAINWRIGHT_RESUME"] = "1"
    before = oom_kills.snapshot()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [_bash(), str(folder / SCRIPT_NAME)],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    with editing(experiment_dir) as data:
        lifecycle.start_attempt(
            run_entry(data, run.name),
            job_id=f"local-{proc.pid}",
            executor="local",
            log=str(log),
            resume=resume,
            batch=lifecycle.batch_of(experiment_dir, run),
            pid=proc.pid,
        )
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        with editing(experiment_dir) as data:
            lifecycle.finish(run_entry(data, run.name), states.CANCELLED, reason="interrupted")
        raise
    return code, log, oom_kills.killed_by_oom(before, oom_kills.snapshot())


def run_locally(
    experiment_dir: Path,
    targets: list[tuple[PlannedRun, bool]],
    on_event: Callable[[dict[str, Any]], None] = lambda e: None,
) -> list[dict[str, Any]]:
    """Run each (run, resume) in turn; returns one event per attempt."""
    events = []
    for run, resume in targets:
        while True:
            on_event({"run": run.name, "to": states.RUNNING, "executor": "local"})
            code, log, oom_kill = _run_once(experiment_dir, run, resume)
            text = joblog.read(log)
            oom = joblog.out_of_memory(text, code, oom_kill) if code != 0 else None
            with editing(experiment_dir) as data:
                entry = run_entry(data, run.name)
                prog = joblog.progress(joblog.last_attempt(text), run.backend)
                found = {k: v for k, v in prog.items() if k != "finished" and v is not None}
                if found:
                    entry["progress"] = found
                retry = None
                if code == 0:
                    lifecycle.finish(entry, states.COMPLETED, code)
                elif oom:
                    lifecycle.finish(entry, states.OUT_OF_MEMORY, code, oom)
                    retry = lifecycle.shrink_after_oom(experiment_dir, run, entry, oom)
                    retry = retry.replace("resubmitted", "rerun") if retry else None
                    if retry:
                        entry["reason"] = retry
                else:
                    reason = joblog.failure_reason(text, code, oom_kill)
                    lifecycle.finish(entry, states.FAILED, code, reason)
                    lifecycle.note_lasting(experiment_dir, run, entry, text, code)
                event = {
                    "run": run.name,
                    "to": entry["state"],
                    "exit_code": code,
                    "reason": entry.get("reason"),
                    "log": str(log),
                }
            events.append(event)
            on_event(event)
            if not retry:
                break
            resume = False
    return events
