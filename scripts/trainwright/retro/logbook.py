"""`retro log`: append the dated retrospective entry to the experiment log, keeping all else."""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any

from trainwright.errors import TrainwrightError
from trainwright.retro.markdown import ATX
from trainwright.retro.registry import Registry
from trainwright.state.atomic import atomic_write_text, locked
from trainwright.state.document import format_value


def entry_level(text: str) -> int:
    levels = [len(m.group(1)) for line in text.split("\n") if (m := ATX.match(line))]
    levels = [lv for lv in levels if lv >= 2]
    return min(levels) if levels else 2


def shift_headings(summary: str, level: int) -> str:
    """Drop the summary's own title line and nest its `###` sections under the log entry."""
    lines = summary.strip("\n").split("\n")
    if lines and lines[0].startswith("## Retrospective"):
        lines = lines[1:]
    out = []
    for line in lines:
        m = ATX.match(line)
        if m:
            depth = min(len(m.group(1)) - 3 + level + 1, 6)
            line = "#" * max(depth, level + 1) + " " + m.group(2)
        out.append(line)
    return "\n".join(out).strip("\n")


def append_entry(
    reg: Registry,
    title: str,
    description: str,
    *,
    date: _dt.date | None = None,
    summary: str | None = None,
    sources: list[str] | None = None,
    skills: list[str] | None = None,
) -> dict[str, Any]:
    title, description = " ".join(title.split()), " ".join(description.split())
    if not title:
        raise TrainwrightError("the log entry needs a title")
    if not description:
        raise TrainwrightError("the log entry needs --description (a one-line general description)")
    date = date or _dt.date.today()
    path = reg.resolve("experiment_log")
    rel = reg.rel(path)
    fields = {
        "Kind": "retrospective",
        "General description": description,
        "Domain": reg.domain,
        "Sources": ", ".join(sources or []),
        "Proposed skills": ", ".join(skills or []),
    }
    with locked(reg.root / ".trainwright"):
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        if path.exists() and not path.is_file():
            raise TrainwrightError(f"{rel} is not a file")
        level = entry_level(old)
        heading = f"{'#' * level} {date.isoformat()} – {title}"
        if re.search(rf"^{re.escape(heading)}\s*$", old, flags=re.M):
            return {"log": rel, "heading": heading, "status": "exists", "written": False}
        body = [heading]
        body += [f"- **{k}**: {format_value(v)}" for k, v in fields.items() if v]
        if summary:
            body += ["", shift_headings(summary, level)]
        base = old if old.strip() else "# Experiment log\n"
        text = base.rstrip("\n") + "\n\n" + "\n".join(body) + "\n"
        atomic_write_text(path, text)
    return {"log": rel, "heading": heading, "status": "appended", "written": True}


def read_summary(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as exc:
        raise TrainwrightError(f"{path}: cannot read the summary ({exc})") from None
    if not text.strip():
        raise TrainwrightError(f"{path}: the summary is empty")
    return text
