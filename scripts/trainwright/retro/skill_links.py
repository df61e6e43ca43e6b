"""Result skills where both agents find them.

`retro apply` writes a result skill under `paths.skills` (`.codex/skills` by default), which
neither Claude Code (`.claude/skills`) nor current Codex (`.agents/skills`) reads. Each result
skill gets a relative symlink in those two folders; an entry that is already there (a person's
own skill of that name) is never touched. A result skill may not take a pack skill's name.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from trainwright.errors import TrainwrightError

AGENT_DIRS = (Path(".claude") / "skills", Path(".agents") / "skills")
DEFAULT_SKILLS = Path(".codex") / "skills"


@functools.cache
def pack_skill_names() -> frozenset[str]:
    """The names of the skills the pack ships (for both agents)."""
    from trainwright import pack

    root = pack.pack_root()
    names = set()
    for base in (Path(".claude") / "skills", DEFAULT_SKILLS):
        folder = root / base
        if folder.is_dir():
            names |= {p.name for p in folder.iterdir() if (p / "SKILL.md").is_file()}
    return frozenset(names)


def refuse_pack_name(name: str) -> None:
    if name in pack_skill_names():
        raise TrainwrightError(
            f"result skill name {name!r} is a trainwright pack skill; choose another name "
            "(the pack's skill is never replaced)"
        )


def result_skills(root: Path, skills_dir: Path) -> list[Path]:
    """Skill folders under `skills_dir` that are not pack skills, sorted by name."""
    if not skills_dir.is_dir():
        return []
    return sorted(
        p
        for p in skills_dir.iterdir()
        if p.is_dir() and (p / "SKILL.md").is_file() and p.name not in pack_skill_names()
    )


def _points_to(link: Path, skill: Path) -> bool:
    try:
        return link.resolve() == skill.resolve()
    except (OSError, RuntimeError):
        return False


def link(root: Path, skill: Path, dry_run: bool = False) -> list[str]:
    """Link one skill folder into each agent folder that lacks it; the links made, relative."""
    made = []
    for base in AGENT_DIRS:
        entry = root / base / skill.name
        if entry.exists() or entry.is_symlink():
            continue
        made.append((base / skill.name).as_posix())
        if not dry_run:
            entry.parent.mkdir(parents=True, exist_ok=True)
            entry.symlink_to(os.path.relpath(skill, entry.parent))
    return made


def where(root: Path, skill: Path) -> dict[str, str]:
    """For each agent folder: 'linked', 'missing' or 'another skill' (a folder of that name)."""
    out = {}
    for base in AGENT_DIRS:
        entry = root / base / skill.name
        if _points_to(entry, skill):
            out[base.as_posix()] = "linked"
        elif entry.exists() or entry.is_symlink():
            out[base.as_posix()] = "another skill"
        else:
            out[base.as_posix()] = "missing"
    return out


def skills_dir_of(root: Path) -> Path:
    """`paths.skills` of the project's registry; the default when it cannot be read."""
    from trainwright.retro import registry as regmod

    path = root / regmod.REGISTRY_REL
    if path.is_file():
        try:
            return regmod.load(path).resolve("skills")
        except TrainwrightError:
            pass
    return root / DEFAULT_SKILLS


def link_all(root: Path, dry_run: bool = False) -> list[str]:
    """Link every result skill of the project at `root` (what `init` runs on each install)."""
    root = root.resolve() if root.exists() else root
    made: list[str] = []
    for skill in result_skills(root, skills_dir_of(root)):
        made += link(root, skill, dry_run)
    return made
