"""Every skill passes the Agent Skills reference validator and points only at files that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

SKILL_DIRS = sorted(
    p.parent
    for root in (".claude/skills", ".codex/skills")
    for p in (REPO / root).glob("*/SKILL.md")
)
# Paths a skill body may name: Markdown links and `code` spans that look like repo paths.
LINK = re.compile(r"\]\(([^)#\s]+)\)")
CODE = re.compile(r"`([^`\s]+)`")
# Folders the commands create at run time in the user's project, not files the pack ships.
RUNTIME_PREFIXES = ("grimoire/training", "tickets/")
PATH_PREFIXES = (
    "resources/",
    "grimoire/",
    ".claude/",
    ".codex/",
    "references/",
    "scripts/",
    "templates/",
    "stages/",
    "shared/",
    "assets/",
)


def _validator() -> str:
    exe = shutil.which("agentskills", path=str(Path(sys.executable).parent)) or shutil.which(
        "agentskills"
    )
    assert exe, "agentskills (skills-ref) is not installed: pip install -e '.[test]'"
    return exe


def test_there_are_skills() -> None:
    assert SKILL_DIRS, "no skills found"


@pytest.mark.parametrize("skill", SKILL_DIRS, ids=lambda p: str(p.relative_to(REPO)))
def test_agentskills_validate(skill: Path) -> None:
    proc = subprocess.run([_validator(), "validate", str(skill)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def referenced_paths(text: str) -> list[str]:
    body = text.split("---", 2)[2] if text.startswith("---") else text
    found = LINK.findall(body) + [c for c in CODE.findall(body) if c.startswith(PATH_PREFIXES)]
    out = []
    for ref in found:
        if "://" in ref or ref.startswith("mailto:"):
            continue
        # Stop at the first placeholder: `grimoire/training/NAME/x.md` checks `grimoire/training`.
        parts = []
        for part in ref.split("/"):
            if re.search(r"[<>{}*]|^[A-Z]+$|\.\.\.", part):
                break
            parts.append(part)
        if parts and parts != [""]:
            out.append("/".join(parts).rstrip("/"))
    return out


@pytest.mark.parametrize("skill", SKILL_DIRS, ids=lambda p: str(p.relative_to(REPO)))
def test_skill_references_exist(skill: Path) -> None:
    text = (skill / "SKILL.md").read_text(encoding="utf-8")
    missing = [
        ref
        for ref in referenced_paths(text)
        if not ref.startswith(RUNTIME_PREFIXES)
        and not (skill / ref).exists()
        and not (REPO / ref).exists()
    ]
    assert not missing, f"{skill.name} names files that do not exist: {missing}"


def test_reference_check_catches_a_missing_file() -> None:
    refs = referenced_paths(
        "---\nname: x\n---\nsee [a](references/nope.md) and "
        "`resources/also-missing.yaml`, `grimoire/training/<name>/x.md`"
    )
    assert refs == ["references/nope.md", "resources/also-missing.yaml", "grimoire/training"]


def test_plugin_manifest_paths_exist() -> None:
    import json

    data = json.loads((REPO / ".claude-plugin" / "plugin.json").read_text())
    assert data["name"] == "trainwright"
    for key in ("commands", "skills", "agents", "hooks"):
        if isinstance(data.get(key), str):
            assert (REPO / data[key]).exists(), key
