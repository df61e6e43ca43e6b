"""The `## Cloud instances` part of grimoire/studio.md: one `### Instance: PROVIDER-ID` entry per
instance `cloud up` started (project, provider, id, GPU, price, started, deadline, status).

Only this part is written here; the GPUs, Models and LoRAs parts belong to other commands.
No API key is ever written.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

from trainwright.clock import parse_iso_utc
from trainwright.state.atomic import atomic_write_text, locked
from trainwright.state.document import Document, format_value, parse_document, read_document
from trainwright.state.document import set_fields as _set_fields
from trainwright.state.grimoire import Grimoire
from trainwright.state.schema import validate_document

SECTION = "Cloud instances"
PREFIX = "Instance: "
INTRO = (
    "Rented GPUs started by `trainwright cloud up`, one `### Instance:` entry each; "
    "`trainwright cloud down` marks them TERMINATED with the total cost."
)


def parse_stamp(text: Any) -> _dt.datetime | None:
    try:
        return parse_iso_utc(str(text))
    except ValueError:
        return None


@dataclass
class Record:
    title: str
    fields: dict[str, Any]

    @property
    def provider(self) -> str:
        return str(self.fields.get("Provider") or "").strip().lower()

    @property
    def id(self) -> str:
        value = self.fields.get("ID")
        return "" if value is None else str(value).strip()

    @property
    def project(self) -> str:
        return str(self.fields.get("Project") or "").strip()

    @property
    def running(self) -> bool:
        return str(self.fields.get("Status") or "").upper() == "RUNNING"

    def as_dict(self) -> dict[str, Any]:
        return {"entry": self.title, **self.fields}


def title_for(provider: str, instance_id: str) -> str:
    return f"{PREFIX}{provider}-{instance_id}"


def read(g: Grimoire) -> list[Record]:
    path = g.path_for("studio")
    if not path.exists():
        return []
    _, data = g.read("studio")
    return [
        Record(title, dict(fields))
        for title, fields in data["sections"].items()
        if title.startswith(PREFIX)
    ]


def _with_entry(doc: Document, title: str, fields: dict[str, object]) -> Document:
    lines = list(doc.lines)
    if SECTION not in doc.sections:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", f"## {SECTION}", INTRO]
        doc = parse_document("\n".join(lines) + "\n", doc.path)
        lines = list(doc.lines)
    part = doc.sections[SECTION]
    after = [s.line for s in doc.sections.values() if s.line > part.line and s.level <= 2]
    end = (min(after) - 1) if after else len(lines)
    while end > part.line and not lines[end - 1].strip():
        end -= 1
    block = ["", f"### {title}"] + [
        f"- **{k}**: {format_value(v)}".rstrip() for k, v in fields.items()
    ]
    if end < len(lines) and lines[end].strip():
        block.append("")
    lines[end:end] = block
    return parse_document("\n".join(lines) + "\n", doc.path)


def _write(g: Grimoire, change: Any) -> None:
    g.ensure_base()
    path = g.path_for("studio")
    with locked(path.parent):
        doc = read_document(path)
        validate_document(doc, "studio")
        new = change(doc)
        validate_document(new, "studio")
        atomic_write_text(path, new.text())


def add(g: Grimoire, title: str, fields: dict[str, object]) -> None:
    _write(g, lambda doc: _with_entry(doc, title, fields))


def update(g: Grimoire, title: str, fields: dict[str, object]) -> None:
    _write(g, lambda doc: _set_fields(doc, {title: fields}))
