"""Gate 1 on hostile text datasets: a binary file named .jsonl, an empty file, rows that are
lists, one huge line, a symlink loop, a FIFO, a CSV with a BOM. Each is a one-line error (exit 2)
or a NO-GO with a plain reason, never a traceback; the dataset itself is never touched."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from harness import Case, cli, ids, run_case

GATE1 = ["gate", "check", "t", "--gate", "1"]
RECORDED = ("grimoire/training/t/dataset-report.md", "grimoire/training/t/status.md")
ROW = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


def project_with(make):
    """A setup that makes the dataset with `make(root) -> relative path` and names it."""

    def setup(root: Path) -> list[str]:
        assert cli(root, "grimoire", "new", "t").returncode == 0
        rel = make(root)
        done = cli(root, "grimoire", "set", "intent", "--project", "t", f"Dataset folder={rel}")
        assert done.returncode == 0, done.stderr
        return GATE1

    return setup


def binary(root: Path) -> str:
    (root / "data.jsonl").write_bytes(bytes(range(256)) * 64)
    return "data.jsonl"


def empty(root: Path) -> str:
    (root / "data.jsonl").write_bytes(b"")
    return "data.jsonl"


def lists(root: Path) -> str:
    (root / "data.jsonl").write_text("".join(json.dumps([i, "x"]) + "\n" for i in range(20)))
    return "data.jsonl"


def huge_line(root: Path) -> str:
    big = {"text": "x" * (70 << 20)}  # one 70 MiB line, over the 64 MiB a line may hold
    (root / "data.jsonl").write_text(json.dumps(big) + "\n" + json.dumps(ROW) + "\n")
    return "data.jsonl"


def loop(root: Path) -> str:
    os.symlink("loop.jsonl", root / "loop.jsonl")
    return "loop.jsonl"


def fifo(root: Path) -> str:
    os.mkfifo(root / "data.jsonl")
    return "data.jsonl"


def bom_csv(root: Path) -> str:
    lines = ["text"] + [f"row number {i}" for i in range(12)]
    (root / "data.csv").write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n")
    return "data.csv"


def says(*fragments: str):
    def check(r) -> None:
        text = r.out + r.err
        for frag in fragments:
            assert frag in text, (frag, text)

    return check


CASES = [
    Case("text-binary-jsonl", "dataset", "bad-file", "refused", setup=project_with(binary),
         check=says("NO-GO", "rows are not UTF-8 text"), may_change=RECORDED),
    Case("text-empty-file", "dataset", "bad-file", "refused", setup=project_with(empty),
         check=says("NO-GO", "data.jsonl has no rows"), may_change=RECORDED),
    Case("text-rows-are-lists", "dataset", "silent-nonsense", "refused",
         setup=project_with(lists), may_change=RECORDED,
         check=says("20 rows are not JSON objects of columns (line 1", "a JSON list")),
    Case("text-huge-line", "dataset", "resource-exhaustion", "refused",
         setup=project_with(huge_line), may_change=RECORDED, timeout=120,
         check=says("1 rows are too long to read (line 1)", "longer than 64 MiB")),
    Case("text-symlink-loop", "dataset", "path-escape", "clear-error", setup=project_with(loop),
         check=says("a link that cannot be followed")),
    Case("text-fifo", "dataset", "hang", "clear-error", setup=project_with(fifo), timeout=30,
         check=says("a FIFO, not a dataset file or folder")),
    Case("text-csv-with-bom", "dataset", "bad-file", "correct", setup=project_with(bom_csv),
         may_change=RECORDED, check=says("Gate 1 (dataset) for t: GO", "12 SFT rows")),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
