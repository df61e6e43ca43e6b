"""The cli room: the command line as a whole: hostile and empty values, environment variables
that point at nonsense, non-UTF-8 arguments, and a working folder that is not a project."""

from __future__ import annotations

import pytest
from harness import Case, run_case
from room_kit import params, said, write

CASES = [
    Case("version", "cli", "silent-nonsense", "correct", ["--version"], check=said("trainwright")),
    Case("json-unknown-command", "cli", "bad-file", "clear-error", ["--json", "nope"]),
    Case(
        "subcommand-help",
        "cli",
        "bad-file",
        "correct",
        ["gate", "check", "--help"],
        check=said("--gate"),
    ),
    Case("missing-argument", "cli", "bad-file", "clear-error", ["gate", "check"]),
    Case(
        "gate-number-text", "cli", "bad-file", "clear-error", ["gate", "check", "t1", "--gate", "x"]
    ),
    Case(
        "gate-number-five",
        "cli",
        "silent-nonsense",
        "clear-error",
        ["gate", "check", "t1", "--gate", "5"],
    ),
    Case(
        "grimoire-env-missing",
        "cli",
        "path-escape",
        "clear-error",
        ["status", "t1"],
        env={"TRAINWRIGHT_GRIMOIRE": "/no/such/place"},
    ),
    Case(
        "grimoire-flag-file",
        "cli",
        "path-escape",
        "clear-error",
        ["--grimoire", "f.txt", "status", "t1"],
        setup=lambda p: write(p / "f.txt", "x") and None,
    ),
    Case(
        "registry-env-missing",
        "cli",
        "path-escape",
        "clear-error",
        ["registry", "show"],
        env={"TRAINWRIGHT_REGISTRY": "/no/such/registry.json"},
    ),
    Case("status-shell-name", "cli", "hostile-name", "clear-error", ["status", "$(touch pwn)"]),
    Case("status-newline-name", "cli", "hostile-name", "clear-error", ["status", "t1\nt2"]),
    Case("status-long-name", "cli", "hostile-name", "clear-error", ["status", "x" * 5000]),
    Case("status-nonutf8-name", "cli", "hostile-name", "clear-error", ["status", "caf\udce9"]),
    Case(
        "init-into-file",
        "cli",
        "path-escape",
        "clear-error",
        ["init", "f.txt"],
        setup=lambda p: write(p / "f.txt", "mine\n") and None,
    ),
    Case(
        "init-again",
        "cli",
        "corrupt-state",
        "correct",
        ["init", "."],
        may_change=[".claude/*", ".codex/*", ".trainwright/*", ".agents/*", "*.md"],
    ),
    Case(
        "doctor",
        "cli",
        "lying-tool",
        "correct",
        ["doctor"],
        timeout=60,
        env={"TRAINWRIGHT_NVIDIA_SMI": "/dev/null"},
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
