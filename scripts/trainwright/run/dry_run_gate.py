"""Gate 4 (dry run): run the configured backend for a few real steps and say why it failed.

The backend's own step limit runs 2-5 optimizer steps with checkpoint saving off; the output
goes to dry-run.log in the project folder (an earlier dry-run log is moved aside, not deleted).
GO when the model loaded, the data was read and at least 2 steps completed. A failure is sorted
into model load, dataset/captions, out-of-memory (with the batch to try), CUDA/driver mismatch,
missing package, config, hang or no training at all (see run/failures.py).

`trainwright dry-run NAME --steps N --timeout S` records N and S under "Dry Run (Gate 4)" in
progress.md before the gate runs, which is where check() reads them.
"""

from __future__ import annotations

from math import isfinite
from pathlib import Path

from trainwright.clock import file_stamp
from trainwright.errors import TrainwrightError
from trainwright.run import dry_run_memory, failures, oom_kills
from trainwright.run.child import run_child
from trainwright.run.launch_target import config_files, load_plan
from trainwright.run.logs import read_log
from trainwright.state import hints
from trainwright.state.content_hash import content_hash
from trainwright.state.gates import GO, NO_GO, GateResult
from trainwright.state.grimoire import Grimoire

SECTION = "Dry Run (Gate 4)"
DEFAULT_STEPS, MIN_STEPS, MAX_STEPS = 3, 2, 5
DEFAULT_TIMEOUT = 900.0
LOG_NAME = "dry-run.log"


def inputs(g: Grimoire, project: str) -> list[Path]:
    """Every config file config.md lists, and the dataset folder: what a dry run's GO is bound
    to."""
    _, paths = config_files(g, project)
    folder = g.dataset_folder(project)  # a folder of images, or a text dataset's file
    if folder is None or not (folder.is_dir() or folder.is_file()):
        raise TrainwrightError(
            f"the dataset folder {str(folder or '')!r} in intent.md of '{project}' does not exist"
        )
    return [*paths, folder]


def binding(g: Grimoire, project: str) -> str:
    return content_hash(*inputs(g, project)).digest


def settings(g: Grimoire, project: str) -> tuple[int, float]:
    _, data = g.read("progress", project)
    sec = data["sections"].get(SECTION, {})
    steps = sec.get("Steps requested") or DEFAULT_STEPS
    timeout = sec.get("Time limit s") or DEFAULT_TIMEOUT
    return max(MIN_STEPS, min(MAX_STEPS, int(steps))), float(timeout)


def _rotate(log: Path) -> None:
    if log.exists() and log.stat().st_size:
        stamp = file_stamp(log.stat().st_mtime)
        target = log.with_name(f"dry-run.{stamp}.log")
        n = 1
        while target.exists():
            n += 1
            target = log.with_name(f"dry-run.{stamp}-{n}.log")
        log.rename(target)


def check(g: Grimoire, project: str) -> GateResult:
    try:
        plan = load_plan(g, project)
        bound = binding(g, project)
    except TrainwrightError as exc:
        gate = 1 if "dataset folder" in str(exc) else 2
        first = [] if gate == 1 else [hints.config_command(g, project)]
        return GateResult(
            NO_GO,
            [exc.one_line()],
            None,
            fixes=[*first, f"trainwright gate check {project} --gate {gate}"],
        )
    steps, timeout = settings(g, project)
    log = plan.folder / LOG_NAME
    _rotate(log)
    cmd = plan.command(max_steps=steps, save=False)
    with open(log, "wb") as fh:
        fh.write(f"=== trainwright dry run: {steps} steps, batch {plan.batch} ===\n".encode())
        before = oom_kills.snapshot()
        watch = dry_run_memory.start()
        result = run_child(
            cmd,
            plan.folder,
            [fh],
            timeout,
            on_start=watch.on_start,
            extra_env=dry_run_memory.child_env(),
        )
        polled = watch.stop()
    oom_kill = oom_kills.killed_by_oom(before, oom_kills.snapshot())
    state = read_log(log, plan.log_format, plan.line_parser)
    done = len([p for p in state.points.values()])
    record: dict[str, object] = {"Steps completed": done, "Log": LOG_NAME}
    bad_loss = [p.step for p in state.points.values() if not isfinite(p.loss)]
    peak = dry_run_memory.peak_of(result.text, watch, polled)
    if result.returncode == 0 and done >= MIN_STEPS and not bad_loss:
        memory = dry_run_memory.assess(g, project, peak, plan.batch)
        record.update(memory.progress)
        record["Failure kind"] = "memory" if memory.over_budget else "none"
        loss = f"; loss {state.loss_start:.4g} -> {state.loss:.4g}" if state.points else ""
        return GateResult(
            NO_GO if memory.over_budget else GO,
            [f"the model loaded, the data was read and {done} training steps ran{loss}"]
            + memory.reasons,
            bound,
            fixes=memory.fixes,
            updates={SECTION: record},
            details={
                "steps_completed": done,
                "log": str(log),
                "command": cmd,
                **memory.details,
            },
        )
    if peak is not None:
        record["Measured peak"] = peak.describe()
    if result.hung:
        failure = failures.Failure(
            "hang",
            f"The trainer printed nothing for {timeout:g} s and was stopped.",
            "look at the end of dry-run.log: a model download or a prompt waiting for input "
            "are the usual causes; raise the limit with --timeout if loading is just slow",
        )
    elif result.returncode == 0 and bad_loss:
        failure = failures.Failure(
            "nan-loss",
            f"The loss was not a number (NaN or inf) at step {bad_loss[0]}: training diverged.",
            "lower the learning rate, or use bf16 instead of fp16; "
            "`trainwright diagnose loss-nan` explains more",
        )
    elif result.returncode == 0:
        failure = failures.Failure(
            "no-training",
            f"The trainer exited normally after {done} step(s); a dry run needs {MIN_STEPS}.",
            "check the dataset path and the step/epoch settings in the config",
        )
    else:
        failure = failures.classify(
            result.text,
            result.returncode,
            plan.batch,
            project=project,
            config=hints.config_command(g, project),
            oom_kill=oom_kill,
        )
    record["Failure kind"] = failure.kind
    reason = failure.message + (f" ({failure.evidence})" if failure.evidence else "")
    reason = "".join(c if c.isprintable() else "?" for c in reason)  # trainer bytes, unfiltered
    return GateResult(
        NO_GO,
        [reason],
        bound,
        fixes=[failure.fix],
        updates={SECTION: record},
        details={
            "steps_completed": done,
            "log": str(log),
            "command": cmd,
            "failure": failure.as_dict(),
            "returncode": result.returncode,
        },
    )
