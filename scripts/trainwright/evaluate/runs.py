"""Where an evaluation's files go: a new numbered, dated folder per run, never reused.

`<project>/eval-runs/NNN-YYYY-MM-DD/` holds grid*.png, cells/, workflows/ and manifest.json.
The number is one more than the highest already there, so an earlier run is never written over.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any

from trainwright.state.atomic import atomic_write_text, locked

RUNS_DIR = "eval-runs"
_RUN = re.compile(r"^(\d{3,})-")


def slug(text: str, limit: int = 40) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return (s or "x")[:limit]


def new_run_dir(base: Path, today: _dt.date | None = None) -> tuple[str, Path]:
    """Create and return (run id, folder) for the next run under `base`."""
    date = (today or _dt.date.today()).isoformat()
    base.mkdir(parents=True, exist_ok=True)
    with locked(base):
        numbers = [int(m.group(1)) for p in base.iterdir() if (m := _RUN.match(p.name))]
        n = max(numbers, default=0) + 1
        while True:
            run_id = f"{n:03d}-{date}"
            path = base / run_id
            try:
                path.mkdir()
                return run_id, path
            except FileExistsError:
                n += 1


def write_manifest(folder: Path, data: dict[str, Any]) -> Path:
    path = folder / "manifest.json"
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")
    return path


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
