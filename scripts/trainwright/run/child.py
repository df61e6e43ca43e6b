"""Run a trainer as a child process: copy its output into log files as it comes, notice a hang.

A hang is no output at all for `hang_timeout` seconds: the child is asked to stop (SIGTERM), then
killed ten seconds later if it is still there.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass
class ChildResult:
    returncode: int | None
    hung: bool
    text: str  # the last 256 KiB of the output


def run_child(
    cmd: list[str],
    cwd: Path,
    sinks: list[BinaryIO],
    hang_timeout: float,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
    tick: Callable[[], None] | None = None,
    tick_every: float = 10.0,
    extra_env: dict[str, str] | None = None,
) -> ChildResult:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
    except OSError as exc:
        note = f"trainwright: could not start {cmd[0]}: {exc.strerror or exc}\n"
        for fh in sinks:
            fh.write(note.encode())
            fh.flush()
        return ChildResult(127, False, note)
    if on_start:
        on_start(proc)
    chunks: queue.Queue[bytes | None] = queue.Queue()
    out = proc.stdout
    assert out is not None

    def pump() -> None:
        while True:
            data = os.read(out.fileno(), 65536)
            if not data:
                chunks.put(None)
                return
            chunks.put(data)

    threading.Thread(target=pump, daemon=True).start()
    tail = bytearray()
    last_output = last_tick = time.monotonic()
    hung = False
    while True:
        try:
            data = chunks.get(timeout=0.5)
        except queue.Empty:
            data = b""
        now = time.monotonic()
        if data is None:
            break
        if data:
            last_output = now
            tail += data
            del tail[:-262144]
            for fh in sinks:
                fh.write(data)
                fh.flush()
        elif not hung and now - last_output > hang_timeout:
            hung = True
            note = (
                f"\n=== trainwright: no output for {hang_timeout:g} s; stopping the trainer "
                "as hung ===\n"
            ).encode()
            tail += note
            for fh in sinks:
                fh.write(note)
                fh.flush()
            proc.terminate()
            threading.Timer(10.0, lambda: proc.poll() is None and proc.kill()).start()
        if tick and now - last_tick >= tick_every:
            last_tick = now
            tick()
    rc = proc.wait()
    out.close()
    return ChildResult(rc, hung, tail.decode("utf-8", errors="replace"))
