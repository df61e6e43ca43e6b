"""The run room: dry-run, launch, stop, monitor and checkpoints when the trainer lies (garbage,
NaN loss, killed, exit 0 after nothing), the run record is damaged, or a dry run is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from harness import Case, cli, run_case
from room_kit import (
    absent,
    exists,
    fake_bin,
    ok,
    params,
    project_dir,
    said,
    training_project,
    write,
)

P = "grimoire/training/t1"
CHANGES = [f"{P}/*.md", f"{P}/*.log"]
STEP = 'echo "steps: 50%|##| {i}/3 [00:01<00:01, 1.0it/s, avr_loss={loss}]"'


def _trainer(kind: str, body: str) -> dict[str, str]:
    """A stand-in sd-scripts checkout and `accelerate` on PATH that runs `body`."""
    path = fake_bin(f"trainer-{kind}", {"accelerate": body})
    sd = path.split(os.pathsep)[0] + "/sd-scripts"
    os.makedirs(sd, exist_ok=True)
    for script in ("sdxl_train_network.py", "train_network.py"):
        open(os.path.join(sd, script), "a").close()
    return {"PATH": path, "TRAINWRIGHT_KOHYA_DIR": sd}


def _steps(loss: str) -> str:
    return "\n".join(STEP.format(i=i, loss=loss) for i in (1, 2, 3))


GOOD = _trainer("good", _steps("0.12"))
GARBAGE = _trainer("garbage", 'echo "steps: 100%|garbage| nan/nan loss=???"\nexit 0')
NAN = _trainer("nan", _steps("nan"))
INF = _trainer("inf", _steps("inf"))
KILLED = _trainer("killed", STEP.format(i=1, loss="0.1") + "\nkill -9 $$")
HUGE_LINE = _trainer("huge-line", "head -c 5000000 /dev/zero | tr '\\0' 'x'; echo; exit 0")
BYTES = _trainer("bytes", 'printf "\\377\\376 \\000 \\033[2J bad bytes\\n"; exit 3')
SLOW_ONCE = _trainer("slow-once", '[ -n "$TW_SLOW" ] && sleep 30\n' + _steps("0.12"))


def _kohya(p):
    training_project(p)
    ok(cli(p, "grimoire", "set", "intent", "--project", "t1", "Base model=sdxl"))
    ok(
        cli(
            p,
            "config",
            "--project",
            "t1",
            "--backend",
            "kohya",
            "--preset",
            "quick",
            "--vram",
            "24",
        )
    )


def _tiny(p):
    training_project(p, config=True)


def _tiny_yaml(data: bytes | str):
    def setup(p):
        _tiny(p)
        write(project_dir(p) / "tiny.yaml", data)

    return setup


def _run_json(data: bytes | str):
    def setup(p):
        _tiny(p)
        write(project_dir(p) / "run.json", data)

    return setup


def _killed_dry_run(p):
    """A dry run SIGKILLed (with its trainer) while the trainer is busy; then the rerun."""
    _kohya(p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainwright", "dry-run", "t1"],
        cwd=p,
        env={**os.environ, **SLOW_ONCE, "TW_SLOW": "1"},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not (project_dir(p) / "dry-run.log").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _log(name: str, data: bytes | str):
    def setup(p):
        write(p / name, data)

    return setup


def _output(p, files: dict[str, bytes | str]):
    _tiny(p)
    for name, data in files.items():
        write(project_dir(p) / "output" / name, data)


def _foreign_output(p):
    _output(p, {"notes.txt": "mine\n", "empty.safetensors": b""})
    (project_dir(p) / "output/dir.safetensors").mkdir()


def _output_escape(p):
    _tiny(p)
    (p / "elsewhere").mkdir()
    write(p / "elsewhere/precious-000001.safetensors", b"not yours")
    (project_dir(p) / "output").symlink_to(p / "elsewhere")


DRY = ["dry-run", "t1"]
CASES = [
    Case(
        "dry-good-trainer",
        "run",
        "lying-tool",
        "correct",
        DRY,
        setup=_kohya,
        env=GOOD,
        may_change=CHANGES,
        check=said("Gate 4 GO"),
    ),
    Case(
        "dry-garbage-trainer",
        "run",
        "lying-tool",
        "refused",
        DRY,
        setup=_kohya,
        env=GARBAGE,
        may_change=CHANGES,
        check=said("0 step"),
    ),
    Case(
        "dry-nan-loss",
        "run",
        "lying-tool",
        "refused",
        DRY,
        setup=_kohya,
        env=NAN,
        may_change=CHANGES,
        check=said("not a number"),
    ),
    Case(
        "dry-inf-loss",
        "run",
        "lying-tool",
        "refused",
        DRY,
        setup=_kohya,
        env=INF,
        may_change=CHANGES,
        check=said("not a number"),
    ),
    Case(
        "dry-trainer-killed",
        "run",
        "lying-tool",
        "refused",
        DRY,
        setup=_kohya,
        env=KILLED,
        may_change=CHANGES,
        check=said("SIGKILL"),
    ),
    Case(
        "dry-trainer-huge-line",
        "run",
        "resource-exhaustion",
        "refused",
        DRY,
        setup=_kohya,
        env=HUGE_LINE,
        may_change=CHANGES,
        timeout=30,
    ),
    Case(
        "dry-trainer-control-bytes",
        "run",
        "lying-tool",
        "refused",
        DRY,
        setup=_kohya,
        env=BYTES,
        may_change=CHANGES,
        check=said("exit status 3"),
    ),
    Case(
        "dry-after-kill",
        "run",
        "interrupted-write",
        "correct",
        DRY,
        setup=_killed_dry_run,
        env=SLOW_ONCE,
        may_change=CHANGES,
        timeout=30,
        check=said("Gate 4 GO"),
    ),
    Case(
        "dry-no-config",
        "run",
        "corrupt-state",
        "refused",
        DRY,
        setup=lambda p: training_project(p),
        may_change=CHANGES,
    ),
    Case(
        "dry-config-binary",
        "run",
        "bad-file",
        "refused",
        DRY,
        setup=_tiny_yaml(os.urandom(2000)),
        may_change=CHANGES,
    ),
    Case(
        "dry-config-list",
        "run",
        "bad-file",
        "refused",
        DRY,
        setup=_tiny_yaml("- 1\n- 2\n"),
        may_change=CHANGES,
    ),
    Case(
        "dry-config-empty",
        "run",
        "bad-file",
        "refused",
        DRY,
        setup=_tiny_yaml(""),
        may_change=CHANGES,
    ),
    Case("dry-missing-project", "run", "corrupt-state", "clear-error", ["dry-run", "nope"]),
    Case("dry-dotdot-project", "run", "hostile-name", "clear-error", ["dry-run", "../t1"]),
    Case(
        "launch-no-gates",
        "run",
        "corrupt-state",
        "refused",
        ["launch", "t1"],
        setup=_tiny,
        may_change=CHANGES,
        check=absent(f"{P}/run.json", f"{P}/output"),
    ),
    Case("launch-missing-project", "run", "corrupt-state", "clear-error", ["launch", "nope"]),
    Case(
        "launch-run-json-binary",
        "run",
        "corrupt-state",
        "refused",
        ["launch", "t1"],
        setup=_run_json(os.urandom(300)),
        may_change=CHANGES,
        check=exists(f"{P}/run.json"),
    ),
    Case(
        "stop-no-run",
        "run",
        "corrupt-state",
        "correct",
        ["stop", "t1"],
        setup=_tiny,
        check=said("no run is live"),
    ),
    Case(
        "stop-run-json-binary",
        "run",
        "corrupt-state",
        "correct",
        ["stop", "t1"],
        setup=_run_json(os.urandom(300)),
        check=said("no run is live"),
    ),
    Case(
        "stop-run-json-dead-pid",
        "run",
        "lying-tool",
        "correct",
        ["stop", "t1"],
        setup=_run_json('{"pid": 1, "status": "RUNNING", "attempt": 1}'),
        check=said("no run is live"),
    ),
    Case(
        "monitor-run-json-binary",
        "run",
        "corrupt-state",
        "clear-error",
        ["monitor", "t1"],
        setup=_run_json(os.urandom(300)),
    ),
    Case(
        "monitor-run-json-list",
        "run",
        "corrupt-state",
        "clear-error",
        ["monitor", "t1"],
        setup=_run_json("[1, 2]"),
    ),
    Case(
        "monitor-garbage-log",
        "run",
        "lying-tool",
        "correct",
        ["monitor", "--log", "g.log"],
        setup=_log("g.log", "\x00 garbage\nloss=what step=-5\n"),
        check=said("no data"),
    ),
    Case(
        "monitor-binary-log",
        "run",
        "bad-file",
        "correct",
        ["monitor", "--log", "b.log"],
        setup=_log("b.log", os.urandom(200000)),
        check=said("no data"),
    ),
    Case(
        "monitor-empty-log",
        "run",
        "bad-file",
        "correct",
        ["monitor", "--log", "e.log"],
        setup=_log("e.log", ""),
        check=said("no data"),
    ),
    Case(
        "monitor-log-missing",
        "run",
        "path-escape",
        "clear-error",
        ["monitor", "--log", "no/such.log"],
    ),
    Case(
        "monitor-log-empty-folder",
        "run",
        "bad-file",
        "clear-error",
        ["monitor", "--log", "logs"],
        setup=lambda p: (p / "logs").mkdir() and None,
    ),
    Case(
        "monitor-kohya-garbage",
        "run",
        "lying-tool",
        "correct",
        ["monitor", "--log", "g.log", "--format", "kohya"],
        setup=_log("g.log", "steps: 999%|x| 9/3 [zz<??, nan, avr_loss=banana]\n"),
    ),
    Case(
        "monitor-tensorboard-garbage",
        "run",
        "lying-tool",
        "correct",
        ["monitor", "--log", "g.log", "--format", "tensorboard"],
        setup=_log("g.log", os.urandom(5000)),
    ),
    Case(
        "checkpoints-foreign-files",
        "run",
        "corrupt-state",
        "correct",
        ["checkpoints", "t1"],
        setup=_foreign_output,
    ),
    Case(
        "checkpoints-keep-zero",
        "run",
        "silent-nonsense",
        "clear-error",
        ["checkpoints", "t1", "--keep", "0", "--prune"],
        setup=_tiny,
    ),
    Case(
        "checkpoints-output-escape-prune",
        "run",
        "path-escape",
        "correct",
        ["checkpoints", "t1", "--keep", "1", "--prune"],
        setup=_output_escape,
        check=exists("elsewhere/precious-000001.safetensors"),
    ),
    Case(
        "checkpoints-missing-project",
        "run",
        "corrupt-state",
        "clear-error",
        ["checkpoints", "nope"],
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
