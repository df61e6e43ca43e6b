"""Register a finished LoRA: its `### LoRA: <name>` entry in studio.md, status COMPLETE, and
a copy of its evaluation images in grimoire/training/<name>/eval/<run>/.

Idempotent: running it again with the same results changes nothing; a changed result (a new
weight, a new file) updates only the lines that differ and keeps any notes written under the entry.
"""

from __future__ import annotations

import datetime as _dt
import filecmp
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwright import pack
from trainwright.errors import TrainwrightError
from trainwright.evaluate.lora_file import inspect_lora
from trainwright.evaluate.project import parse_key_parameters, read_facts, top_fields
from trainwright.evaluate.prompts import MAX_WEIGHT
from trainwright.evaluate.runs import RUNS_DIR, read_manifest
from trainwright.evaluate.studio_loras import PREFIX
from trainwright.state.atomic import atomic_write_bytes, atomic_write_text, locked
from trainwright.state.document import Document, format_value, parse_document, set_fields
from trainwright.state.grimoire import Grimoire
from trainwright.state.schema import validate_document

ARCHIVE_DIR = "eval"
FIELD_ORDER = (
    "File",
    "Type",
    "Trigger word",
    "Recommended weight",
    "Base model",
    "Good for",
    "Training date",
    "Training params",
)


@dataclass
class Plan:
    fields: dict[str, object]
    run: str | None
    warnings: list[str] = field(default_factory=list)


def _training_params(preset: str | None, key_params: str | None, meta: dict[str, str]) -> str:
    params = parse_key_parameters(key_params)
    epochs = (
        params.get("epochs")
        or meta.get("ss_num_epochs")
        or meta.get("ss_epoch")
        or meta.get("epoch")
    )
    rank = params.get("rank") or params.get("dim") or meta.get("ss_network_dim") or meta.get("rank")
    parts = [p for p in (preset, f"{epochs} epochs" if epochs else None) if p]
    if rank:
        parts.append(f"rank {rank}")
    return ", ".join(parts)


def _run_hashes(g: Grimoire, name: str, run: str | None) -> set[str]:
    """SHA-256 of every checkpoint the eval run compared (from its manifest)."""
    manifest = read_manifest(g.project_dir(name) / RUNS_DIR / run) if run else None
    return {str(c.get("sha256")) for c in (manifest or {}).get("checkpoints", [])}


def plan_entry(
    g: Grimoire,
    name: str,
    weight: float | None = None,
    good_for: str | None = None,
    lora_file: Path | None = None,
    date: str | None = None,
) -> Plan:
    """Gather the entry's fields from intent.md, config.md, eval.md and the LoRA file."""
    facts = read_facts(g, name)
    evaluation = top_fields(g, "eval", name)
    warnings: list[str] = []
    if weight is None:
        weight = evaluation.get("Recommended weight")
    if weight is None:
        raise TrainwrightError(
            f"eval.md of '{name}' has no Recommended weight yet: look at the grid and record it "
            f'(trainwright grimoire set eval --project {name} "Recommended weight=0.6"), '
            "or pass --weight"
        )
    if not 0 <= float(weight) <= MAX_WEIGHT:
        raise TrainwrightError(f"--weight {weight} is outside 0-{MAX_WEIGHT:g}")
    file = lora_file or (Path(evaluation["LoRA file"]) if evaluation.get("LoRA file") else None)
    if file is None:
        raise TrainwrightError(
            f"no LoRA file: eval.md of '{name}' does not name one (run trainwright eval-grid "
            "first) and --file was not given"
        )
    lora = inspect_lora(file)
    recorded = evaluation.get("LoRA sha256")
    evaluated = {recorded} | _run_hashes(g, name, evaluation.get("Eval run"))
    if recorded and lora.sha256 not in evaluated:
        warnings.append(
            f"{file} changed since it was evaluated (sha256 differs from eval.md): "
            "run trainwright eval-grid again before relying on the recommended weight"
        )
    if not facts.trigger:
        raise TrainwrightError(
            f"intent.md of '{name}' has no Trigger word; /art needs it to call the LoRA "
            f'(trainwright grimoire set intent --project {name} "Trigger word=...")'
        )
    if evaluation.get("Partial"):
        warnings.append("the evaluation grid was partial; some weights or prompts are unchecked")
    when = date or _dt.date.fromtimestamp(lora.path.stat().st_mtime).isoformat()
    fields: dict[str, object] = {
        "File": str(lora.path.resolve()),
        "Type": facts.lora_type,
        "Trigger word": facts.trigger,
        "Recommended weight": float(weight),
        "Base model": facts.base_model or evaluation.get("Base model"),
        "Good for": good_for or facts.description,
        "Training date": when,
        "Training params": _training_params(facts.preset, facts.key_parameters, lora.metadata)
        or None,
    }
    return Plan(fields, evaluation.get("Eval run"), warnings)


def _insert_entry(doc: Document, title: str, fields: dict[str, object]) -> Document:
    """Add `### <title>` with its fields at the end of the `## LoRAs` part of studio.md."""
    loras = doc.sections["LoRAs"]
    after = [s.line for s in doc.sections.values() if s.line > loras.line and s.level <= 2]
    end = (min(after) - 1) if after else len(doc.lines)  # 0-based index of the next heading
    lines = list(doc.lines)
    while end > loras.line and lines[end - 1].strip() == "":
        end -= 1
    block = ["", f"### {title}"] + [
        f"- **{k}**: {format_value(v)}".rstrip() for k, v in fields.items()
    ]
    if end < len(lines) and lines[end].strip() != "":
        block.append("")
    lines[end:end] = block
    return parse_document("\n".join(lines) + "\n", doc.path)


def _studio_update(
    doc: Document, title: str, fields: dict[str, object]
) -> tuple[Document, str, list[str]]:
    if title not in doc.sections:
        return _insert_entry(doc, title, fields), "added", list(fields)
    current = doc.sections[title].fields
    changed = {
        k: v
        for k, v in fields.items()
        if k not in current or current[k].value.strip() != format_value(v)
    }
    if not changed:
        return doc, "unchanged", []
    return set_fields(doc, {title: changed}), "updated", list(changed)


def _archive(g: Grimoire, name: str, run: str | None, dry_run: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"run": run, "folder": None, "copied": [], "same": 0, "kept": []}
    if not run:
        result["note"] = "eval.md names no eval run: nothing to archive"
        return result
    src = g.project_dir(name) / RUNS_DIR / run
    if not src.is_dir():
        result["note"] = f"{src} does not exist: nothing to archive"
        return result
    dest = g.project_dir(name) / ARCHIVE_DIR / run
    result["folder"] = str(dest)
    for path in sorted(p for p in src.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = path.relative_to(src)
        target = dest / rel
        if target.exists():
            if filecmp.cmp(path, target, shallow=False):
                result["same"] += 1
            else:
                result["kept"].append(rel.as_posix())  # never written over
            continue
        result["copied"].append(rel.as_posix())
        if not dry_run:
            atomic_write_bytes(target, path.read_bytes())
    return result


def _status_update(g: Grimoire, name: str, today: str, dry_run: bool) -> str:
    path = g.path_for("status", name)
    if not path.exists():
        if dry_run:
            return "would create (COMPLETE)"
        text = pack.read_text("grimoire/templates/training/status.md")
        atomic_write_text(path, text.replace("{name}", name).replace("{date}", today))
    top = top_fields(g, "status", name)
    if top.get("Status") == "COMPLETE" and top.get("Phase") == "registered":
        return "unchanged"
    if not dry_run:
        g.update(
            "status",
            {"": {"Status": "COMPLETE", "Phase": "registered", "Updated": today}},
            name,
        )
    return "set COMPLETE"


def unfinished(g: Grimoire, name: str) -> list[str]:
    """Why the project is not a finished training: its run (the run's own record, run.json)
    is not COMPLETE, or one of its four gates was never decided GO."""
    from trainwright.run.runfiles import RunFiles
    from trainwright.state import gates

    problems = []
    status = RunFiles(g.project_dir(name)).read_state().get("status")
    if status != "COMPLETE":
        problems.append(
            f"its run is {status}" if status else "it has no run (trainwright launch never ran)"
        )
    for gate in gates.status(g, name)["gates"]:
        if gate["decision"] != "GO":
            problems.append(f"Gate {gate['gate']} ({gate['name']}) is {gate['decision']}")
    return problems


def _who() -> str:
    import getpass

    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown user"


def register(
    g: Grimoire,
    name: str,
    weight: float | None = None,
    good_for: str | None = None,
    lora_file: Path | None = None,
    run: str | None = None,
    date: str | None = None,
    dry_run: bool = False,
    today: _dt.date | None = None,
    override: str | None = None,
) -> dict[str, Any]:
    """Register the LoRA of a finished project; `override` (the reason) registers an unfinished
    one anyway, recording who did it and why in the studio.md entry."""
    plan = plan_entry(g, name, weight, good_for, lora_file, date)
    run = run or plan.run
    title = f"{PREFIX}{name}"
    studio = g.path_for("studio")
    day = (today or _dt.date.today()).isoformat()
    problems = unfinished(g, name)
    if problems and override is None:
        raise TrainwrightError(
            f"'{name}' is not a finished training, so it is not registered: {'; '.join(problems)}. "
            f"Finish it (trainwright status {name} says what is next), or register it anyway "
            'with --override "the reason" (recorded with your name in studio.md)'
        )
    if problems:
        plan.fields["Override"] = (
            f"{' '.join(str(override).split())} (by {_who()} on {day}; {'; '.join(problems)})"
        )
        plan.warnings.append("registered with --override: " + "; ".join(problems))
    with locked(g.root):
        if studio.exists():
            doc = parse_document(studio.read_text(encoding="utf-8"), studio)
        else:
            doc = parse_document(pack.read_text("grimoire/studio.md"), studio)
        validate_document(doc, "studio")
        new, action, changed = _studio_update(doc, title, plan.fields)
        validate_document(new, "studio")
        if action != "unchanged" and not dry_run:
            atomic_write_text(studio, new.text())
    status = _status_update(g, name, day, dry_run)
    archive = _archive(g, name, run, dry_run)
    return {
        "project": name,
        "entry": title,
        "studio": str(studio),
        "action": action if not dry_run or action == "unchanged" else f"would be {action}",
        "changed": changed,
        "fields": plan.fields,
        "status": status,
        "archive": archive,
        "warnings": plan.warnings,
        "dry_run": dry_run,
    }


def render(d: dict[str, Any]) -> str:
    lines = [f"register {d['project']}: {d['entry']} in {d['studio']} ({d['action']})"]
    if d["changed"] and d["action"] != "added":
        lines.append("  changed: " + ", ".join(d["changed"]))
    for key, value in d["fields"].items():
        lines.append(f"  {key}: {'' if value is None else value}")
    lines.append(f"  status.md: {d['status']}")
    arch = d["archive"]
    if arch.get("note"):
        lines.append(f"  eval images: {arch['note']}")
    else:
        lines.append(
            f"  eval images: {len(arch['copied'])} copied, {arch['same']} already there "
            f"-> {arch['folder']}"
        )
        if arch["kept"]:
            lines.append(
                f"  kept {len(arch['kept'])} archived file(s) that differ from the run "
                "(never written over): " + ", ".join(arch["kept"][:5])
            )
    lines += [f"  warning: {w}" for w in d["warnings"]]
    return "\n".join(lines)
