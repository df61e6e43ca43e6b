"""The command line itself: unknown commands and flags, hostile names, empty values."""

from __future__ import annotations

import pytest
from harness import Case, ids, run_case

CASES = [
    Case("unknown-command", "cli", "bad-file", "clear-error", ["no-such-command"]),
    Case("unknown-flag", "cli", "bad-file", "clear-error", ["status", "x", "--no-such-flag"]),
    Case("status-traversal-name", "cli", "hostile-name", "clear-error", ["status", "../../etc"]),
    Case("status-empty-name", "cli", "hostile-name", "clear-error", ["status", ""]),
    Case("status-dash-name", "cli", "hostile-name", "clear-error", ["status", "--", "-rf"]),
    Case(
        "grimoire-missing",
        "cli",
        "path-escape",
        "clear-error",
        ["--grimoire", "no/such/folder", "status", "t1"],
    ),
    Case(
        "help-works",
        "cli",
        "bad-file",
        "correct",
        ["--help"],
        check=lambda r: None if "Usage" in r.out else pytest.fail(r.out),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
