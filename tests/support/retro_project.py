"""A throw-away project for the retrospective tests: the pack's registry and templates, and the
fixture report sets of tests/data/retro copied under reports/<domain>/ with one log per domain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "retro"
DOMAINS = ("research", "unsloth", "cuda")
TEMPLATES = ".codex/skills/domain-retrospective/templates"


def make_project(root: Path, domain: str = "research") -> Path:
    """Build the project at `root` with `domain` active; return the registry path."""
    skills = root / ".codex" / "skills"
    skills.mkdir(parents=True)
    data = json.loads((REPO / ".codex" / "skills" / "registry.json").read_text())
    for name in DOMAINS:
        shutil.copytree(DATA / name / "reports", root / "reports" / name)
        (root / "docs").mkdir(exist_ok=True)
        shutil.copy(DATA / name / "experiment-log.md", root / "docs" / f"{name}-log.md")
        data["domains"][name]["paths"]["experiment_log"] = f"docs/{name}-log.md"
    shutil.copytree(REPO / TEMPLATES, root / TEMPLATES)
    data["domain"] = domain
    data["paths"].update(data["domains"][domain]["paths"])
    registry = skills / "registry.json"
    registry.write_text(json.dumps(data, indent=2) + "\n")
    return registry


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` and its bytes, to prove that a command wrote nothing."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }
