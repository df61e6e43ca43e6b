"""A real out-of-memory under `trainwright launch`, recovered, the way /train runs it: a fresh
`trainwright init` project root, Gates 1-4 recorded GO by the real commands (the dry run has
the whole machine), then `launch` inside a memory cap (a memory cgroup, as in a container or a
systemd scope) that batch 32 does not fit. The kernel kills the trainer (SIGKILL, no text), the
supervisor sees the cgroup's OOM-kill counter rise, halves the batch, doubles the accumulation,
and the run completes.

Measured on the 2-core CI machine (peak of the cgroup holding launch, its supervisor and the
tiny trainer at 64 px): ~970 MiB at batch 32, ~650 MiB at batch 16; the cap is 800 MiB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import run_cli
from support.memory_cap import memory_cap

CAP_MB = 800


def ok(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for frag in fragments:
        assert frag in proc.stdout, (frag, proc.stdout)
    return proc.stdout


@pytest.mark.slow
def test_launch_under_a_memory_cap_retries_at_half_the_batch(tmp_path: Path) -> None:
    from trainwright.backends.tiny_model.data import write_example_dataset

    times = {}
    start = time.monotonic()
    ok(run_cli("init", "studio", cwd=tmp_path))
    root = tmp_path / "studio"
    write_example_dataset(root / "dataset", 22, size=160)
    ok(run_cli("grimoire", "new", "demo", cwd=root))
    ok(run_cli("grimoire", "set", "intent", "--project", "demo", "Type=style", "Base model=tiny",
               "Trigger word=exstyle", "Dataset folder=dataset", cwd=root))  # fmt: skip
    ok(run_cli("dedup", "dataset", "--quarantine", "dupes", cwd=root), "moved")
    ok(run_cli("gate", "check", "demo", "--gate", "1", cwd=root), "Gate 1 (dataset) for demo: GO")
    ok(run_cli("config", "--project", "demo", "--backend", "tiny", "--preset", "quick",
               "epochs=1", "batch_size=32", "repeats=5", cwd=root))  # fmt: skip
    ok(run_cli("gate", "check", "demo", "--gate", "2", cwd=root), "Gate 2 (config) for demo: GO")
    ok(run_cli("env", "check", "demo", cwd=root))
    ok(run_cli("gate", "check", "demo", "--gate", "3", cwd=root), "GO")
    ok(run_cli("dry-run", "demo", cwd=root, timeout=300), "Gate 4 GO")
    times["init, gates 1-4"] = time.monotonic() - start

    start = time.monotonic()
    with memory_cap(CAP_MB) as cap:
        launch = [sys.executable, "-m", "trainwright", "launch", "demo"]
        proc = subprocess.run(
            cap.wrap(launch), cwd=root, capture_output=True, text=True, timeout=300
        )
    times["launch"] = time.monotonic() - start
    folder = root / "grimoire" / "training" / "demo"
    log = (folder / "train.log").read_text()
    assert proc.returncode == 0, proc.stdout + proc.stderr + log[-3000:]
    assert "training finished" in proc.stdout
    state = json.loads((folder / "run.json").read_text())
    assert state["status"] == "COMPLETE" and state["oom_recoveries"] == 1, state
    assert (state["batch"], state["accumulation"]) == (16, 2)
    assert state["adjustments"][0].startswith("Hit memory limit: batch 32 -> 16")
    assert "effective batch 32 -> 32" in state["adjustments"][0]
    (first,) = folder.glob("logs/*-attempt-1.log")
    killed = first.read_text()
    assert "batch 32" in killed and "can't allocate memory" not in killed
    assert "MemoryError" not in killed and "tiny: done" not in killed  # killed, not refused
    snap = json.loads(ok(run_cli("monitor", "demo", "--json", cwd=root)))
    assert snap["status"] == "complete" and snap["step"] == snap["steps"]
    assert list((folder / "output").glob("demo-epoch-*.safetensors"))
    print("launch under a memory cap:", {k: f"{v:.1f} s" for k, v in times.items()})
