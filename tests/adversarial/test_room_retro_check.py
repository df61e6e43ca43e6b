"""The retro room, `retro check`: summaries that cite what is not there, cite nothing, or are not
summaries at all."""

from __future__ import annotations

import pytest
from harness import Case, run_case
from room_kit import params, write

NOTES = "# Notes\n\n- lr 1e-4 too high there -> diverged around step 900\n"
SOURCES = "\n### Sources\n1. `reports/research/notes.md`: Notes (markdown)\n"


def _summary(text: str | bytes, notes: bool = True):
    def setup(p):
        if notes:
            write(p / "reports/research/notes.md", NOTES)
        write(p / "retro.md", text)

    return setup


def _lists(*fragments: str):
    def check(r) -> None:
        for frag in fragments:
            assert frag in r.proc.stdout, (frag, r.proc.stdout)

    return check


CASES = [
    Case(
        "check-cites-a-source-number-that-does-not-exist",
        "retro",
        "silent-nonsense",
        "refused",
        ["retro", "check", "retro.md"],
        setup=_summary(
            "## R\n\n- It diverged around step 900 [1]\n- lr 1e-4 was fine [3]\n" + SOURCES
        ),
        check=_lists("retro.md:4: cites [3], which is not a source (Sources lists 1-1)"),
    ),
    Case(
        "check-summary-without-citations",
        "retro",
        "silent-nonsense",
        "refused",
        ["retro", "check", "retro.md"],
        setup=_summary("# Retro\n\nlr 1e-4 diverged.\n- rank 16 was best\n- keep warmup\n"),
        check=_lists(
            "retro.md:3: cites no source",
            "retro.md:4: cites no source",
            "retro.md:5: cites no source",
            "3 of 3 checked line(s) unsupported",
        ),
    ),
    Case(
        "check-cites-a-file-outside-the-project",
        "retro",
        "path-escape",
        "refused",
        ["retro", "check", "retro.md"],
        setup=_summary("## R\n\n- root is 0 [1]\n\n### Sources\n1. `../../../../etc/passwd`: x\n"),
        check=_lists("is outside the project"),
    ),
    Case(
        "check-binary-summary",
        "retro",
        "bad-file",
        "clear-error",
        ["retro", "check", "retro.md"],
        setup=_summary(b"\x00\x01\x02 not text", notes=False),
    ),
    Case(
        "check-missing-summary",
        "retro",
        "bad-file",
        "clear-error",
        ["retro", "check", "no/such/summary.md"],
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
