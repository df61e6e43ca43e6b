"""The retro room: the retrospective's registry and reports when they are garbage, huge,
non-UTF-8 or point outside the project, and apply/log fed bad input."""

from __future__ import annotations

import os

import pytest
from harness import Case, run_case
from room_kit import params, write

REG = ".codex/skills/registry.json"


def _no_injected_heading(r) -> None:
    log = r.project / "docs/experiment-log.md"
    lines = log.read_text().splitlines()
    assert "## Injected" not in lines, lines


def _registry(data: bytes | str):
    def setup(p):
        write(p / REG, data)

    return setup


def _reports(files: dict[str, bytes | str]):
    def setup(p):
        for name, data in files.items():
            write(p / "reports" / name, data)

    return setup


CASES = [
    Case(
        "registry-binary",
        "retro",
        "bad-file",
        "refused",
        ["registry", "validate"],
        setup=_registry(os.urandom(1000)),
    ),
    Case(
        "registry-empty",
        "retro",
        "bad-file",
        "refused",
        ["registry", "validate"],
        setup=_registry(""),
    ),
    Case(
        "registry-list",
        "retro",
        "bad-file",
        "refused",
        ["registry", "validate"],
        setup=_registry("[1, 2]"),
    ),
    Case(
        "registry-show-binary",
        "retro",
        "bad-file",
        "clear-error",
        ["registry", "show"],
        setup=_registry(os.urandom(1000)),
    ),
    Case(
        "registry-use-binary",
        "retro",
        "corrupt-state",
        "clear-error",
        ["registry", "use", "research"],
        setup=_registry(os.urandom(1000)),
    ),
    Case(
        "registry-escape-paths",
        "retro",
        "path-escape",
        "refused",
        ["registry", "validate"],
        setup=_registry('{"domain": "research", "paths": {"reports": "../../../etc"}}'),
    ),
    Case(
        "collect-missing-report",
        "retro",
        "path-escape",
        "clear-error",
        ["retro", "collect", "no/such/report.md"],
    ),
    Case(
        "collect-binary-report",
        "retro",
        "bad-file",
        "clear-error",
        ["retro", "collect", "reports/a.md"],
        setup=_reports({"a.md": os.urandom(5000)}),
    ),
    Case(
        "collect-latin1-report",
        "retro",
        "bad-file",
        "clear-error",
        ["retro", "collect", "reports/a.md"],
        setup=_reports({"a.md": b"# Report\n\ncaf\xe9 failed with OOM\n"}),
    ),
    Case(
        "collect-huge-report",
        "retro",
        "resource-exhaustion",
        "clear-error",
        ["retro", "collect", "reports/a.md"],
        timeout=30,
        setup=_reports({"a.md": "# Report\n\n" + "error: out of memory\n" * 200000}),
    ),
    Case(
        "collect-since-garbage",
        "retro",
        "silent-nonsense",
        "clear-error",
        ["retro", "collect", "--since", "yesterday-ish"],
    ),
    Case(
        "summarize-date-garbage",
        "retro",
        "silent-nonsense",
        "clear-error",
        ["retro", "summarize", "--date", "notadate"],
    ),
    Case(
        "apply-missing-proposal",
        "retro",
        "path-escape",
        "clear-error",
        ["retro", "apply", "no-such-proposal", "--approved"],
    ),
    Case(
        "log-date-garbage",
        "retro",
        "silent-nonsense",
        "clear-error",
        ["retro", "log", "T", "--description", "d", "--date", "31/31/31"],
    ),
    Case(
        "log-newline-title",
        "retro",
        "hostile-name",
        "correct",
        ["retro", "log", "T\n## Injected", "--description", "d"],
        check=_no_injected_heading,
        may_change=["docs/*"],
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
