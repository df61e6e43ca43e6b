"""`trainwright launch`: the four-gate rule, one detached supervisor per project (a rerun
attaches), out-of-memory retries that really run out of memory, and the failures a supervisor
must name: a hang, an exit without training, death by SIGKILL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from helpers import assert_one_line_error, run_cli
from support.memory_cap import memory_cap
from support.tiny_project import make_project, pass_gates_1_and_2
from trainwright.cli import main
from trainwright.run import oom_kills
from trainwright.run.launch_target import RunPlan
from trainwright.run.runfiles import RunFiles
from trainwright.run.supervisor import Supervisor
from trainwright.state import gates
from trainwright.state.grimoire import Grimoire


def cli(capsys: pytest.CaptureFixture[str], g: Grimoire, *args: str) -> tuple[int, Any]:
    with pytest.raises(SystemExit) as exc:
        main(["--grimoire", str(g.root), *args, "--json"])
    out, _ = capsys.readouterr()
    return int(exc.value.code or 0), json.loads(out)


def wait_until(cond: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def ready_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **config: Any) -> Grimoire:
    """Gates 1-2 from stand-ins, Gates 3-4 for real (env check and a 2-step dry run)."""
    monkeypatch.setenv("TRAINWRIGHT_NVIDIA_SMI", "")
    g = make_project(tmp_path, **config)
    pass_gates_1_and_2(monkeypatch, g, "demo")
    assert gates.check(g, "demo", 3).decision == "GO"
    g.update("progress", {"Dry Run (Gate 4)": {"Steps requested": 2}}, "demo")
    assert gates.check(g, "demo", 4).decision == "GO"
    assert gates.status(g, "demo")["ready"]
    return g


def test_refuses_without_four_current_gos(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    g = make_project(tmp_path)
    code, out = cli(capsys, g, "launch", "demo")
    assert code == 1 and out["action"] == "refused"
    assert [x["gate"] for x in out["gates"]] == [1, 2, 3, 4]
    fixes = {x["gate"]: x["fix"] for x in out["gates"]}
    assert fixes[3] == "trainwright env check demo" and fixes[4] == "trainwright dry-run demo"
    assert not (g.project_dir("demo") / "run.json").exists()
    proc = run_cli("--grimoire", str(g.root), "launch", "demo")
    assert proc.returncode == 1 and "Gate 3 environment: PENDING" in proc.stdout
    assert "no overrides" in proc.stdout


def test_a_stale_gate_blocks_the_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    g = ready_project(tmp_path, monkeypatch)
    (tmp_path / "dataset" / "painting_00.txt").write_text("exstyle, changed\n")
    code, out = cli(capsys, g, "launch", "demo")
    assert code == 1 and {x["gate"] for x in out["gates"]} == {1, 4}
    assert all("STALE" in x["state"] for x in out["gates"])


@pytest.mark.slow
def test_launch_detaches_attaches_and_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    g = ready_project(tmp_path, monkeypatch, epochs=8, save_every_n_epochs=4)
    files = RunFiles(g.project_dir("demo"))
    code, out = cli(capsys, g, "launch", "demo")
    assert code == 0 and out["action"] == "started", out
    pid = out["pid"]
    assert os.getsid(pid) != os.getsid(0)  # its own session: closing the terminal leaves it
    code, again = cli(capsys, g, "launch", "demo")
    assert again["action"] == "attached" and again["pid"] == pid
    wait_until(lambda: not files.is_live())
    state = files.read_state()
    assert state["status"] == "COMPLETE" and state["pid"] == pid
    _, progress = g.read("progress", "demo")
    top = progress["sections"][""]
    assert top["Status"] == "COMPLETE" and top["Current step"] == "16/16"
    assert top["Checkpoints"] == "epoch-4, epoch-8" and top["OOM recoveries"] == 0
    assert (files.folder / "loss-curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "=== trainwright launch: attempt 1/4" in files.log.read_text()
    code, done = cli(capsys, g, "launch", "demo")
    assert code == 0 and done["action"] == "none"
    code, snap = cli(capsys, g, "monitor", "demo")
    assert code == 0 and snap["status"] == "complete" and snap["step"] == 16
    code, again = cli(capsys, g, "launch", "demo", "--again")
    assert again["action"] == "started" and again["checkpoints_moved_to"]
    wait_until(lambda: not files.is_live())
    assert Path(again["checkpoints_moved_to"], "demo-epoch-0008.safetensors").is_file()
    assert len(list(files.folder.glob("train.*.log"))) == 1  # the first run's log, kept


@pytest.mark.slow
def test_out_of_memory_halves_the_batch_until_it_fits(tmp_path: Path) -> None:
    g = make_project(tmp_path, images=2, resolution=64, batch_size=8, epochs=1, memory_limit_mb=100)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainwright.run.supervisor",
            "--grimoire",
            str(g.root),
            "--project",
            "demo",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    files = RunFiles(g.project_dir("demo"))
    state = files.read_state()
    assert proc.returncode == 0, proc.stdout + files.log.read_text()[-2000:]
    assert state["status"] == "COMPLETE" and state["oom_recoveries"] >= 1
    assert state["batch"] < 8 and state["batch"] * state["accumulation"] == 8
    log = files.log.read_text()
    assert "DefaultCPUAllocator: can't allocate memory" in log
    assert state["adjustments"][0].startswith("Hit memory limit: batch 8 -> 4")
    assert "effective batch 8 -> 8" in state["adjustments"][0]
    assert len(list(files.attempts.glob("*-attempt-*.log"))) == state["attempt"]
    _, progress = g.read("progress", "demo")
    assert progress["sections"][""]["OOM recoveries"] == state["oom_recoveries"]
    assert progress["sections"]["Run"]["Adjustment 1"] == state["adjustments"][0]
    assert "trainwright: Hit memory limit" in proc.stdout


def stand_in_plan(folder: Path, script: str, batch: int = 8) -> RunPlan:
    """A trainer stand-in (a real child process) for what the tiny trainer does not do."""
    mod = types.ModuleType("stand_in_backend")
    mod.HAS_ACCUMULATION, mod.CAN_RESUME, mod.LOG_FORMAT = True, False, "tiny"

    def command(config: Path, *, batch_size: int | None = None, **_: Any) -> list[str]:
        return [sys.executable, "-c", script, str(batch_size)]

    mod.command = command
    mod.checkpoint_dir = lambda config: folder / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return RunPlan("p", folder, "stand-in", mod, folder / "cfg", batch, 1)


STEP = "print('tiny: step=1/1 epoch=1/1 loss=0.5 lr=0.001 batch=1 mem_mib=1 elapsed_s=1')"


# A real allocation failure: a petabyte per sample is more than any machine can give.
ALLOCATE = "import sys\nbytearray(int(sys.argv[1]) * 2**50)\n"


def test_an_allocation_failure_halves_the_batch(tmp_path: Path) -> None:
    script = "import sys\nif int(sys.argv[1]) > 2: bytearray(2**50)\n" + STEP
    out = Supervisor(stand_in_plan(tmp_path, script), RunFiles(tmp_path)).run()
    assert out.status == "COMPLETE" and out.batch == 2 and out.accumulation == 4
    assert out.oom_recoveries == 2
    assert "MemoryError" in (tmp_path / "train.log").read_text()


def test_out_of_memory_at_batch_one_gives_up_with_advice(tmp_path: Path) -> None:
    out = Supervisor(stand_in_plan(tmp_path, ALLOCATE, batch=2), RunFiles(tmp_path)).run()
    assert out.status == "FAILED" and out.batch == 1 and "even at batch 1" in out.message


def test_retries_are_capped(tmp_path: Path) -> None:
    plan = stand_in_plan(tmp_path, ALLOCATE, 64)
    out = Supervisor(plan, RunFiles(tmp_path), max_retries=1).run()
    assert out.status == "FAILED" and out.attempts == 2 and "after 1 retries" in out.message


def test_a_kill_under_a_memory_cap_halves_the_batch(tmp_path: Path) -> None:
    """50 MiB a sample under a 150 MiB cgroup cap: the kernel kills batches 8 and 4 (SIGKILL,
    no text; its OOM-kill counter rises), batch 2 fits."""
    script = "import sys\nb = bytearray(int(sys.argv[1]) * 50 * 2**20)\n" + STEP
    plan = stand_in_plan(tmp_path, script)
    with memory_cap(150) as cap:
        command = plan.module.command
        plan.module.command = lambda config, **kw: cap.wrap(command(config, **kw))
        out = Supervisor(plan, RunFiles(tmp_path)).run()
    assert out.status == "COMPLETE", (tmp_path / "train.log").read_text()
    assert (out.batch, out.accumulation, out.oom_recoveries) == (2, 4, 2)
    assert "batch 8 -> 4" in out.adjustments[0]
    assert "MemoryError" not in (tmp_path / "train.log").read_text()  # killed, not refused


def test_a_kill_that_is_not_the_oom_killer_is_not_retried(tmp_path: Path) -> None:
    """A person's `kill -9`: SIGKILL, no text, and the kernel's OOM-kill counters stand still."""
    if oom_kills.killed_by_oom(oom_kills.snapshot(), oom_kills.snapshot()) is None:
        pytest.skip("no OOM-kill counter readable here (/proc/vmstat, memory cgroup)")
    script = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    out = Supervisor(stand_in_plan(tmp_path, script), RunFiles(tmp_path)).run()
    assert out.status == "FAILED" and out.attempts == 1 and out.oom_recoveries == 0
    assert out.failure["kind"] == "killed" and "not by the out-of-memory killer" in out.message


def test_a_silent_trainer_is_stopped_as_hung(tmp_path: Path) -> None:
    script = "import time; print('loading the model', flush=True); time.sleep(60)"
    sup = Supervisor(stand_in_plan(tmp_path, script), RunFiles(tmp_path), hang_timeout=1.5)
    started = time.monotonic()
    out = sup.run()
    assert out.status == "FAILED" and out.failure["kind"] == "hang"
    assert time.monotonic() - started < 30
    assert "no output for 1.5 s" in (tmp_path / "train.log").read_text()


def test_exit_zero_without_training_is_a_failure(tmp_path: Path) -> None:
    out = Supervisor(stand_in_plan(tmp_path, "print('nothing to do')"), RunFiles(tmp_path)).run()
    assert out.status == "FAILED" and out.failure["kind"] == "no-training"


def test_a_trainer_that_cannot_start(tmp_path: Path) -> None:
    plan = stand_in_plan(tmp_path, "")
    plan.module.command = lambda config, **_: ["/no/such/trainer-binary"]
    out = Supervisor(plan, RunFiles(tmp_path)).run()
    assert out.status == "FAILED" and "could not start" in (tmp_path / "train.log").read_text()


@pytest.mark.slow
def test_stop_then_launch_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    g = ready_project(tmp_path, monkeypatch, epochs=40)
    files = RunFiles(g.project_dir("demo"))
    code, out = cli(capsys, g, "launch", "demo", "--detach")
    assert out["action"] == "started"
    first = files.folder / "checkpoints" / "demo-epoch-0001.safetensors"
    wait_until(first.exists)
    code, stopped = cli(capsys, g, "stop", "demo")
    assert stopped["stopped"] and files.read_state()["status"] == "STOPPED"
    _, progress = g.read("progress", "demo")
    assert progress["sections"][""]["Status"] == "STOPPED"
    code, out = cli(capsys, g, "launch", "demo")
    assert out["action"] == "started" and out["resume"] is True
    wait_until(lambda: "resume from=" in files.log.read_text())
    cli(capsys, g, "stop", "demo")
    log = files.log.read_text()  # the resumed run goes on in the same log
    assert log.count("=== trainwright launch: attempt 1/4") == 2 and "resuming" in log
    assert first.exists() and len(list(files.attempts.glob("*.log"))) == 2


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["launch", "nope"], "no project 'nope'"),
        (["launch", "demo", "--max-retries", "-1"], "-1"),
        (["stop", "nope"], "no project 'nope'"),
        (["launch", "../demo"], "looks like a path"),
    ],
)
def test_bad_launch_requests(tmp_path: Path, args: list[str], fragment: str) -> None:
    g = make_project(tmp_path)
    assert_one_line_error(run_cli("--grimoire", str(g.root), *args), fragment)
    assert not (g.project_dir("demo") / "run.json").exists()


def test_a_fresh_run_moves_earlier_checkpoints_aside_instead_of_overwriting(
    tmp_path: Path,
) -> None:
    old = tmp_path / "checkpoints" / "p-epoch-0005.safetensors"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"earlier run")
    files = RunFiles(tmp_path)
    out = Supervisor(stand_in_plan(tmp_path, STEP), files).run()
    moved = Path(files.read_state()["checkpoints_moved_to"])
    assert out.status == "COMPLETE" and (moved / old.name).read_bytes() == b"earlier run"
    assert not old.exists() and "earlier checkpoints moved to" in files.log.read_text()
