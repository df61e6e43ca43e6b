"""What every log parser produces: one LogState, whatever the trainer wrote.

Reading rules shared by the text formats: bytes that are not UTF-8 become U+FFFD and lines that
match nothing are counted, not fatal; a final line without its newline is still being written
and is left for the next read (tqdm bars, which never end in a newline, are the exception: they
are accepted only when the whole bar up to its closing `]` is there).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# The launch supervisor writes this before each attempt of a run (see run/supervisor.py).
ATTEMPT_MARK = re.compile(r"^=== trainwright launch: attempt (\d+)")


@dataclass
class Point:
    step: int
    loss: float
    epoch: int | None = None


@dataclass
class LogState:
    format: str
    points: dict[int, Point] = field(default_factory=dict)  # step -> latest point
    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    steps: int | None = None
    steps_per_epoch: int | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None
    vram_used_gib: float | None = None
    ram_used_gib: float | None = None  # trainers on the CPU report their resident memory
    device: str | None = None
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)
    attempts: int = 0
    unparsed_lines: int = 0
    notes: list[str] = field(default_factory=list)
    # per-attempt bookkeeping for elapsed/ETA across restarts
    _elapsed_before: float = 0.0
    _attempt_elapsed: float | None = None
    _attempt_first_step: int | None = None
    _attempt_first_elapsed: float | None = None
    _bar_base: float = 0.0  # trainers that draw one progress bar per epoch restart its clock
    _bar_last: float = 0.0

    def add_point(self, step: int, loss: float, epoch: int | None = None) -> None:
        self.points[step] = Point(step, loss, epoch)
        self.step = step if self.step is None else max(self.step, step)
        if epoch is not None:
            self.epoch = epoch

    def new_attempt(self) -> None:
        self.attempts += 1
        if self._attempt_elapsed is not None:
            self._elapsed_before += self._attempt_elapsed
        self._attempt_elapsed = None
        self._attempt_first_step = None
        self._attempt_first_elapsed = None
        self._bar_base = self._bar_last = 0.0
        self.finished = False

    def tick(self, step: int, elapsed: float | None, per_bar: bool = False) -> None:
        """Record the trainer's own clock at `step` (seconds since this attempt started).

        With `per_bar`, `elapsed` counts from the start of the current progress bar, and a
        clock that goes backwards means a new bar (a new epoch) began.
        """
        if elapsed is None:
            return
        if per_bar:
            if elapsed < self._bar_last:
                self._bar_base += self._bar_last
            self._bar_last = elapsed
            elapsed += self._bar_base
        if self._attempt_first_step is None:
            self._attempt_first_step, self._attempt_first_elapsed = step, elapsed
        self._attempt_elapsed = elapsed
        self.elapsed_s = self._elapsed_before + elapsed

    def rate_eta(self) -> float | None:
        """Seconds left at the pace of the current attempt, when the total is known."""
        if self.steps is None or self.step is None or self._attempt_first_step is None:
            return None
        done = self.step - self._attempt_first_step
        if done <= 0 or self._attempt_elapsed is None or self._attempt_first_elapsed is None:
            return None
        per_step = (self._attempt_elapsed - self._attempt_first_elapsed) / done
        return max(0.0, (self.steps - self.step) * per_step)

    def curve(self) -> list[Point]:
        return [self.points[s] for s in sorted(self.points)]

    @property
    def loss(self) -> float | None:
        c = self.curve()
        return c[-1].loss if c else None

    @property
    def loss_start(self) -> float | None:
        c = self.curve()
        return c[0].loss if c else None


def to_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def clock_seconds(text: str) -> float | None:
    """'01:40' or '1:02:03' -> seconds; '?' -> None."""
    parts = text.strip().split(":")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        return None
    total = 0
    for n in nums:
        total = total * 60 + n
    return float(total)


def decode(data: bytes) -> str:
    """Text of a log; NUL bytes (the holes a crash leaves in a file) are dropped."""
    return data.replace(b"\x00", b"").decode("utf-8", errors="replace")


# No trainer line worth reading is longer; the rest of a longer one (a dumped tensor, a bar
# without its carriage returns) is not looked at, so no pattern can spend long on it.
MAX_LINE = 4096


def complete_lines(text: str, separators: str = "\n") -> tuple[list[str], str]:
    """Split into whole lines and the unterminated tail (empty when the text ends cleanly),
    each cut to MAX_LINE characters."""
    pattern = "[" + re.escape(separators) + "]"
    parts = [p if len(p) <= MAX_LINE else p[:MAX_LINE] for p in re.split(pattern, text)]
    return parts[:-1], parts[-1]


def log_lines(
    text: str,
    st: LogState,
    bar: re.Pattern[str] | None = None,
    redraws: bool | None = None,
) -> Iterator[str]:
    """The loop every text parser shares: whole lines, right-stripped and non-blank, with the
    launch supervisor's attempt marks applied to `st` (not yielded). With `redraws` (default:
    when a `bar` is given; a trainer that redraws a tqdm bar in place) a carriage return also
    ends a line; a complete `bar` at the very end is taken although no newline follows it."""
    redraws = bar is not None if redraws is None else redraws
    segments, tail = complete_lines(text, "\r\n" if redraws else "\n")
    if bar is not None and bar.search(tail):
        segments.append(tail)
    for seg in segments:
        line = seg.rstrip()
        if not line:
            continue
        if line.startswith("=== ") and ATTEMPT_MARK.match(line):
            st.new_attempt()
            continue
        yield line


def finite(x: float) -> bool:
    return not (math.isnan(x) or math.isinf(x))
