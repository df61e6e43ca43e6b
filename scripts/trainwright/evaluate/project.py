"""What evaluation and registration read from a project's state files, tolerating absent ones."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from trainwright import pack
from trainwright.errors import StateFileError, TrainwrightError
from trainwright.state.grimoire import Grimoire


@dataclass
class ProjectFacts:
    name: str
    lora_type: str | None = None
    trigger: str | None = None
    base_model: str | None = None
    description: str | None = None
    preset: str | None = None
    key_parameters: str | None = None
    checkpoints: str | None = None
    anomalies: str = ""


def require_project(g: Grimoire, name: str) -> None:
    folder = g.project_dir(name)
    if not folder.is_dir():
        known = ", ".join(g.projects()) or "none yet"
        raise TrainwrightError(
            f"no training project '{name}' in {g.root} (projects: {known}); "
            f"start one with: trainwright grimoire new {name}"
        )


def top_fields(g: Grimoire, kind: str, name: str | None) -> dict[str, Any]:
    """The fields under a state file's title; {} when the file does not exist."""
    path = g.path_for(kind, name)
    if not path.exists():
        return {}
    _, data = g.read(kind, name)
    return data["sections"].get("", {})


def section_text(g: Grimoire, kind: str, name: str, heading: str) -> str:
    """The raw text under a `##` heading (fields and prose), up to the next heading."""
    path = g.path_for(kind, name)
    if not path.exists():
        return ""
    doc, _ = g.read(kind, name)
    sec = doc.sections.get(heading)
    if sec is None:
        return ""
    later = [s.line for s in doc.sections.values() if s.line > sec.line]
    end = min(later) - 1 if later else len(doc.lines)
    return "\n".join(doc.lines[sec.line : end])


def read_facts(g: Grimoire, name: str) -> ProjectFacts:
    intent = top_fields(g, "intent", name)
    config = top_fields(g, "config", name)
    progress = top_fields(g, "progress", name)
    return ProjectFacts(
        name=name,
        lora_type=intent.get("Type"),
        trigger=intent.get("Trigger word"),
        base_model=intent.get("Base model") or config.get("Base model"),
        description=intent.get("Description"),
        preset=config.get("Preset"),
        key_parameters=config.get("Key parameters"),
        checkpoints=progress.get("Checkpoints"),
        anomalies=_written_lines(
            section_text(g, "progress", name, "Anomalies"),
            "grimoire/templates/training/progress.md",
        ),
    )


def _written_lines(text: str, template: str) -> str:
    """`text` without the lines the template already had (its explanatory prose)."""
    try:
        stock = {ln.strip() for ln in pack.read_text(template).splitlines() if ln.strip()}
    except TrainwrightError:
        stock = set()
    return "\n".join(ln for ln in text.splitlines() if ln.strip() not in stock)


def model_family(g: Grimoire, model: str | None) -> str | None:
    """studio.md's Family for `### Model: <model>` (by entry name or file name), if recorded."""
    path = g.path_for("studio")
    if not model or not path.exists():
        return None
    try:
        _, data = g.read("studio")
    except StateFileError:
        return None
    for title, fields in data["sections"].items():
        if not title.startswith("Model: "):
            continue
        entry = title.removeprefix("Model: ").strip()
        file = str(fields.get("File") or "")
        if model in (entry, file) or (file and file.rsplit("/", 1)[-1] == model):
            return fields.get("Family")
    return None


def parse_key_parameters(text: str | None) -> dict[str, str]:
    """'lr=1e-4, epochs=15, batch=2, rank=16' -> {'lr': '1e-4', 'epochs': '15', ...}."""
    out: dict[str, str] = {}
    for key, value in re.findall(r"([A-Za-z_]+)\s*[=:]\s*([^,;\s]+)", text or ""):
        out[key.lower()] = value
    return out
