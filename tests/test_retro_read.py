"""Reports written by hand, as people write them: what `retro collect` structures, what it hands
the agent to read itself, and what the `retro summarize` scaffold no longer claims is absent.

The four reports under tests/data/retro/hand reproduce issue 16 §3: a prose ablation, a rank sweep
with a `Quirk:` line and a prose comparison, a notes file with a divergence, and a kernel table
whose first column is headed `Config`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import run_cli

HAND = Path(__file__).parent / "data" / "retro" / "hand"
PLACES = {
    "ablation-prose.md": "research",
    "notes.md": "research",
    "rank-sweep.md": "unsloth",
    "kernel-table.md": "cuda",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("proj")
    assert run_cli("init", cwd=root).returncode == 0
    for name, domain in PLACES.items():
        (root / "reports" / domain).mkdir(parents=True, exist_ok=True)
        shutil.copy(HAND / name, root / "reports" / domain / name)
    return root


def collect(project: Path, domain: str) -> dict[str, dict]:
    proc = run_cli("retro", "collect", "--json", "--domain", domain, cwd=project)
    assert proc.returncode == 0, proc.stderr
    return {Path(r["path"]).name: r for r in json.loads(proc.stdout)["reports"]}


def summary(project: Path, domain: str) -> str:
    proc = run_cli("retro", "summarize", "--domain", domain, cwd=project)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def passage_with(report: dict, words: str) -> dict:
    hits = [p for p in report["read_these_yourself"] if words in p["text"]]
    assert len(hits) == 1, report["read_these_yourself"]
    return hits[0]


def test_prose_ablation_is_read_and_handed_to_the_agent(project: Path) -> None:
    reports = collect(project, "research")
    ablation = reports["ablation-prose.md"]
    fixed = passage_with(ablation, "lr 1e-4, bs 32, 10 epochs")
    assert (fixed["start"], fixed["end"]) == (3, 4)
    results = passage_with(ablation, "92.4% accuracy")
    assert (results["start"], results["end"]) == (6, 8)
    text = summary(project, "research")
    assert "none recorded" not in text
    assert "No source records hyperparameters" not in text
    assert "`reports/research/ablation-prose.md` lines 3-4" in text
    assert "- nothing structured: read the passages of [1], [2]" in text


def test_rank_sweep_quirk_and_prose_comparison_are_not_lost(project: Path) -> None:
    sweep = collect(project, "unsloth")["rank-sweep.md"]
    assert sweep["quirks"] == [
        "the tokenizer has no pad token, so we set pad = eos before training."
    ]
    eight_bit = passage_with(sweep, "8-bit base instead of 4-bit: +6 GB, no gain")
    assert eight_bit["end"] == 14
    # `Rank 16 is the sweet spot: 32 buys ...` is a sentence, not the field lora_rank = "32 buys"
    assert "lora_rank" not in sweep["parameters"]
    passage_with(sweep, "Rank 16 is the sweet spot")
    assert [r["parameters"]["lora_rank"] for r in sweep["runs"]] == ["8", "16", "32"]
    text = summary(project, "unsloth")
    assert "No source records quirks" not in text
    assert "No source records quantization" not in text
    assert "Not structured in any source: quantization; the passages of [1]" in text


def test_notes_divergence_is_a_passage_and_failures_are_not_denied(project: Path) -> None:
    notes = collect(project, "research")["notes.md"]
    diverged = passage_with(notes, "lr 1e-4 too high there -> diverged around step 900")
    assert diverged["start"] <= 4 <= diverged["end"]
    failed = summary(project, "research").split("### What failed")[1].split("###")[0]
    assert "nothing recorded as failed" not in failed
    assert "read the passages of" in failed


def test_kernel_table_headed_config_is_read_as_runs_not_transposed(project: Path) -> None:
    table = collect(project, "cuda")["kernel-table.md"]
    runs = {r["label"]: r for r in table["runs"]}
    assert list(runs) == ["BLOCK=1024", "BLOCK=2048", "BLOCK=4096"]
    assert runs["BLOCK=4096"]["metrics"] == {
        "time": "0.356 ms",
        "bandwidth": "3,020 GB/s",
        "pct_peak": "90%",
    }
    assert runs["BLOCK=4096"]["parameters"]["block_size"] == "4096"
    assert "Highest bandwidth: 3,020 GB/s, BLOCK=4096 [1]" in summary(project, "cuda")


@pytest.mark.parametrize("head", ["Config", "Setting", "Variant", "Kernel", "Run"])
def test_a_run_key_first_column_labels_runs(tmp_path: Path, head: str) -> None:
    assert run_cli("init", cwd=tmp_path).returncode == 0
    report = tmp_path / "reports" / "cuda" / "t.md"
    report.parent.mkdir(parents=True)
    report.write_text(
        f"# t\n\n| {head} | time (ms) | notes |\n|---|---|---|\n"
        "| fused | 0.21 | one pass |\n| split | 0.35 | two passes |\n"
    )
    proc = run_cli("retro", "collect", "--json", "--domain", "cuda", "reports/cuda/t.md",
                   cwd=tmp_path)  # fmt: skip
    runs = json.loads(proc.stdout)["reports"][0]["runs"]
    assert [(r["label"], r["metrics"].get("time")) for r in runs] == [
        ("fused", "0.21 ms"),
        ("split", "0.35 ms"),
    ]


def test_a_transposed_parameter_table_still_reads_one_run_per_column(tmp_path: Path) -> None:
    assert run_cli("init", cwd=tmp_path).returncode == 0
    report = tmp_path / "reports" / "research" / "t.md"
    report.parent.mkdir(parents=True)
    report.write_text(
        "# t\n\n| Parameter | run A | run B |\n|---|---|---|\n"
        "| lr | 1e-4 | 2e-4 |\n| accuracy | 0.91 | 0.88 |\n"
    )
    proc = run_cli("retro", "collect", "--json", "reports/research/t.md", cwd=tmp_path)
    runs = json.loads(proc.stdout)["reports"][0]["runs"]
    assert [(r["label"], r["parameters"], r["metrics"]) for r in runs] == [
        ("run A", {"learning_rate": "1e-4"}, {"accuracy": "0.91"}),
        ("run B", {"learning_rate": "2e-4"}, {"accuracy": "0.88"}),
    ]
