"""Crash-safe writes and an advisory lock, so a file is always the old or the new version."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from trainwright.errors import TrainwrightError

LOCK_NAME = ".trainwright.lock"


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync it, rename over `path`, fsync the folder.

    A symlink is written through: the new bytes replace the link's target (atomically, in the
    target's folder) and the link stays a link.
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def locked(folder: Path | str, timeout: float | None = 30.0) -> Iterator[Path]:
    """Hold an exclusive advisory lock on `folder` (a lock file inside it) for a read-modify-write.

    Readers do not need it: writes are atomic renames, so a reader sees a whole file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise TrainwrightError(
            f"{lock_path}: cannot open the lock file ({exc.strerror}); "
            "it should be an empty file that trainwright made: move it aside"
        ) from None
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() > deadline:
                    raise TrainwrightError(
                        f"{lock_path}: another trainwright command holds the lock; "
                        "wait for it to finish and run this again"
                    ) from None
                time.sleep(0.05)
        yield lock_path
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
