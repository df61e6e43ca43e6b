"""`retro collect` and `retro summarize` on the three fixture report sets, against golden files.

The golden summaries were read line by line against the fixture reports. After an intended
change to the extraction, rebuild them with `retro summarize --date` (dates in the test below)
and read the diff before committing it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_cli
from support.retro_project import DATA, make_project, snapshot

UNCITED = ("- No source records", "- none recorded", "- nothing recorded", "- no reports")
DATES = {"research": "2025-01-31", "unsloth": "2025-02-28", "cuda": "2025-03-31"}


@pytest.mark.parametrize("domain", sorted(DATES))
def test_summary_matches_the_golden_file(tmp_path: Path, domain: str) -> None:
    registry = make_project(tmp_path, domain)
    before = snapshot(tmp_path)
    proc = run_cli("retro", "summarize", "--registry", str(registry), "--date", DATES[domain])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (DATA / "golden" / f"{domain}-summary.md").read_text()
    assert snapshot(tmp_path) == before  # summarize without --out writes nothing


@pytest.mark.parametrize("domain", sorted(DATES))
def test_every_cited_source_exists_and_every_claim_is_cited(tmp_path: Path, domain: str) -> None:
    text = (DATA / "golden" / f"{domain}-summary.md").read_text()
    body, sources = text.split("### Sources")
    n_sources = len([ln for ln in sources.splitlines() if ln[:1].isdigit()])
    for section in (
        "### What we tried",
        "### Key findings",
        "### What failed",
        "### Open questions",
    ):
        assert section in body
    for line in body.splitlines():
        if line.startswith("- ") and not line.startswith(UNCITED):
            cites = [int(c) for c in re.findall(r"\[(\d+)\]", line)]
            assert cites and 1 <= cites[0] <= n_sources, line


def test_collect_json_extracts_each_domain_focus(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    data = json.loads(run_cli("retro", "collect", "--json", "--registry", str(registry)).stdout)
    by_path = {r["path"]: r for r in data["reports"]}
    bench = by_path["reports/cuda/2025-03-10-softmax-nvidia-h100-80gb-hbm3.md"]
    assert bench["format"] == "kernel-benchmark"
    assert bench["parameters"]["operation"] == "softmax"
    best = [r for r in bench["runs"] if r["label"] == "BLOCK_SIZE=8192"][2]
    assert best["parameters"] == {"block_size": "8192", "num_warps": "16"}
    assert best["metrics"]["bandwidth"] == "2,899 GB/s"
    assert best["metrics"]["pct_peak"] == "86.5 %"
    assert best["metrics"]["registers"] == "72" and best["metrics"]["spills"] == "0"
    notes = by_path["reports/cuda/softmax-tiling-notes.md"]
    assert {
        "what": "BLOCK_M=128",
        "why": "register spilling (184 spills), 30% slowdown",
    }.items() <= (notes["failed"][0].items())
    ncu = by_path["reports/cuda/matmul-ncu-2025-03-02.md"]
    assert ncu["metrics"]["occupancy"] == "11.92 %" and ncu["metrics"]["tflops"].startswith("612")
    assert ncu["focus_missing"] == ["memory pattern"]
    log = [r for r in data["reports"] if r["format"] == "experiment-log"]
    assert [r["date"] for r in log] == ["2025-03-01", "2025-03-12"]

    research = json.loads(
        run_cli(
            "retro", "collect", "--json", "--domain", "research", "--registry", str(registry)
        ).stdout
    )
    tvr = next(r for r in research["reports"] if r["format"] == "training-validation-report")
    assert tvr["parameters"]["learning_rate"] == "6e-4" and tvr["metrics"]["perplexity"] == "21.4"
    assert tvr["decision"].startswith("Pass")
    status = next(r for r in research["reports"] if r["format"] == "runs-status")
    assert [r["failed"] for r in status["runs"]] == [False, False, True, True]
    assert status["runs"][1]["metrics"] == {"loss": "2.87"}
    assert status["quirks"] == ["wd-0.3: 1 out-of-memory retries"]


def test_the_runs_status_fixture_is_what_the_cluster_tools_write() -> None:
    from trainwright.cluster.status import parse_status

    path = DATA / "research" / "reports" / "sweeps" / "runs_status.yaml"
    assert set(parse_status(path.read_text(), path)["runs"]) == {
        "wd-0.0",
        "wd-0.1",
        "wd-0.3",
        "wd-1.0",
    }


def test_unreadable_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "research")
    reports = tmp_path / "reports" / "research"
    (reports / "binary.md").write_bytes(b"# title\x00\x01\x02")
    (reports / "latin1.md").write_bytes("# caf\xe9\n".encode("latin-1"))
    (reports / "blank.txt").write_text("  \n\n")
    (reports / "huge.md").write_text("# big\n" + "- **k**: v\n" * 300_000)
    (reports / "broken.yaml").write_text("runs: [a, b\n")
    (reports / "prose.md").write_text("Just some words without any structure at all.\n")
    data = json.loads(run_cli("retro", "collect", "--json", "--registry", str(registry)).stdout)
    reasons = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in data["skipped"]}
    assert reasons["binary.md"].startswith("binary file")
    assert reasons["latin1.md"].startswith("not UTF-8 text (byte 0xe9 on line 1)")
    assert reasons["blank.txt"].startswith("empty file")
    assert reasons["empty-notes.md"] == "empty file"
    assert reasons["huge.md"].startswith("too large to read")
    assert reasons["broken.yaml"].startswith("invalid YAML")
    assert "prose.md" not in reasons  # prose is read: a passage for the agent to read itself
    prose = next(r for r in data["reports"] if r["path"].endswith("/prose.md"))
    assert [(p["start"], p["end"]) for p in prose["read_these_yourself"]] == [(1, 1)]
    assert reasons["loss-curve.png"] == "not a report file type (.png)"
    human = run_cli("retro", "collect", "--registry", str(registry)).stdout
    assert "not read: reports/research/binary.md: binary file" in human


@pytest.mark.parametrize(
    "name,content,fragment",
    [
        ("empty.md", b"", "empty file"),
        ("binary.md", b"\x89PNG\x00\x00", "binary file"),
        ("huge.md", b"# x\n" + b"a" * (2 * 1024 * 1024 + 10), "too large"),
    ],
)
def test_naming_an_unreadable_report_is_an_error(
    tmp_path: Path, name: str, content: bytes, fragment: str
) -> None:
    registry = make_project(tmp_path, "research")
    path = tmp_path / name
    path.write_bytes(content)
    before = snapshot(tmp_path)
    for cmd in ("collect", "summarize", "propose"):
        proc = run_cli("retro", cmd, str(path), "--registry", str(registry))
        assert_one_line_error(proc, name, fragment)
    assert snapshot(tmp_path) == before


def test_since_and_match_select_sources(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "research")
    args = ("retro", "collect", "--json", "--registry", str(registry))
    since = json.loads(run_cli(*args, "--since", "2025-01-10").stdout)
    dates = [r["date"] for r in since["reports"]]
    assert all(d >= "2025-01-10" for d in dates) and since["excluded_by_filter"] >= 3
    match = json.loads(run_cli(*args, "--match", "label smoothing").stdout)
    assert [r["title"] for r in match["reports"]] == ["2025-01-15 – Label smoothing try"]
    heads = json.loads(run_cli(*args, "--match", "HEADS ffn").stdout)
    assert [r["path"] for r in heads["reports"]] == [
        "reports/research/2025-01-08-attention-heads.md"
    ]
    assert_one_line_error(run_cli(*args, "--since", "last week"), "--since")


def test_named_reports_only(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "unsloth")
    one = tmp_path / "reports" / "unsloth" / "llama3-8b-lora-ranks.md"
    data = json.loads(
        run_cli("retro", "collect", "--json", str(one), "--registry", str(registry)).stdout
    )
    assert [r["path"] for r in data["reports"]] == ["reports/unsloth/llama3-8b-lora-ranks.md"]
    assert_one_line_error(
        run_cli("retro", "collect", str(tmp_path / "nope.md"), "--registry", str(registry)),
        "no such report",
    )


def test_summarize_out_writes_once_and_never_replaces(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    out = tmp_path / "retro.md"
    args = ("retro", "summarize", "--registry", str(registry), "--out", str(out), "--json")
    proc = run_cli(*args, "--title", "Softmax kernels", "--match", "softmax")
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.startswith("## Retrospective: Softmax kernels")
    assert json.loads(proc.stdout)["markdown"] == text
    out.write_text("my edits")
    assert_one_line_error(run_cli(*args), "already exists")
    assert out.read_text() == "my edits"


def test_missing_reports_folder_is_a_note_not_a_crash(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    os.rename(tmp_path / "reports" / "cuda", tmp_path / "elsewhere")
    data = json.loads(run_cli("retro", "collect", "--json", "--registry", str(registry)).stdout)
    assert "reports folder reports/cuda does not exist yet" in data["notes"]
    assert all(r["format"] == "experiment-log" for r in data["reports"])
