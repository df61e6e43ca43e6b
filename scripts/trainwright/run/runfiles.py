"""The files a run keeps in its project folder, and the lock that makes it one run at a time.

    train.log              everything the trainer printed, all attempts, with a header per attempt
    train.<stamp>.log      the log of an earlier run (a new run moves the old log aside)
    logs/<run>-attempt-N.log   each attempt on its own
    run.json               the supervisor's state: pid, status, attempt, batch, adjustments
    run.lock               held (flock) by the live supervisor for its whole life
    supervisor.log         the detached supervisor's own output (crash reports land here)

A run is live exactly when someone holds run.lock: a pid file alone can outlive its process,
a kernel lock cannot.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainwright.errors import TrainwrightError
from trainwright.state.atomic import atomic_write_text


def now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass(frozen=True)
class RunFiles:
    folder: Path

    @property
    def log(self) -> Path:
        return self.folder / "train.log"

    @property
    def state(self) -> Path:
        return self.folder / "run.json"

    @property
    def lock(self) -> Path:
        return self.folder / "run.lock"

    @property
    def supervisor_log(self) -> Path:
        return self.folder / "supervisor.log"

    @property
    def attempts(self) -> Path:
        return self.folder / "logs"

    @property
    def curve(self) -> Path:
        return self.folder / "loss-curve.png"

    def read_state(self) -> dict[str, Any]:
        """The run record; {} when there is none. A record that exists but cannot be read is
        an error, never a fresh start: a fresh start moves a finished run's output aside."""
        try:
            data = json.loads(self.state.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise self._corrupt(str(exc)) from None
        if not isinstance(data, dict):
            raise self._corrupt("not a JSON object")
        return data

    def _corrupt(self, why: str) -> TrainwrightError:
        return TrainwrightError(
            f"{self.state}: the run record is damaged ({why}); nothing was started or moved. "
            f"Repair it from train.log, or if you mean to start over, move it aside "
            f"(mv {self.state} {self.state}.damaged) and launch again"
        )

    def write_state(self, data: dict[str, Any]) -> None:
        atomic_write_text(self.state, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def update_state(self, **fields: Any) -> dict[str, Any]:
        data = {**self.read_state(), **fields}
        self.write_state(data)
        return data

    def is_live(self) -> bool:
        """True while a supervisor holds run.lock."""
        if not self.lock.exists():
            return False
        fd = os.open(self.lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def hold(self) -> Iterator[bool]:
        """Take run.lock for the life of the block; yields False when another process has it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def rotate_log(self, stamp: str) -> Path | None:
        """Move the previous run's train.log aside (never deleted); return where it went."""
        if not self.log.exists() or self.log.stat().st_size == 0:
            return None
        target = self.folder / f"train.{stamp}.log"
        n = 1
        while target.exists():
            n += 1
            target = self.folder / f"train.{stamp}-{n}.log"
        self.log.rename(target)
        return target
