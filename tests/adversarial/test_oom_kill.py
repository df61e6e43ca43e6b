"""A trainer that lies about running out of memory: killed by SIGKILL with no message while the
kernel's OOM-kill counters stand still (a person's `kill -9`), or failing to allocate for real.
The first is a kill, not an out-of-memory (no smaller batch suggested); the second is one."""

from __future__ import annotations

import re

import pytest
from harness import Case, run_case
from room_kit import params, project_dir
from test_room_run import CHANGES, DRY, STEP, _kohya, _trainer

from trainwright.run import oom_kills

PERSON_KILL = _trainer("person-kill", STEP.format(i=1, loss="0.1") + "\nkill -9 $$")
NO_MEMORY = _trainer("no-memory", "exec python3 -c 'bytearray(2**50)'")


def _kind(expected: str, *absent: str):
    def check(r) -> None:
        progress = (project_dir(r.project) / "progress.md").read_text()
        found = re.search(r"\*\*Failure kind\*\*: (\S+)", progress)
        assert found and found.group(1) == expected, progress
        for word in absent:
            assert word not in r.out + r.err, r.out + r.err

    return check


CASES = [
    Case(
        "dry-trainer-killed-by-a-person",
        "run",
        "lying-tool",
        "refused",
        DRY,
        setup=_kohya,
        env=PERSON_KILL,
        may_change=CHANGES,
        check=_kind("killed", "try batch", "lower the batch size"),
    ),
    Case(
        "dry-trainer-cannot-allocate",
        "run",
        "resource-exhaustion",
        "refused",
        DRY,
        setup=_kohya,
        env=NO_MEMORY,
        may_change=CHANGES,
        check=_kind("oom"),
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: Case, tmp_path) -> None:
    if case.id.endswith("by-a-person") and not oom_kills.snapshot():
        pytest.skip("no OOM-kill counter readable here: every SIGKILL counts as OOM")
    run_case(case, tmp_path)
