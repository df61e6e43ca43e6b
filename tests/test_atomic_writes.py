"""Writes survive SIGKILL (old or new file, never a mix) and the lock serialises writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainwright.errors import TrainwrightError
from trainwright.state.atomic import atomic_write_text, locked
from trainwright.state.grimoire import Grimoire

WRITER = r"""
import sys
from trainwright.state.atomic import atomic_write_text
path = sys.argv[1]
a = "A" * 8_000_000 + "\n"
b = "B" * 8_000_000 + "\n"
print("ready", flush=True)
i = 0
while True:
    atomic_write_text(path, a if i % 2 else b)
    i += 1
"""


def test_sigkill_mid_write_leaves_old_or_new(tmp_path: Path) -> None:
    target = tmp_path / "state.md"
    old = "A" * 8_000_000 + "\n"
    new = "B" * 8_000_000 + "\n"
    atomic_write_text(target, old)
    for delay in (0.05, 0.11, 0.17, 0.23, 0.31, 0.43):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        content = target.read_text()
        assert content in (old, new), f"torn file after kill at {delay}s: {len(content)} bytes"


def test_atomic_write_keeps_mode(tmp_path: Path) -> None:
    target = tmp_path / "x.md"
    target.write_text("one\n")
    os.chmod(target, 0o600)
    atomic_write_text(target, "two\n")
    assert target.read_text() == "two\n"
    assert (target.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["x.md"]


INCREMENTER = r"""
import sys
from trainwright.state.atomic import atomic_write_text, locked
from trainwright.state.document import read_document, set_fields
from trainwright.state.grimoire import Grimoire
path = Grimoire(sys.argv[1]).path_for("progress", "p")
for _ in range(int(sys.argv[2])):
    with locked(path.parent):
        doc = read_document(path)
        n = int(doc.get("", "OOM recoveries"))
        atomic_write_text(path, set_fields(doc, {"": {"OOM recoveries": n + 1}}).text())
"""


def test_lock_prevents_lost_updates(tmp_path: Path) -> None:
    """Three processes doing read-modify-write under the lock lose no increment."""
    g = Grimoire(tmp_path)
    g.new_project("p")
    procs = [
        subprocess.Popen([sys.executable, "-c", INCREMENTER, str(tmp_path), "40"]) for _ in range(3)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    _, data = g.read("progress", "p")
    assert data["sections"][""]["OOM recoveries"] == 120


def test_lock_times_out_with_clear_error(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time\nfrom trainwright.state.atomic import locked\n"
            "with locked(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(30)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(TrainwrightError, match="holds the lock"), locked(tmp_path, timeout=0.3):
            pass
    finally:
        holder.kill()
        holder.wait()
