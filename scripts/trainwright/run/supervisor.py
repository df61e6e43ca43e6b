"""The launch supervisor: run the trainer as a child, tee its output, retry on out-of-memory.

    python -m trainwright.run.supervisor --grimoire G --project NAME [--max-retries 3]
        [--hang-timeout SECONDS]

`trainwright launch` starts this detached (its own session, so closing the terminal does not stop
it); it can also run in the foreground inside tmux, nohup or a SLURM job. One supervisor per
project: it holds run.lock while it lives (see runfiles.py).

On out-of-memory (an allocator message in the output, or death by SIGKILL while the kernel's
OOM-kill counters rose: see oom_kills.py; a SIGKILL they do not explain is a person's) it
halves the batch, doubles gradient accumulation where the backend has it
(so the effective batch stays), resumes from the last checkpoint where the backend can, and tries
again, at most --max-retries times. Every attempt's output stays in train.log and in
logs/<run>-attempt-N.log; checkpoints are never touched.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwright.backends.common import halve_batch
from trainwright.clock import file_stamp, now_iso
from trainwright.errors import TrainwrightError
from trainwright.run import failures, oom_kills
from trainwright.run.child import run_child
from trainwright.run.launch_target import RunPlan
from trainwright.run.runfiles import RunFiles

EXIT_ALREADY_RUNNING = 3
DEFAULT_HANG_TIMEOUT = 1800.0
PROGRESS_EVERY = 10.0


@dataclass
class AttemptResult:
    returncode: int | None
    hung: bool
    stopped: bool
    text: str  # the attempt's output (last 256 KiB)
    oom_kill: bool | None = None  # did the kernel's OOM-kill counters rise (None: unknown)


@dataclass
class Outcome:
    status: str  # COMPLETE | FAILED | STOPPED
    message: str
    attempts: int
    batch: int
    accumulation: int
    oom_recoveries: int = 0
    adjustments: list[str] = field(default_factory=list)
    failure: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Supervisor:
    def __init__(
        self,
        plan: RunPlan,
        files: RunFiles,
        max_retries: int = 3,
        hang_timeout: float = DEFAULT_HANG_TIMEOUT,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.plan, self.files = plan, files
        self.max_retries, self.hang_timeout = max_retries, hang_timeout
        self.on_progress = on_progress or (lambda _state: None)
        self.stop_requested = False
        self.child: subprocess.Popen[bytes] | None = None

    def request_stop(self, *_args: object) -> None:
        self.stop_requested = True
        if self.child and self.child.poll() is None:
            self.child.terminate()

    def _attempt(self, cmd: list[str], attempt_log: Path, header: str) -> AttemptResult:
        attempt_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.files.log, "ab") as log, open(attempt_log, "wb") as own:
            for fh in (log, own):
                fh.write(header.encode() + b"\n")
                fh.flush()
            before = oom_kills.snapshot()
            result = run_child(
                cmd,
                self.plan.folder,
                [log, own],
                self.hang_timeout,
                on_start=self._started,
                tick=self._progress,
                tick_every=PROGRESS_EVERY,
            )
        self.child = None
        killed = oom_kills.killed_by_oom(before, oom_kills.snapshot())
        return AttemptResult(
            result.returncode, result.hung, self.stop_requested, result.text, killed
        )

    def _started(self, proc: subprocess.Popen[bytes]) -> None:
        self.child = proc
        if self.stop_requested:
            proc.terminate()

    def _progress(self, **extra: Any) -> None:
        try:
            self.on_progress(self.files.update_state(**extra) if extra else self.files.read_state())
        except Exception as exc:  # noqa: BLE001 - a record problem must never stop training
            print(f"trainwright: could not update progress: {exc}", file=sys.stderr, flush=True)

    def run(self, resume_first: bool = False) -> Outcome:
        plan = self.plan
        batch, accumulation = plan.batch, plan.accumulation
        stamp = file_stamp()
        moved = None
        if not resume_first:  # a resumed run goes on in the same train.log
            self.files.rotate_log(stamp)
            moved = self._keep_old_checkpoints(stamp)
        outcome = Outcome("FAILED", "", 0, batch, accumulation)
        self.files.write_state(
            {
                "status": "RUNNING",
                "pid": os.getpid(),
                "started": now_iso(),
                "run": stamp,
                "backend": plan.backend,
                "config": str(plan.config),
                "batch": batch,
                "accumulation": accumulation,
                "attempt": 0,
                "oom_recoveries": 0,
                "adjustments": [],
                "log": str(self.files.log),
                "checkpoints_moved_to": moved,
            }
        )
        resume = resume_first
        for attempt in range(1, self.max_retries + 2):
            outcome.attempts, outcome.batch, outcome.accumulation = attempt, batch, accumulation
            cmd = plan.command(batch=batch, accumulation=accumulation, resume=resume)
            header = (
                f"=== trainwright launch: attempt {attempt}/{self.max_retries + 1}, batch {batch}"
                f", accumulation {accumulation}{', resuming' if resume else ''} ({now_iso()}) ==="
            )
            self._progress(attempt=attempt, batch=batch, accumulation=accumulation)
            result = self._attempt(
                cmd, self.files.attempts / f"{stamp}-attempt-{attempt}.log", header
            )
            if result.stopped:
                outcome.status, outcome.message = (
                    "STOPPED",
                    "stopped on request; resume with launch",
                )
                break
            if result.hung:
                outcome.message = (
                    f"the trainer printed nothing for {self.hang_timeout:.0f} s and was stopped "
                    "as hung (a stuck data loader, a dead GPU, or a prompt waiting for input)"
                )
                outcome.failure = failures.Failure(
                    "hang", outcome.message, "see train.log"
                ).as_dict()
                break
            if result.returncode == 0:
                if self._trained():
                    outcome.status, outcome.message = "COMPLETE", "training finished"
                else:
                    outcome.message = (
                        "the trainer exited normally without training a single step: check the "
                        "step count, the epoch setting and the dataset path in its config"
                    )
                    outcome.failure = failures.Failure(
                        "no-training", outcome.message, "look at train.log"
                    ).as_dict()
                break
            if failures.is_oom(result.text, result.returncode, result.oom_kill):
                if batch <= 1:
                    outcome.message = (
                        "out of memory even at batch 1: lower the resolution, turn on gradient "
                        "checkpointing or caching, or use a GPU with more memory"
                    )
                    outcome.failure = failures.classify(
                        result.text,
                        result.returncode,
                        oom_kill=result.oom_kill,
                        **self._hint_values(),
                    ).as_dict()
                    break
                if attempt > self.max_retries:
                    outcome.message = (
                        f"still out of memory after {self.max_retries} retries (batch {batch})"
                    )
                    outcome.failure = failures.classify(
                        result.text,
                        result.returncode,
                        oom_kill=result.oom_kill,
                        **self._hint_values(),
                    ).as_dict()
                    break
                new_batch, new_acc = halve_batch(batch, accumulation)
                if not plan.has_accumulation:
                    new_acc = accumulation
                note = f"Hit memory limit: batch {batch} -> {new_batch}"
                if plan.has_accumulation:
                    note += (
                        f", gradient accumulation {accumulation} -> {new_acc} "
                        f"(effective batch {batch * accumulation} -> {new_batch * new_acc})"
                    )
                note += ", retrying" + (" from the last checkpoint" if plan.can_resume else "")
                outcome.adjustments.append(note)
                outcome.oom_recoveries += 1
                batch, accumulation = new_batch, new_acc
                resume = plan.can_resume
                with open(self.files.log, "ab") as log:
                    log.write(f"=== trainwright: {note} ===\n".encode())
                print(f"trainwright: {note}", flush=True)
                self._progress(
                    oom_recoveries=outcome.oom_recoveries, adjustments=outcome.adjustments
                )
                continue
            failure = failures.classify(
                result.text,
                result.returncode,
                batch,
                oom_kill=result.oom_kill,
                **self._hint_values(),
            )
            outcome.message = failure.message
            outcome.failure = failure.as_dict()
            break
        self._progress(
            status=outcome.status,
            ended=now_iso(),
            message=outcome.message,
            failure=outcome.failure,
            batch=outcome.batch,
            accumulation=outcome.accumulation,
            oom_recoveries=outcome.oom_recoveries,
            adjustments=outcome.adjustments,
            attempt=outcome.attempts,
        )
        return outcome

    def _hint_values(self) -> dict[str, str]:
        """What a failure's fix names: this project and its `trainwright config` line."""
        p = self.plan
        return {
            "project": p.project,
            "config": f"trainwright config --project {p.project} --backend {p.backend}",
        }

    def _keep_old_checkpoints(self, stamp: str) -> str | None:
        """A fresh run would save over the names of an earlier one: move those aside first."""
        try:
            folder = self.plan.checkpoint_dir()
        except (ValueError, OSError):
            return None
        if not folder.is_dir() or not any(folder.iterdir()):
            return None
        target = folder.with_name(f"{folder.name}.{stamp}")
        folder.rename(target)
        with open(self.files.log, "ab") as log:
            log.write(f"=== trainwright: earlier checkpoints moved to {target} ===\n".encode())
        return str(target)

    def _trained(self) -> bool:
        from trainwright.run.logs import read_log

        try:
            st = read_log(self.files.log, self.plan.log_format, self.plan.line_parser)
        except TrainwrightError:
            return False
        return bool(st.points) or st.step is not None


def main(argv: list[str] | None = None) -> int:
    from trainwright.run.launch_target import load_plan
    from trainwright.run.monitor import refresh_progress
    from trainwright.state.grimoire import Grimoire

    ap = argparse.ArgumentParser(prog="trainwright.run.supervisor")
    ap.add_argument("--grimoire", type=Path, required=True)
    ap.add_argument("--project", required=True)
    ap.add_argument("--max-retries", type=int, default=3)
    ap.add_argument("--hang-timeout", type=float, default=DEFAULT_HANG_TIMEOUT)
    ap.add_argument("--resume", action="store_true", help="Continue from the last checkpoint.")
    args = ap.parse_args(argv)
    g = Grimoire(args.grimoire)
    try:
        plan = load_plan(g, args.project)
    except TrainwrightError as exc:
        print(f"trainwright: error: {exc.one_line()}", file=sys.stderr)
        return 2
    files = RunFiles(plan.folder)
    with files.hold() as mine:
        if not mine:
            print("trainwright: this project is already training; not starting a second copy")
            return EXIT_ALREADY_RUNNING
        sup = Supervisor(
            plan,
            files,
            args.max_retries,
            args.hang_timeout,
            on_progress=lambda _s: refresh_progress(g, args.project),
        )
        signal.signal(signal.SIGTERM, sup.request_stop)
        signal.signal(signal.SIGINT, sup.request_stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        outcome = sup.run(resume_first=args.resume)
    print(f"trainwright: run {outcome.status}: {outcome.message}", flush=True)
    return 0 if outcome.status == "COMPLETE" else 1


if __name__ == "__main__":
    sys.exit(main())
