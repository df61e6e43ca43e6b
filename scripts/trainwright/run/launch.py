"""`trainwright launch`: refuse without four current GOs, start one detached supervisor, attach.

A second launch while a run is live attaches to it (run.lock says so); it never starts a second
copy. A finished run is not restarted unless asked (`--again`, which moves the old checkpoints
folder aside first, so nothing is overwritten). A run that failed or was stopped resumes from its
last checkpoint where the backend can.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from trainwright.clock import file_stamp
from trainwright.errors import TrainwrightError
from trainwright.run.launch_target import RunPlan, load_plan
from trainwright.run.runfiles import RunFiles
from trainwright.run.supervisor import EXIT_ALREADY_RUNNING
from trainwright.state import gates
from trainwright.state.grimoire import Grimoire
from trainwright.state.hints import config_command

FIXES = {
    1: "fix the dataset, then: trainwright gate check {p} --gate 1",
    2: "{config}, then: trainwright gate check {p} --gate 2",
    3: "trainwright env check {p}",
    4: "trainwright dry-run {p}",
}


def require_project(g: Grimoire, project: str) -> RunFiles:
    folder = g.project_dir(project)
    if not (folder / "progress.md").is_file():
        raise TrainwrightError(
            f"there is no project '{project}' in {g.root}: start it with "
            f"'trainwright grimoire new {project}'"
        )
    return RunFiles(folder)


def blocking_gates(g: Grimoire, project: str) -> list[dict[str, Any]]:
    """Each gate that is not a current GO, with what is wrong and the command that fixes it."""
    out = []
    for gate in gates.status(g, project)["gates"]:
        if gate["ok"]:
            continue
        state = "STALE (its inputs changed after the GO)" if gate["stale"] else gate["decision"]
        out.append(
            {
                "gate": gate["gate"],
                "name": gate["name"],
                "state": state,
                "reason": gate["reason"],
                "fix": FIXES[gate["gate"]].format(p=project, config=config_command(g, project)),
            }
        )
    return out


def supervisor_command(
    g: Grimoire, project: str, max_retries: int, hang_timeout: float, resume: bool
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "trainwright.run.supervisor",
        "--grimoire",
        str(g.root),  # absolute already; not resolved, so a symlinked project keeps its path
        "--project",
        project,
        "--max-retries",
        str(max_retries),
        "--hang-timeout",
        str(hang_timeout),
    ]
    return cmd + (["--resume"] if resume else [])


def move_checkpoints_aside(plan: RunPlan) -> Path | None:
    folder = plan.checkpoint_dir()
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    target = folder.with_name(f"{folder.name}.{file_stamp()}")
    folder.rename(target)
    return target


def start(
    g: Grimoire,
    project: str,
    *,
    max_retries: int = 3,
    hang_timeout: float = 1800.0,
    again: bool = False,
) -> dict[str, Any]:
    """Start the detached supervisor, or say why not. Never starts a second copy."""
    files = require_project(g, project)
    state = files.read_state()
    base = {"project": project, "log": str(files.log)}
    if files.is_live():
        return {**base, "action": "attached", "pid": state.get("pid"), "status": "running"}
    blocked = blocking_gates(g, project)
    if blocked:
        return {**base, "action": "refused", "gates": blocked}
    plan = load_plan(g, project)
    if state.get("status") == "COMPLETE" and not again:
        return {
            **base,
            "action": "none",
            "status": "complete",
            "message": "this run already finished; 'launch --again' trains a new one (the "
            "old checkpoints folder is moved aside, not deleted)",
        }
    moved = move_checkpoints_aside(plan) if again else None
    resume = (
        not again and plan.can_resume and state.get("status") in ("FAILED", "STOPPED", "RUNNING")
    )
    cmd = supervisor_command(g, project, max_retries, hang_timeout, resume)
    with open(files.supervisor_log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=files.folder,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if files.is_live() and files.read_state().get("pid") == proc.pid:
            break
        rc = proc.poll()
        if rc is not None:
            if rc == EXIT_ALREADY_RUNNING:
                return {**base, "action": "attached", "pid": files.read_state().get("pid")}
            break
        time.sleep(0.1)
    rc = proc.poll()
    if rc is not None and rc != 0 and not files.is_live():
        tail = files.supervisor_log.read_text(errors="replace").strip().splitlines()[-1:]
        return {
            **base,
            "action": "failed-to-start",
            "returncode": rc,
            "message": tail[0] if tail else f"the supervisor exited with {rc}",
        }
    _, config = g.read("config", project)
    return {
        **base,
        "action": "started",
        "pid": proc.pid,
        "resume": resume,
        "backend": plan.backend,
        "batch": plan.batch,
        "estimated_time": config["sections"][""].get("Estimated time"),
        "checkpoints_moved_to": str(moved) if moved else None,
    }


def stop(g: Grimoire, project: str, wait: float = 60.0) -> dict[str, Any]:
    files = require_project(g, project)
    if not files.is_live():
        return {"project": project, "stopped": False, "message": "no run is live"}
    pid = files.read_state().get("pid")
    try:
        pid = int(files.lock.read_text().strip() or pid)
    except (OSError, ValueError):
        pass
    if not isinstance(pid, int):
        raise TrainwrightError(f"{files.state}: the live run has no pid recorded")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while files.is_live() and time.monotonic() < deadline:
        time.sleep(0.2)
    return {
        "project": project,
        "stopped": not files.is_live(),
        "pid": pid,
        "message": "stopped; 'trainwright launch' resumes from the last checkpoint"
        if not files.is_live()
        else f"asked pid {pid} to stop; it is still finishing",
    }
