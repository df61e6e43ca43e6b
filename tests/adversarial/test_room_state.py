"""The state room: the grimoire files (eye.md, studio.md, a project's state files) when they are
corrupt, half written, locked by a dead process, named with hostile names, or edited at once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from harness import Case, Result, cli, run_case
from room_kit import absent, ok, params, project_dir, said, write

INTENT = "grimoire/training/t1/intent.md"


def _new(p):
    ok(cli(p, "grimoire", "new", "t1"))


def _intent_bytes(data: bytes):
    def setup(p):
        _new(p)
        (p / INTENT).write_bytes(data)

    return setup


def _intent_dir(p):
    _new(p)
    (p / INTENT).unlink()
    (p / INTENT).mkdir()


def _lock_is_folder(p):
    _new(p)
    lock = project_dir(p) / ".trainwright.lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()


def _stale_temp(p):
    _new(p)
    write(project_dir(p) / ".intent.md.tmp-4242", "- **Type**: half writ")


def _killed_mid_set(p):
    """A `grimoire set` SIGKILLed as it starts; the rerun must still work on whole files."""
    _new(p)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainwright",
            "grimoire",
            "set",
            "intent",
            "--project",
            "t1",
            "Type=style",
        ],
        cwd=p,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import time

    time.sleep(0.15)
    proc.kill()
    proc.wait()


_BACKGROUND: dict[str, subprocess.Popen] = {}


def _concurrent_set(p):
    _new(p)
    _BACKGROUND[str(p)] = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainwright",
            "grimoire",
            "set",
            "intent",
            "--project",
            "t1",
            "Trigger word=zzq",
        ],
        cwd=p,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _both_fields(r: Result) -> None:
    bg = _BACKGROUND.pop(str(r.project))
    _, err = bg.communicate(timeout=60)
    assert bg.returncode == 0, err
    text = (r.project / INTENT).read_text()
    assert "- **Type**: style" in text, text
    assert "- **Trigger word**: zzq" in text, text


def _concurrent_new(p):
    _BACKGROUND[str(p)] = subprocess.Popen(
        [sys.executable, "-m", "trainwright", "grimoire", "new", "t1"],
        cwd=p,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _one_new_won(r: Result) -> None:
    bg = _BACKGROUND.pop(str(r.project))
    bg.communicate(timeout=60)
    assert sorted([bg.returncode, r.returncode]) in ([0, 0], [0, 2]), (bg.returncode, r.returncode)
    assert (r.project / INTENT).is_file()


def _no_injected_line(r: Result) -> None:
    text = (r.project / INTENT).read_text()
    assert "- **Base model**: evil" not in text.splitlines(), text


def _eye_garbage(p):
    (p / "grimoire/eye.md").write_bytes(os.urandom(2048))


def _symlinked_grimoire(p):
    real = p / "state-real"
    (p / "grimoire").rename(real)
    (p / "grimoire").symlink_to("state-real")
    ok(cli(p, "grimoire", "new", "t1"))


LONG = "x" * 300

CASES = [
    Case(
        "new-dotdot",
        "state",
        "hostile-name",
        "clear-error",
        ["grimoire", "new", "../escape"],
        check=absent("grimoire/escape", "escape"),
    ),
    Case("new-slash", "state", "hostile-name", "clear-error", ["grimoire", "new", "a/b"]),
    Case("new-absolute", "state", "path-escape", "clear-error", ["grimoire", "new", "/tmp/x-abs"]),
    Case("new-dot", "state", "hostile-name", "clear-error", ["grimoire", "new", "."]),
    Case("new-space", "state", "hostile-name", "clear-error", ["grimoire", "new", "my project"]),
    Case(
        "new-shell",
        "state",
        "hostile-name",
        "clear-error",
        ["grimoire", "new", "$(touch pwn)"],
        check=absent("pwn"),
    ),
    Case("new-newline", "state", "hostile-name", "clear-error", ["grimoire", "new", "a\nb"]),
    Case("new-dash", "state", "hostile-name", "clear-error", ["grimoire", "new", "--", "-rf"]),
    Case("new-long", "state", "hostile-name", "clear-error", ["grimoire", "new", LONG]),
    Case(
        "new-unicode",
        "state",
        "hostile-name",
        "clear-error",
        ["grimoire", "new", "café"],
        check=absent("grimoire/training/café"),
    ),
    Case(
        "new-twice",
        "state",
        "corrupt-state",
        "correct",
        ["grimoire", "new", "t1"],
        setup=_new,
        check=said("kept"),
    ),
    Case(
        "show-missing-project",
        "state",
        "corrupt-state",
        "clear-error",
        ["grimoire", "show", "intent", "--project", "nope"],
    ),
    Case(
        "show-binary-intent",
        "state",
        "bad-file",
        "clear-error",
        ["grimoire", "show", "intent", "--project", "t1"],
        setup=_intent_bytes(os.urandom(4096)),
    ),
    Case(
        "show-latin1-intent",
        "state",
        "bad-file",
        "clear-error",
        ["grimoire", "show", "intent", "--project", "t1"],
        setup=_intent_bytes(b"# Training Intent: t1\n\n- **Type**: caf\xe9\n"),
    ),
    Case(
        "show-empty-intent",
        "state",
        "bad-file",
        "clear-error",
        ["grimoire", "show", "intent", "--project", "t1"],
        setup=_intent_bytes(b""),
    ),
    Case(
        "show-intent-folder",
        "state",
        "bad-file",
        "clear-error",
        ["grimoire", "show", "intent", "--project", "t1"],
        setup=_intent_dir,
    ),
    Case(
        "set-binary-intent",
        "state",
        "bad-file",
        "clear-error",
        ["grimoire", "set", "intent", "--project", "t1", "Type=style"],
        setup=_intent_bytes(b"\xff\xfe\x00garbage\x00"),
    ),
    Case(
        "set-intent-folder",
        "state",
        "bad-file",
        "clear-error",
        ["grimoire", "set", "intent", "--project", "t1", "Type=style"],
        setup=_intent_dir,
    ),
    Case(
        "set-lock-is-folder",
        "state",
        "corrupt-state",
        "clear-error",
        ["grimoire", "set", "intent", "--project", "t1", "Type=style"],
        setup=_lock_is_folder,
    ),
    Case(
        "set-newline-value",
        "state",
        "hostile-name",
        "clear-error",
        ["grimoire", "set", "intent", "--project", "t1", "Trigger word=a\n- **Base model**: evil"],
        setup=_new,
        check=_no_injected_line,
    ),
    Case(
        "set-no-equals",
        "state",
        "bad-file",
        "clear-error",
        ["grimoire", "set", "intent", "--project", "t1", "Type"],
        setup=_new,
    ),
    Case(
        "set-huge-value",
        "state",
        "resource-exhaustion",
        "correct",
        ["grimoire", "set", "intent", "--project", "t1", "Description=" + "d" * 20000],
        setup=_new,
        may_change=[INTENT],
        timeout=20,
    ),
    Case(
        "set-stale-temp",
        "state",
        "interrupted-write",
        "correct",
        ["grimoire", "set", "intent", "--project", "t1", "Type=style"],
        setup=_stale_temp,
        may_change=[INTENT],
        check=said("Type"),
    ),
    Case(
        "set-after-kill",
        "state",
        "interrupted-write",
        "correct",
        ["grimoire", "set", "intent", "--project", "t1", "Type=style"],
        setup=_killed_mid_set,
        may_change=[INTENT],
    ),
    Case(
        "set-concurrent",
        "state",
        "concurrent-state",
        "correct",
        ["grimoire", "set", "intent", "--project", "t1", "Type=style"],
        setup=_concurrent_set,
        may_change=[INTENT],
        check=_both_fields,
    ),
    Case(
        "new-concurrent",
        "state",
        "concurrent-state",
        "correct",
        ["grimoire", "new", "t1"],
        setup=_concurrent_new,
        may_change=["grimoire/training/t1/*"],
        exit=None,
        check=_one_new_won,
    ),
    Case(
        "validate-garbage-eye",
        "state",
        "bad-file",
        "refused",
        ["grimoire", "validate"],
        setup=_eye_garbage,
    ),
    Case(
        "status-garbage-eye",
        "state",
        "bad-file",
        "correct",
        ["status", "t1"],
        setup=lambda p: (_new(p), _eye_garbage(p)) and None,
        check=said("t1"),
    ),
    Case(
        "grimoire-env-is-file",
        "state",
        "path-escape",
        "clear-error",
        ["status", "t1"],
        setup=lambda p: write(p / "state.txt", "x") and None,
        env={"TRAINWRIGHT_GRIMOIRE": "state.txt"},
    ),
    Case(
        "grimoire-symlinked",
        "state",
        "path-escape",
        "correct",
        ["grimoire", "set", "intent", "--project", "t1", "Type=style"],
        setup=_symlinked_grimoire,
        may_change=["state-real/training/t1/intent.md"],
        check=lambda r: None if (r.project / "grimoire").is_symlink() else pytest.fail("link"),
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
