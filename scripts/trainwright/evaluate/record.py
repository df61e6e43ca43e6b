"""Write an evaluation's facts into the project's eval.md; the judgement stays the agent's.

The tool fills what it knows (run, grid, checkpoints, prompts, weights, seed, LoRA file). The
sweet spot, recommended weight, quality notes and per-weight notes are for the agent (with the
person) to fill after looking at the grid. A new run describes a new grid, so those judgement
fields are cleared; before that, the eval.md as it stood is copied into the earlier run's folder
(or the new one, when the earlier run has no folder), so no earlier evaluation is lost.
"""

from __future__ import annotations

import filecmp
from pathlib import Path
from typing import Any

from trainwright import pack
from trainwright.evaluate.grid_run import EvalRun
from trainwright.evaluate.prompts import weight_label
from trainwright.evaluate.runs import RUNS_DIR
from trainwright.state.atomic import atomic_write_text, locked
from trainwright.state.document import parse_document, read_document, set_fields
from trainwright.state.grimoire import Grimoire
from trainwright.state.schema import validate_document

JUDGEMENT = ("Sweet spot", "Recommended weight", "Quality at sweet spot", "Issues at high weight")
NOTES = "Notes per weight"


def _describe_prompts(run: EvalRun) -> str:
    prompts = run.request.prompts
    standard = sum(p.standard for p in prompts)
    custom = len(prompts) - standard
    parts = []
    if standard:
        parts.append(f"{standard} standard")
    if custom:
        parts.append(f"{custom} custom")
    labels = ", ".join(p.label for p in prompts)
    return f"{' + '.join(parts)} ({labels})"


def _snapshot(path: Path, project_dir: Path, earlier: str | None, run: EvalRun) -> Path:
    """Copy eval.md as it stands next to the run it described; never over another copy."""
    folder = project_dir / RUNS_DIR / earlier if earlier else None
    if folder is None or not folder.is_dir():
        folder = run.folder
        stem = "previous-eval"
    else:
        stem = "eval"
    target = folder / f"{stem}.md"
    n = 2
    while target.exists():
        if filecmp.cmp(target, path, shallow=False):
            return target
        target = folder / f"{stem}-{n}.md"
        n += 1
    atomic_write_text(target, path.read_text(encoding="utf-8"))
    return target


def record_run(g: Grimoire, project: str, run: EvalRun) -> dict[str, Any]:
    """Update grimoire/training/<project>/eval.md for `run`; return what was written where."""
    path = g.path_for("eval", project)
    folder = g.project_dir(project)
    snapshot: Path | None = None
    with locked(folder):
        if not path.exists():
            text = pack.read_text("grimoire/templates/training/eval.md").replace("{name}", project)
            validate_document(parse_document(text, path), "eval")
            atomic_write_text(path, text)
        doc = read_document(path)
        data = validate_document(doc, "eval")
        top = data["sections"].get("", {})
        notes = data["sections"].get(NOTES, {})
        if any(v not in (None, "", []) for v in top.values()) or any(notes.values()):
            snapshot = _snapshot(path, folder, top.get("Eval run"), run)
        req = run.request
        labels = [c.label for c in req.checkpoints]
        checkpoint = labels[0] if len(labels) == 1 else ", ".join(labels) + " (compared)"
        facts: dict[str, object] = {k: None for k in JUDGEMENT}
        facts.update(
            {
                "Checkpoint used": checkpoint,
                "Test prompts": _describe_prompts(run),
                "Grid": ", ".join(f"{RUNS_DIR}/{run.run_id}/{p}" for p in run.grids) or None,
                "Eval run": run.run_id,
                "Generator": run.generator,
                "LoRA file": str(req.checkpoints[-1].lora.path.resolve()),
                "LoRA sha256": req.checkpoints[-1].lora.sha256,
                "Base model": req.base_model,
                "Weights": [weight_label(w) for w in req.weights],
                "Seed": req.seed,
                "Cells": f"{run.made} of {len(run.cells)}",
                "Partial": run.status in ("partial", "failed"),
            }
        )
        note_updates: dict[str, object] = {k: None for k in notes}
        note_updates.update({weight_label(w): None for w in req.weights})
        new = set_fields(doc, {"": facts, NOTES: note_updates})
        validate_document(new, "eval")
        atomic_write_text(path, new.text())
    return {"eval_md": str(path), "snapshot": str(snapshot) if snapshot else None}
