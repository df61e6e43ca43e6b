"""A job's log: the script's own start/end lines, and the trainer's progress and out-of-memory.

The trainer's lines are read by the run room's parsers (trainwright.run.logs) and its OOM
detection; this module only adds what the sbatch script itself prints.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

END = re.compile(r"^trainwright: end \S+ exit=(\d+)\s*$", re.M)
START = re.compile(r"^trainwright: start ", re.M)
MAX_BYTES = 8 << 20  # the last 8 MiB is plenty for progress and the error at the end


def read(path: Path | str | None) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - MAX_BYTES))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def last_attempt(text: str) -> str:
    """The part of an appended log written by the latest start of the script."""
    starts = [m.start() for m in START.finditer(text)]
    return text[starts[-1] :] if starts else text


def trainer_output(text: str) -> str:
    """The log without the script's own `trainwright: ...` lines."""
    return "\n".join(ln for ln in text.splitlines() if not ln.startswith("trainwright: "))


def script_exit(text: str) -> int | None:
    """The exit code the script reported at its end, when it got that far."""
    ends = END.findall(last_attempt(text))
    return int(ends[-1]) if ends else None


def progress(text: str, backend: str) -> dict[str, Any]:
    """Step, total steps, last loss and seconds left, from the trainer's own lines."""
    from trainwright.run.logs import parse_text, text_parsers

    state = parse_text(text, backend if backend in text_parsers() else None)
    eta = state.eta_s if state.eta_s is not None else state.rate_eta()
    return {
        "step": state.step,
        "total_steps": state.steps,
        "loss": state.loss,
        "eta_s": round(eta) if eta is not None else None,
        "finished": state.finished,
    }


def out_of_memory(
    text: str, exit_code: int | None = None, oom_kill: bool | None = None
) -> str | None:
    """What shows the latest attempt ran out of memory (its log line, or a SIGKILL), or None.
    `oom_kill`: did the kernel's OOM-kill counters rise (False: a SIGKILL is someone's kill)."""
    from trainwright.run.failures import is_oom, oom_line

    latest = trainer_output(last_attempt(text))
    line = oom_line(latest)
    if line:
        return line
    if is_oom(latest, exit_code, oom_kill):
        if oom_kill:
            return f"the trainer was killed (exit code {exit_code}) by the OOM killer"
        return f"the trainer was killed (exit code {exit_code}), most likely by the OOM killer"
    return None


def exit_number(code: str | int | None) -> int | None:
    """SLURM's `ExitCode=3:0` (code:signal) or a plain number; None when unknown."""
    if code is None:
        return None
    head = str(code).split(":")[0]
    return int(head) if head.lstrip("-").isdigit() else None


def failure_reason(text: str, exit_code: int | None, oom_kill: bool | None = None) -> str:
    """One line on why the latest attempt failed: the line that gave it away, when there is one."""
    from trainwright.run.failures import classify

    failure = classify(trainer_output(last_attempt(text)), exit_code, oom_kill=oom_kill)
    said = failure.evidence or failure.message
    return f"exit code {exit_code}: {said}" if exit_code is not None else said
