"""Where a run stands: progress, loss now and at the start, memory, time left, loss anomalies.

`snapshot()` turns a parsed log into the stable `--json` object of `trainwright monitor`;
`refresh_progress()` also writes progress.md (through the state layer) and loss-curve.png.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from trainwright.errors import TrainwrightError
from trainwright.run import anomalies as anomaly_rules
from trainwright.run.checkpoints import scan
from trainwright.run.curve import draw
from trainwright.run.logs import LogState, read_log
from trainwright.run.runfiles import RunFiles
from trainwright.state.grimoire import Grimoire

STATUS_WORDS = {
    "RUNNING": "running",
    "COMPLETE": "complete",
    "FAILED": "failed",
    "STOPPED": "stopped",
}


def duration(seconds: float | None) -> str | None:
    if seconds is None or math.isnan(seconds):
        return None
    s = int(round(seconds))
    if s < 90:
        return f"{s} s"
    if s < 90 * 60:
        return f"{round(s / 60)} min"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    if math.isnan(x) or math.isinf(x):
        return x  # JSON shows NaN/Infinity; the anomaly explains it
    return round(x, 6)


def gpu_memory() -> tuple[float | None, float | None]:
    """(used, total) GiB of the busiest GPU via nvidia-smi, or (None, None) without one."""
    from trainwright.hardware.gpu import probe_gpus

    probe = probe_gpus(timeout=5.0)
    if not probe.found:
        return None, None
    busiest = max(probe.gpus, key=lambda g: g.memory_used_mib)
    return round(busiest.memory_used_mib / 1024, 2), busiest.memory_total_gib


def log_status(st: LogState) -> str:
    if st.errors and not st.finished:
        return "failed"
    if st.finished or (st.steps and st.step is not None and st.step >= st.steps):
        return "complete"
    return "running" if st.points else "no data"


def snapshot(
    st: LogState, epochs: int | None = None, status: str | None = None, probe_gpu: bool = True
) -> dict[str, Any]:
    epochs = epochs or st.epochs
    steps = st.steps
    if steps is None and epochs and st.steps_per_epoch:
        steps = epochs * st.steps_per_epoch
        st.steps = steps
    found = anomaly_rules.detect(st.curve(), steps, epochs)
    eta = st.rate_eta()
    if eta is None:
        eta = st.eta_s
    if eta is None and st.elapsed_s and st.step and steps:
        eta = st.elapsed_s / st.step * max(0, steps - st.step)
    vram_used, vram_total = (None, None)
    if probe_gpu:
        vram_used, vram_total = gpu_memory()
    if vram_used is None:
        vram_used = st.vram_used_gib
    status = status or log_status(st)
    if status == "complete":
        eta = 0.0
    epoch = st.epoch
    if epoch is None and st.step and steps and epochs:
        epoch = max(1, math.ceil(st.step / (steps / epochs)))
    return {
        "format": st.format,
        "epoch": epoch,
        "epochs": epochs,
        "step": st.step,
        "steps": steps,
        "loss": _num(st.loss),
        "loss_start": _num(st.loss_start),
        "elapsed_s": None if st.elapsed_s is None else round(st.elapsed_s, 1),
        "eta_s": None if eta is None else round(eta, 1),
        "vram_used_gib": vram_used,
        "vram_total_gib": vram_total,
        "ram_used_gib": st.ram_used_gib,
        "anomalies": [a.as_dict() for a in found],
        "status": status,
        "errors": st.errors[-5:],
        "notes": st.notes,
        "attempts": st.attempts,
    }


def project_status(files: RunFiles) -> str:
    raw = str(files.read_state().get("status"))
    if raw in STATUS_WORDS and raw != "RUNNING":
        return STATUS_WORDS[raw]
    if files.is_live():
        return "running"
    if raw == "RUNNING":
        return "interrupted"  # the supervisor died without recording an end
    return "not started"


def _progress_fields(snap: dict[str, Any], state: dict[str, Any], cks: list[str]) -> dict:
    status = {
        "running": "RUNNING",
        "complete": "COMPLETE",
        "failed": "FAILED",
        "stopped": "STOPPED",
        "interrupted": "STOPPED",
    }.get(snap["status"], "PENDING")
    top: dict[str, object] = {"Status": status}
    if snap["epochs"]:
        top["Current epoch"] = f"{snap['epoch'] or 0}/{snap['epochs']}"
    if snap["step"] is not None:
        top["Current step"] = f"{snap['step']}/{snap['steps'] or '?'}"
    if snap["loss"] is not None:
        top["Loss"] = f"{snap['loss']:.4g} (started: {snap['loss_start']:.4g})"
    if snap["vram_used_gib"] is not None:
        total = f" / {snap['vram_total_gib']}" if snap["vram_total_gib"] else ""
        top["VRAM usage"] = f"{snap['vram_used_gib']}{total} GB"
    elif snap["ram_used_gib"] is not None:
        top["VRAM usage"] = f"none (CPU run, {snap['ram_used_gib']:.2f} GB RAM)"
    if snap["elapsed_s"] is not None:
        top["Elapsed"] = duration(snap["elapsed_s"])
    if snap["eta_s"] is not None:
        top["Estimated remaining"] = duration(snap["eta_s"])
    top["Checkpoints"] = ", ".join(cks) if cks else "none yet"
    top["OOM recoveries"] = int(state.get("oom_recoveries", 0))
    top["Loss curve"] = "loss-curve.png"
    found = snap["anomalies"]
    anomalies = {
        "Found": len(found),
        "Summary": " | ".join(f"{a['kind']} at step {a['at_step']}" for a in found) or "none",
    }
    if found:
        anomalies["Latest"] = found[-1]["message"]
    updates: dict[str, dict[str, object]] = {"": top, "Anomalies": anomalies}
    if state:
        run: dict[str, object] = {
            "Attempt": state.get("attempt"),
            "Batch size": state.get("batch"),
            "Gradient accumulation": state.get("accumulation"),
            "Started": state.get("started"),
            "Log": "train.log",
        }
        if state.get("ended"):
            run["Ended"] = state["ended"]
        if state.get("message"):
            run["Result"] = str(state["message"])
        for i, note in enumerate(state.get("adjustments") or [], start=1):
            run[f"Adjustment {i}"] = note
        updates["Run"] = run
    return updates


def checkpoint_labels(g: Grimoire, project: str) -> list[str]:
    from trainwright.run.launch_target import load_plan

    try:
        plan = load_plan(g, project)
        info = getattr(plan.module, "checkpoint_info", None)
        return [c.label for c in scan(plan.checkpoint_dir(), info) if not c.writing]
    except (TrainwrightError, ValueError, OSError):
        return []


def refresh_progress(
    g: Grimoire, project: str, write: bool = True, probe_gpu: bool = True
) -> dict[str, Any]:
    """Read the project's train.log; write progress.md and loss-curve.png; return the snapshot."""
    folder = g.project_dir(project)
    if not folder.is_dir():
        raise TrainwrightError(
            f"there is no project '{project}' in {g.root}: see 'trainwright grimoire new'"
        )
    files = RunFiles(folder)
    status = project_status(files)
    fmt, hook = None, None
    if files.log.exists():
        try:
            from trainwright.run.launch_target import backend_module, config_path

            module = backend_module(config_path(g, project)[0])
            fmt = getattr(module, "LOG_FORMAT", None)
            hook = getattr(module, "parse_line", None)
        except TrainwrightError:
            pass
        st = read_log(files.log, fmt, hook)
    else:
        st = LogState("none")
    snap = snapshot(st, status=status if status != "not started" else None, probe_gpu=probe_gpu)
    if status == "not started":
        if not st.points:
            snap["status"] = "not started"
        elif snap["status"] == "running":
            snap["status"] = "interrupted"  # a log that stops mid-run, and nothing is live
    state = files.read_state()
    snap.update(
        project=project,
        log=str(files.log),
        curve=str(files.curve),
        oom_recoveries=int(state.get("oom_recoveries", 0)),
        adjustments=state.get("adjustments") or [],
        message=state.get("message"),
        pid=state.get("pid") if status == "running" else None,
    )
    if write and (st.points or state):
        cks = checkpoint_labels(g, project)
        snap["checkpoints"] = cks
        found = [anomaly_rules.Anomaly(**a) for a in snap["anomalies"]]
        draw(st.curve(), files.curve, f"Loss: {project}", found)
        g.update("progress", _progress_fields(snap, state, cks), project)
    return snap


def follow_log(path: Path, emit_line: Any, fmt: str | None, stop: Any, poll: float = 1.0) -> None:
    """Print new lines of a growing log until `stop()` says the run is over."""
    pos = 0
    partial = b""
    while True:
        try:
            with open(path, "rb") as fh:
                fh.seek(pos)
                data = fh.read()
        except FileNotFoundError:
            data = b""
        if data:
            pos += len(data)
            chunk = partial + data
            lines = chunk.replace(b"\r", b"\n").split(b"\n")
            partial = lines.pop()
            for line in lines:
                text = line.decode("utf-8", errors="replace").rstrip()
                if text:
                    emit_line(text)
        elif stop():
            if partial:
                emit_line(partial.decode("utf-8", errors="replace").rstrip())
            return
        else:
            time.sleep(poll)
