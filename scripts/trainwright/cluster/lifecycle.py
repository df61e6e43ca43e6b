"""One run's life in runs_status.yaml: submitted, finished, shrunk after an out-of-memory.

Shared by `launch`, `monitor` and the local executor so the three write the same fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainwright.clock import now_iso
from trainwright.cluster import slurm, states
from trainwright.cluster.adapters import (
    CONFIG_NAME,
    SCRIPT_NAME,
    batch_keys,
    halve_batch,
    read_config,
)
from trainwright.cluster.dirs import run_dir
from trainwright.cluster.generate import sweep_log_pattern, sweep_script
from trainwright.cluster.runs_plan import Plan, PlannedRun
from trainwright.errors import TrainwrightError

MAX_OOM_RETRIES = 3
ATTEMPT_KEYS = (
    "job_id",
    "executor",
    "state",
    "submitted",
    "ended",
    "batch_size",
    "gradient_accumulation_steps",
    "resume",
    "log",
    "reason",
)


def batch_of(experiment_dir: Path, run: PlannedRun) -> tuple[int | None, int | None]:
    keys = batch_keys(run.backend)
    try:
        config = read_config(run_dir(experiment_dir, run.name) / CONFIG_NAME)
    except TrainwrightError:
        return None, None
    b, a = config.get(keys[0]), config.get(keys[1])
    return (b if isinstance(b, int) else None, a if isinstance(a, int) else 1)


def start_attempt(
    entry: dict[str, Any],
    *,
    job_id: str,
    executor: str,
    log: str,
    resume: bool,
    batch: tuple[int | None, int | None],
    time_limit: str | None = None,
    pid: int | None = None,
) -> None:
    """Archive the current attempt (if any) and make the new one current."""
    if entry.get("job_id"):
        past = {k: entry.get(k) for k in ATTEMPT_KEYS if entry.get(k) is not None}
        past["state"] = entry.get("state")
        entry.setdefault("attempts", []).append(past)
    for key in ("exit_code", "ended", "started", "reason", "progress", "pid", "lasting_failure"):
        entry.pop(key, None)
    entry.update(
        {
            "state": states.PENDING if executor == "slurm" else states.RUNNING,
            "job_id": job_id,
            "executor": executor,
            "submitted": now_iso(),
            "log": log,
            "resume": resume,
            "batch_size": batch[0],
            "gradient_accumulation_steps": batch[1],
        }
    )
    if pid is not None:
        entry["pid"] = pid
        entry["started"] = now_iso()
    if time_limit:
        entry["time_limit"] = time_limit
    entry.setdefault("oom_retries", 0)


def submit_run(experiment_dir: Path, run: PlannedRun, entry: dict[str, Any], resume: bool) -> str:
    script = run_dir(experiment_dir, run.name) / SCRIPT_NAME
    export = {"TRAINWRIGHT_RESUME": "1"} if resume else None
    job_id = slurm.submit(script, export=export)
    log = run_dir(experiment_dir, run.name) / "logs" / f"slurm-{job_id}.out"
    start_attempt(
        entry,
        job_id=job_id,
        executor="slurm",
        log=str(log),
        resume=resume,
        batch=batch_of(experiment_dir, run),
        time_limit=script_time(script),
    )
    return job_id


def submit_sweep(
    experiment_dir: Path, plan: Plan, sweep: str, entries: dict[str, dict[str, Any]]
) -> str:
    """Submit a sweep's job array once; task i is the sweep's i-th run."""
    members = plan.sweeps()[sweep]
    script = sweep_script(experiment_dir, sweep)
    array_id = slurm.submit(script)
    pattern = sweep_log_pattern(experiment_dir, sweep)
    for index, run in enumerate(members):
        if run.name not in entries:
            continue
        job_id = f"{array_id}_{index}"
        log = pattern.replace("%A", array_id).replace("%a", str(index))
        start_attempt(
            entries[run.name],
            job_id=job_id,
            executor="slurm",
            log=log,
            resume=False,
            batch=batch_of(experiment_dir, run),
            time_limit=script_time(script),
        )
    return array_id


def script_time(script: Path) -> str | None:
    try:
        for line in script.read_text(encoding="utf-8").splitlines():
            if line.startswith("#SBATCH --time="):
                return line.split("=", 1)[1].strip("'\"")
    except OSError:
        return None
    return None


def finish(entry: dict[str, Any], state: str, exit_code: Any = None, reason: Any = None) -> None:
    entry["state"] = state
    entry["ended"] = entry.get("ended") or now_iso()
    if exit_code is not None:
        entry["exit_code"] = str(exit_code)
    if reason:
        entry["reason"] = str(reason)
    entry.pop("pid", None)


def note_lasting(
    experiment_dir: Path, run: PlannedRun, entry: dict[str, Any], log_text: str, code: Any
) -> None:
    """After a failure: when its cause lasts (dataset, model, config, package, driver), record
    its kind and a fingerprint of what the run reads, so a relaunch can tell if it changed."""
    from trainwright.cluster import inputs, joblog

    kind = inputs.lasting_kind(
        joblog.trainer_output(joblog.last_attempt(log_text)), joblog.exit_number(code)
    )
    if kind is None:
        entry.pop("lasting_failure", None)
        return
    config_path = run_dir(experiment_dir, run.name) / CONFIG_NAME
    try:
        config = read_config(config_path)
    except TrainwrightError:
        config = {}
    entry["lasting_failure"] = {
        "kind": kind,
        "inputs": inputs.fingerprint(run, config_path, config),
    }


def shrink_after_oom(
    experiment_dir: Path, run: PlannedRun, entry: dict[str, Any], oom_line: str
) -> str | None:
    """Halve the batch (same effective batch) if retries remain; the reason text, or None."""
    retries = int(entry.get("oom_retries") or 0)
    if retries >= MAX_OOM_RETRIES:
        finish(
            entry,
            states.OUT_OF_MEMORY,
            reason=f"out of memory again after {retries} halvings of the batch: {oom_line}; "
            "enable activation checkpointing, use QLoRA, or more GPUs",
        )
        return None
    config = run_dir(experiment_dir, run.name) / CONFIG_NAME
    try:
        old_b, old_a, new_b, new_a = halve_batch(config, batch_keys(run.backend))
    except TrainwrightError as exc:
        finish(entry, states.OUT_OF_MEMORY, reason=f"{oom_line}; {exc}")
        return None
    entry["oom_retries"] = retries + 1
    return (
        f"out of memory: {oom_line}; resubmitted with batch {old_b}->{new_b}, "
        f"accumulation {old_a}->{new_a} "
        f"(effective batch {old_b * old_a}->{new_b * new_a}), retry {retries + 1} of "
        f"{MAX_OOM_RETRIES}"
    )
