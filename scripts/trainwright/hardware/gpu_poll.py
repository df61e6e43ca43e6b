"""Poll nvidia-smi for the GPU memory of one process tree while it runs (a trainer that is a
separate program and cannot print its own peak). The same binary override as hardware/gpu.py
(TRAINWRIGHT_NVIDIA_SMI) serves the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

from trainwright.hardware.gpu import ENV_OVERRIDE

APPS_QUERY = "--query-compute-apps=pid,used_memory"


def parse_apps(text: str) -> dict[int, float]:
    """pid -> MiB from `--query-compute-apps=pid,used_memory` CSV; odd lines are skipped."""
    out: dict[int, float] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2:
            continue
        try:
            pid, mib = int(parts[0]), float(parts[1])
        except ValueError:
            continue
        if pid > 0 and 0 <= mib < 1 << 30:
            out[pid] = out.get(pid, 0.0) + mib
    return out


def query_apps(timeout: float = 10.0) -> dict[int, float] | None:
    binary = os.environ.get(ENV_OVERRIDE) or shutil.which("nvidia-smi")
    if not binary:
        return None
    try:
        proc = subprocess.run(
            [binary, APPS_QUERY, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_apps(proc.stdout) if proc.returncode == 0 else None


def descendants(pid: int) -> set[int]:
    """pid and every process below it (from /proc; just pid where there is no /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            ppid = int(text.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = {pid}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class Poller:
    """Start with the child's pid; stop() returns the highest MiB its process tree held at once
    (None when nvidia-smi never listed it)."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        self.pid, self.every = pid, every
        self.peak: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> None:
        apps = query_apps()
        if not apps:
            return
        tree = descendants(self.pid)
        mine = [mib for pid, mib in apps.items() if pid in tree]
        if mine:
            self.peak = max(self.peak or 0.0, sum(mine))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join(timeout=15)
        return self.peak
