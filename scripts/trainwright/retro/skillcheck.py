"""Check a generated SKILL.md the way the Agent Skills validators do, before anything is written."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import yaml

NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
ALLOWED = {"name", "description", "license", "allowed-tools", "metadata", "compatibility"}


def problems(text: str, folder_name: str) -> list[str]:
    out: list[str] = []
    if not text.startswith("---\n") or "\n---" not in text[4:]:
        return ["SKILL.md must start with a --- frontmatter block"]
    front = text[4 : text.index("\n---", 4)]
    try:
        meta = yaml.safe_load(front)
    except yaml.YAMLError as exc:
        return [f"frontmatter is not valid YAML: {exc}".splitlines()[0]]
    if not isinstance(meta, dict):
        return ["frontmatter must be a mapping"]
    extra = set(meta) - ALLOWED
    if extra:
        out.append(f"frontmatter keys not allowed: {', '.join(sorted(extra))}")
    name = meta.get("name")
    if not isinstance(name, str) or not NAME.match(name) or len(name) > 64:
        out.append(f"name {name!r} must be 1-64 lowercase letters, digits and single hyphens")
    elif name != folder_name:
        out.append(f"name {name!r} must equal its folder name {folder_name!r}")
    desc = meta.get("description")
    if not isinstance(desc, str) or not desc.strip() or len(desc) > 1024:
        out.append("description must be 1-1024 characters")
    elif "<" in desc or ">" in desc:
        out.append("description must not contain < or >")
    md = meta.get("metadata", {})
    if not isinstance(md, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in md.items()
    ):
        out.append("metadata must map strings to strings (put lists in one comma-separated string)")
    out += _reference_validator(text, folder_name)
    return out


def _reference_validator(text: str, folder_name: str) -> list[str]:
    """The skills-ref package's own check (strictyaml), when it is installed."""
    try:
        from skills_ref.validator import validate
    except ImportError:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / folder_name
        folder.mkdir()
        (folder / "SKILL.md").write_text(text, encoding="utf-8")
        return [str(p) for p in validate(folder)]
