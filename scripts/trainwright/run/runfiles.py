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
import fcntl
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainwright.errors import TrainwrightError
from trainwright.state.atomic import atomic_write_text


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

    def _open_lock(self, flags: int) -> int:
        """run.lock opened for flock; a clear error when it is a folder, a link or anything but
        the plain file the supervisor makes (a link could point at a file of the person's,
        which hold() would then truncate)."""
        try:
            fd = os.open(self.lock, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except PermissionError:
            raise TrainwrightError(f"{self.lock}: permission denied; nothing was started") from None
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and not self.lock.is_symlink():
                raise
            raise TrainwrightError(self._not_a_lock()) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise TrainwrightError(self._not_a_lock())
        return fd

    def _not_a_lock(self) -> str:
        lock = self.lock
        what = "a link" if lock.is_symlink() else "a folder" if lock.is_dir() else "not a file"
        return (
            f"{lock} is {what}, not the run's lock file, so whether a run is live cannot be "
            "told (nothing was started). Move it aside (trainwright never removes it for you), "
            "then run the command again"
        )

    def is_live(self) -> bool:
        """True while a supervisor holds run.lock."""
        if not self.lock.exists() and not self.lock.is_symlink():
            return False
        try:
            fd = self._open_lock(os.O_RDWR)
        except FileNotFoundError:
            return False
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
        fd = self._open_lock(os.O_RDWR | os.O_CREAT)
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
