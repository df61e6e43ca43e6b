"""The workflow room: tickets with hostile names, damaged ticket state, and the hook fed garbage
(the lock's escapes themselves are tested with the edit lock)."""

from __future__ import annotations

import os

import pytest
from harness import Case, cli, run_case
from room_kit import ok, params, write

T = "tickets/in-progress/t1"


def _ticket(p):
    ok(cli(p, "ticket", "new", "t1", "--skill", "llm-fine-tuning", "--no-worktree"))


def _state(data: bytes | str):
    def setup(p):
        _ticket(p)
        write(p / T / "workflow-state.md", data)

    return setup


NEW = ["ticket", "new", "--skill", "llm-fine-tuning", "--no-worktree"]
CASES = [
    Case("ticket-dotdot", "workflow", "hostile-name", "clear-error", [*NEW, "--", "../x"]),
    Case("ticket-slash", "workflow", "hostile-name", "clear-error", [*NEW, "a/b"]),
    Case("ticket-shell", "workflow", "hostile-name", "clear-error", [*NEW, "$(touch pwn)"]),
    Case("ticket-newline", "workflow", "hostile-name", "clear-error", [*NEW, "a\nb"]),
    Case("ticket-long", "workflow", "hostile-name", "clear-error", [*NEW, "t" * 300]),
    Case("ticket-twice", "workflow", "corrupt-state", "clear-error", [*NEW, "t1"], setup=_ticket),
    Case(
        "status-missing", "workflow", "corrupt-state", "clear-error", ["ticket", "status", "nope"]
    ),
    Case(
        "advance-missing", "workflow", "corrupt-state", "clear-error", ["ticket", "advance", "nope"]
    ),
    Case(
        "status-state-binary",
        "workflow",
        "bad-file",
        "refused",
        ["ticket", "status", "t1"],
        setup=_state(os.urandom(2000)),
    ),
    Case(
        "status-state-empty",
        "workflow",
        "bad-file",
        "refused",
        ["ticket", "status", "t1"],
        setup=_state(""),
    ),
    Case(
        "advance-state-binary",
        "workflow",
        "corrupt-state",
        "clear-error",
        ["ticket", "advance", "t1"],
        setup=_state(os.urandom(2000)),
    ),
    Case(
        "gate-bad-value",
        "workflow",
        "bad-file",
        "clear-error",
        ["ticket", "gate", "t1", "Maybe"],
        setup=_ticket,
    ),
    Case(
        "hook-garbage-stdin",
        "workflow",
        "lying-tool",
        "refused",
        ["ticket", "hook"],
        stdin="\x00not json{{",
        setup=_ticket,
    ),
    Case(
        "hook-empty-stdin",
        "workflow",
        "lying-tool",
        "refused",
        ["ticket", "hook"],
        stdin="",
        setup=_ticket,
    ),
    Case(
        "hook-list-stdin",
        "workflow",
        "lying-tool",
        "refused",
        ["ticket", "hook"],
        stdin="[1, 2]",
        setup=_ticket,
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
