"""`retro log`: the dated entry lands at the end of the experiment log; nothing else changes."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import assert_one_line_error, run_cli
from support.retro_project import make_project


def test_log_appends_a_dated_entry_with_its_description(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "unsloth")
    log = tmp_path / "docs" / "unsloth-log.md"
    before = log.read_text()
    summary = tmp_path / "retro.md"
    proc = run_cli("retro", "summarize", "--registry", str(registry), "--out", str(summary))
    assert proc.returncode == 0, proc.stderr
    args = ["retro", "log", "Retrospective on LoRA rank experiments", "--registry", str(registry)]
    args += ["--description", "ranks 8-64 on Llama-3 8B and Mistral 7B", "--date", "2025-02-28"]
    args += ["--summary", str(summary), "--skill", "llama3-lora-recipe", "--json"]
    proc = run_cli(*args, "--source", "reports/unsloth/llama3-8b-lora-ranks.md")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "appended"
    text = log.read_text()
    assert text.startswith(before.rstrip("\n"))  # everything that was there is kept, in place
    entry = text[len(before.rstrip("\n")) :]
    assert entry.startswith("\n\n### 2025-02-28 – Retrospective on LoRA rank experiments\n")
    assert "- **General description**: ranks 8-64 on Llama-3 8B and Mistral 7B\n" in entry
    assert "- **Kind**: retrospective\n" in entry and "- **Domain**: unsloth\n" in entry
    assert "- **Proposed skills**: llama3-lora-recipe\n" in entry
    assert "#### What we tried" in entry and "## Retrospective" not in entry
    # Logged twice: written once.
    again = json.loads(run_cli(*args).stdout)
    assert again["status"] == "exists" and log.read_text() == text
    # Later retrospectives do not read their own entries back as experiments.
    data = json.loads(run_cli("retro", "collect", "--json", "--registry", str(registry)).stdout)
    assert not any("Retrospective on" in r["title"] for r in data["reports"])


def test_log_creates_the_log_when_missing(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    log = tmp_path / "docs" / "cuda-log.md"
    log.unlink()
    proc = run_cli(
        "retro", "log", "Softmax month", "--description", "block sizes on H100",
        "--date", "2025-03-31", "--registry", str(registry),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert log.read_text() == (
        "# Experiment log\n\n## 2025-03-31 – Softmax month\n- **Kind**: retrospective\n"
        "- **General description**: block sizes on H100\n- **Domain**: cuda\n"
    )


def test_log_bad_input(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    log = tmp_path / "docs" / "cuda-log.md"
    before = log.read_text()
    base = ("retro", "log", "T", "--registry", str(registry))
    assert_one_line_error(run_cli(*base, "--description", " "), "--description")
    assert_one_line_error(run_cli(*base, "--description", "d", "--date", "31/03/2025"), "--date")
    assert_one_line_error(
        run_cli(*base, "--description", "d", "--summary", str(tmp_path / "none.md")), "none.md"
    )
    assert_one_line_error(run_cli(*base[:2], "", "--description", "d", *base[3:]), "title")
    assert log.read_text() == before
