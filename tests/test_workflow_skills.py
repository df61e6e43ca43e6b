"""The two staged-workflow skills: the files the seeds name, domain content in the right stage,
commands that exist with the flags they show, and Codex discovery without copies."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from helpers import REPO
from trainwright.workflow.commands import ticket_group
from trainwright.workflow.stages import skills, stages_for

SKILLS = REPO / ".claude" / "skills"

# The files each stage folder must hold, as the seeds' skill layouts name them.
SEED_FILES = {
    "llm-fine-tuning": {
        "00-bootstrap": ["README.md", "bootstrap-checklist.md"],
        "01-investigation": [
            "README.md",
            "investigation-guide.md",
            "investigation-notes-template.md",
        ],
        "02-requirements-and-success-criteria": [
            "README.md",
            "requirements-success-criteria-guide.md",
        ],
        "03-implementation-plan": ["README.md", "implementation-plan-template.md"],
        "04-implementation": ["README.md", "implementation-template.md"],
        "05-training-and-validation": [
            "README.md",
            "training-validation-guide.md",
            "training-validation-template.md",
        ],
        "06-code-review": ["README.md", "code-review-guide.md", "code-review-template.md"],
        "07-docs-sync": ["README.md", "docs-sync-guide.md", "docs-sync-template.md"],
        "08-handoff": ["README.md", "handoff-guide.md", "handoff-summary-template.md"],
    }
}
SEED_FILES["deep-learning-experiment"] = {
    **SEED_FILES["llm-fine-tuning"],
    "03-experiment-plan": ["README.md", "experiment-plan-template.md"],
    "05-training-validation": SEED_FILES["llm-fine-tuning"]["05-training-and-validation"],
}
del SEED_FILES["deep-learning-experiment"]["03-implementation-plan"]
del SEED_FILES["deep-learning-experiment"]["05-training-and-validation"]

# Domain points and the stage files that must carry them.
DOMAIN = {
    "llm-fine-tuning": {
        "stages/03-implementation-plan/implementation-plan-template.md": [
            "chat template",
            "special tokens",
            "masking",
            "packing",
            "preference pairs",
            "tokenizer",
        ],
        "stages/06-code-review/code-review-guide.md": [
            "chat template",
            "special tokens",
            "label masking",
            "packing",
            "preference",
            "leakage",
        ],
        "stages/01-investigation/investigation-guide.md": ["tokenizer", "eos", "template"],
        "stages/04-implementation/README.md": ["data preparation", "manifest", "eos"],
    },
    "deep-learning-experiment": {
        "stages/06-code-review/code-review-guide.md": [
            "train/eval mode",
            "metric correctness",
            "numerical stability",
            "leakage",
            "label and mask alignment",
        ],
        "stages/04-implementation/README.md": ["eval mode", "nan", "overfit"],
        "stages/03-experiment-plan/experiment-plan-template.md": ["hypothesis", "ablations"],
        "stages/05-training-validation/training-validation-guide.md": ["seeds", "eval mode"],
    },
}


@pytest.mark.parametrize("skill", skills())
def test_stage_folders_hold_the_seed_files(skill: str) -> None:
    root = SKILLS / skill
    assert (root / "SKILL.md").is_file() and (root / "shared/workflow-state-template.md").is_file()
    folders = sorted(p.name for p in (root / "stages").iterdir())
    assert folders == sorted(SEED_FILES[skill])
    for folder, names in SEED_FILES[skill].items():
        for name in names:
            path = root / "stages" / folder / name
            assert path.is_file() and path.read_text().strip(), path


@pytest.mark.parametrize("skill", skills())
def test_stage_data_points_at_real_templates(skill: str) -> None:
    for st in stages_for(skill):
        assert (SKILLS / skill / "stages" / st.folder / "README.md").is_file()
        if st.template:
            assert (SKILLS / skill / "stages" / st.folder / st.template).is_file(), st


@pytest.mark.parametrize("skill", skills())
def test_domain_content_sits_in_the_right_stage(skill: str) -> None:
    for rel, words in DOMAIN[skill].items():
        text = (SKILLS / skill / rel).read_text().lower()
        missing = [w for w in words if w not in text]
        assert not missing, (rel, missing)


def test_llm_specifics_do_not_leak_into_the_deep_learning_review() -> None:
    text = SKILLS / "deep-learning-experiment/stages/06-code-review/code-review-guide.md"
    assert "chat template" not in text.read_text().lower()


@pytest.mark.parametrize("skill", skills())
def test_skill_router_is_short_and_names_every_stage(skill: str) -> None:
    text = (SKILLS / skill / "SKILL.md").read_text()
    assert len(text.splitlines()) < 150
    for st in stages_for(skill):
        assert f"stages/{st.folder}/README.md" in text


COMMAND = re.compile(r"`(trainwright ticket [^`]+)`")


@pytest.mark.parametrize("skill", skills())
def test_every_ticket_command_a_skill_shows_exists_with_its_flags(skill: str) -> None:
    texts = [p.read_text() for p in (SKILLS / skill).rglob("*.md")]
    shown = {m for t in texts for m in COMMAND.findall(t)}
    assert len(shown) > 5
    for line in shown:
        words = line.split()
        if words[2] == "...":
            continue
        for name in words[2].split("|"):
            cmd = ticket_group.commands.get(name)
            assert cmd is not None, line
            known = {o for p in cmd.params if isinstance(p, click.Option) for o in p.opts}
            for flag in (w.split("=")[0] for w in words[3:] if w.startswith("--")):
                assert flag in known, (line, flag)


@pytest.mark.parametrize("skill", skills())
def test_codex_finds_the_skill_through_a_link_not_a_copy(skill: str) -> None:
    link = REPO / ".agents" / "skills" / skill
    assert link.is_symlink()
    assert link.resolve() == (SKILLS / skill).resolve()
    assert not link.readlink().is_absolute()
    assert f".claude/skills/{skill}/SKILL.md" in (REPO / "AGENTS.md").read_text()


def test_lock_rule_data_names_the_files_the_hook_protects() -> None:
    text = (REPO / "scripts/trainwright/workflow/edit_lock.yaml").read_text()
    for needle in ("tickets/*/*/workflow-state.md", ".claude/settings.json", ".codex/hooks.json"):
        assert needle in text
    assert Path(REPO / ".claude/hooks/edit-lock.sh").is_file()
