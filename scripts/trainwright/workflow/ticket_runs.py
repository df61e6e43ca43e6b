"""Which experiments (folders with a runs_plan.md) belong to a ticket, and how their runs stand.

A plan names its ticket in its header (`- **Ticket**: NAME`), written by `trainwright runs plan
--ticket NAME`, or by `runs plan` alone when exactly one ticket is active. `ticket status` reads
the link back by looking for plans in the project and in the ticket's worktree. The search is
bounded (hidden folders, virtual environments and the pack's own state folders are skipped), so a
large checkout does not slow the status down.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from trainwright.errors import TrainwrightError
from trainwright.workflow.edit_lock import EXPERIMENT_MARK as PLAN_NAME

TICKET_LINE = re.compile(r"^- \*\*Ticket\*\*:[ \t]*(\S+)[ \t]*$", re.M)
SKIP = {"node_modules", "venv", "__pycache__", "tickets", "grimoire", "site-packages"}
MAX_DEPTH = 5
MAX_FOLDERS = 5000


def plan_ticket(plan: Path) -> str | None:
    """The ticket a runs_plan.md names, if any (unreadable plans name none)."""
    try:
        text = plan.read_text(encoding="utf-8", errors="replace")[:20000]
    except OSError:
        return None
    m = TICKET_LINE.search(text)
    return m.group(1) if m else None


def find_plans(root: Path) -> list[Path]:
    """Every runs_plan.md under `root`, at most MAX_DEPTH folders down."""
    found: list[Path] = []
    seen = 0
    base = len(root.parts)
    for folder, dirs, files in os.walk(root, followlinks=False):
        seen += 1
        if seen > MAX_FOLDERS:
            break
        here = Path(folder)
        if PLAN_NAME in files:
            found.append(here / PLAN_NAME)
        if len(here.parts) - base >= MAX_DEPTH:
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP)
    return found


def experiments_of(ticket: str, roots: list[Path]) -> list[Path]:
    """The experiment folders whose plan names `ticket`, each once."""
    out: list[Path] = []
    for root in roots:
        if not root.is_dir():
            continue
        for plan in find_plans(root):
            folder = plan.parent.resolve()
            if folder not in out and plan_ticket(plan) == ticket:
                out.append(folder)
    return out


def runs_of(experiment: Path) -> list[dict[str, Any]]:
    """Each run's state from runs_status.yaml; a damaged file is one entry saying so."""
    from trainwright.cluster.status import read_status

    try:
        data = read_status(experiment)
    except TrainwrightError as exc:
        return [{"run": None, "state": "UNREADABLE", "problem": str(exc)}]
    out = []
    for name, entry in (data.get("runs") or {}).items():
        entry = entry if isinstance(entry, dict) else {}
        out.append(
            {
                "run": str(name),
                "state": str(entry.get("state", "?")),
                "job_id": entry.get("job_id"),
            }
        )
    return out


def linked(ticket: str, home: Path, worktree: str | None) -> list[dict[str, Any]]:
    """`ticket status`'s experiments: folder, and its runs with their states."""
    roots = [home] + ([Path(worktree)] if worktree else [])
    return [
        {"experiment": str(folder), "runs": runs_of(folder)}
        for folder in experiments_of(ticket, roots)
    ]


def single_active(start: Path) -> str | None:
    """The one active ticket of the project holding `start`, or None (no project, none, or
    several: then the person names it)."""
    from trainwright.workflow import tickets

    try:
        home = tickets.project_home(start)
    except TrainwrightError:
        return None
    active = tickets.list_tickets(home)
    return active[0].name if len(active) == 1 else None
