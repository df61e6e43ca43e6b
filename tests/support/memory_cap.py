"""A real memory cap for one test: a memory cgroup of its own (v1 or v2) with a hard limit.

A process written into it (`echo $$ > procs; exec ...`) that goes over the limit is killed by
the kernel's out-of-memory killer with SIGKILL and no message, as in a container or a SLURM job
with cgroup memory enforcement. Needs root and a writable memory controller; otherwise the
test skips with the reason.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path("/sys/fs/cgroup")


@dataclass
class MemoryCap:
    path: Path
    limit_mb: int

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` run inside the cap (the shell joins the cgroup, then execs it)."""
        joined = shlex.join(argv)
        return ["/bin/sh", "-c", f"echo $$ > {shlex.quote(str(self.procs))} && exec {joined}"]


def _v2_base() -> Path | None:
    for base in (ROOT, ROOT / "unified"):
        controllers = base / "cgroup.controllers"
        subtree = base / "cgroup.subtree_control"
        if controllers.is_file() and "memory" in subtree.read_text().split():
            return base
    return None


def _make(name: str, limit_mb: int) -> MemoryCap:
    limit = str(limit_mb * 2**20)
    base = _v2_base()
    if base is not None:
        path = base / name
        path.mkdir()
        (path / "memory.max").write_text(limit)
        if (path / "memory.swap.max").exists():  # swapping would only slow the kill down
            (path / "memory.swap.max").write_text("0")
        return MemoryCap(path, limit_mb)
    v1 = ROOT / "memory"
    if not (v1 / "memory.limit_in_bytes").is_file():
        raise OSError("no memory cgroup controller is mounted")
    path = v1 / name
    path.mkdir()
    (path / "memory.limit_in_bytes").write_text(limit)
    return MemoryCap(path, limit_mb)


@contextmanager
def memory_cap(limit_mb: int) -> Iterator[MemoryCap]:
    """A fresh capped cgroup, removed afterwards (once the processes in it are gone)."""
    if os.geteuid() != 0:
        pytest.skip("a memory cgroup needs root")
    name = f"trainwright-test-{os.getpid()}-{time.monotonic_ns()}"
    try:
        cap = _make(name, limit_mb)
    except OSError as exc:
        pytest.skip(f"cannot make a memory cgroup here: {exc}")
    try:
        yield cap
    finally:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                cap.path.rmdir()
                break
            except OSError:
                time.sleep(0.1)
