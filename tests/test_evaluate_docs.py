"""The evaluation docs point at files and commands that exist, and agree with the data."""

from __future__ import annotations

import re

import pytest
import yaml

from helpers import REPO
from test_skills import referenced_paths
from trainwright.cli import cli

EVAL_PHASE = REPO / ".claude" / "skills" / "train" / "references" / "eval-phase.md"
DOCS = [
    EVAL_PHASE,
    REPO / "resources" / "evaluation" / "eval-methodology.md",
    REPO / "resources" / "evaluation" / "strength-guide.md",
]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_paths_named_in_the_docs_exist(doc) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = [
        ref
        for ref in referenced_paths(text)
        if not ref.startswith(("grimoire/training", "references/"))
        and not (doc.parent / ref).exists()
        and not (REPO / ref).exists()
    ]
    assert not missing, missing


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_commands_named_in_the_docs_exist(doc) -> None:
    text = doc.read_text(encoding="utf-8")
    names = set(re.findall(r"(?:`|^\s*)trainwright ([a-z][a-z-]+)", text, flags=re.M))
    assert names, doc
    assert names <= set(cli.commands), names - set(cli.commands)


def test_methodology_lists_the_prompt_labels_of_the_data() -> None:
    data = yaml.safe_load((REPO / "resources/evaluation/test-prompts.yaml").read_text())
    text = (REPO / "resources/evaluation/eval-methodology.md").read_text()
    for kind, prompts in data["types"].items():
        row = next(ln for ln in text.splitlines() if ln.startswith(f"| {kind} |"))
        assert [p["label"] for p in prompts] == [s.strip() for s in row.split("|")[2].split(",")], (
            kind
        )


def test_failure_modes_prose_and_data_list_the_same_symptoms() -> None:
    data = yaml.safe_load((REPO / "resources/training/failure-modes.yaml").read_text())
    prose = (REPO / "resources/training/failure-modes.md").read_text(encoding="utf-8")
    headed = set(re.findall(r"^### ([a-z0-9-]+)\s*$", prose, flags=re.M))
    assert headed == {m["id"] for m in data["symptoms"]}
