"""`retro apply PROPOSAL --approved`: move a staged proposal into place, never over a person's file.

A skill folder moves to `paths.skills` and is linked into `.claude/skills` and `.agents/skills`
(retro.skill_links); a pack skill's name is refused. An existing skill is replaced only with
`--update`, and its old folder is kept under `.trainwright/retro/replaced/<time>/`. A
troubleshooting entry is appended to the guide; one with the same heading is replaced only with
`--update` (the old guide is kept the same way). Without `--approved` nothing is written: the
preview and diff are shown.
"""

from __future__ import annotations

import difflib
import functools
import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from trainwright.clock import file_stamp, now_iso
from trainwright.errors import TrainwrightError
from trainwright.retro import skill_links, skillcheck
from trainwright.retro.propose import MANIFEST
from trainwright.retro.registry import Registry, inside
from trainwright.state.atomic import atomic_write_text, locked

REPLACED = Path(".trainwright") / "retro" / "replaced"


@functools.cache
def _schema() -> dict[str, Any]:
    text = (resources.files("trainwright.retro") / "proposal.schema.json").read_text("utf-8")
    return json.loads(text)


def find_proposal(reg: Registry, ref: str) -> Path:
    staging = reg.resolve("staging")
    candidates = [staging / ref, Path(ref)]
    for c in candidates:
        if (c / MANIFEST).is_file():
            return c
    staged = sorted(p.name for p in staging.glob(f"*/{MANIFEST}") for p in [p.parent])
    hint = f"; staged: {', '.join(staged)}" if staged else "; nothing is staged"
    raise TrainwrightError(f"no proposal {ref!r} in {reg.rel(staging)}{hint}")


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TrainwrightError(f"{path}: not valid JSON ({exc})") from None
    err = next(iter(jsonschema.Draft202012Validator(_schema()).iter_errors(data)), None)
    if err is not None:
        loc = ".".join(str(p) for p in err.absolute_path) or "top level"
        raise TrainwrightError(f"{path}: {loc}: {err.message}")
    return data


def _diff(old: str, new: str, old_name: str, new_name: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), old_name, new_name
        )
    )


def _entry_heading(text: str) -> str:
    first = next((ln for ln in text.split("\n") if ln.startswith("#")), "")
    return first.lstrip("#").strip()


def _level(line: str) -> int:
    return len(line) - len(line.lstrip("#")) if line.startswith("#") else 0


def _find_section(guide: str, heading: str) -> tuple[int, int] | None:
    """Line span of the section whose heading text equals `heading` (case-insensitive)."""
    lines = guide.split("\n")
    for i, line in enumerate(lines):
        if _level(line) and line.lstrip("#").strip().lower() == heading.lower():
            after = range(i + 1, len(lines))
            end = next((j for j in after if 0 < _level(lines[j]) <= _level(line)), len(lines))
            return i, end
    return None


def apply(reg: Registry, ref: str, approved: bool, update: bool) -> dict[str, Any]:
    folder = find_proposal(reg, ref)
    manifest = read_manifest(folder)
    if manifest["status"] == "applied":
        raise TrainwrightError(
            f"proposal {manifest['id']} was already applied on {manifest.get('applied_at')}"
        )
    target = inside(reg.root, manifest["target"], f"{folder / MANIFEST}: target")
    payload = folder / manifest["payload"]
    if not payload.exists():
        raise TrainwrightError(f"{payload}: the proposal's payload is missing")
    stamp = file_stamp()
    result: dict[str, Any] = {
        "id": manifest["id"],
        "kind": manifest["kind"],
        "target": reg.rel(target),
        "applied": False,
        "refused": False,
        "diff": "",
        "replaced_to": None,
        "linked": [],
        "message": "",
    }
    if manifest["kind"] == "skill":
        _apply_skill(reg, folder, manifest, payload, target, approved, update, stamp, result)
    else:
        _apply_entry(reg, folder, manifest, payload, target, approved, update, stamp, result)
    if result["applied"]:
        manifest["status"] = "applied"
        manifest["applied_at"] = now_iso()
        manifest["replaced_to"] = result["replaced_to"]
        atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return result


def _apply_skill(
    reg: Registry,
    folder: Path,
    manifest: dict[str, Any],
    payload: Path,
    target: Path,
    approved: bool,
    update: bool,
    stamp: str,
    result: dict[str, Any],
) -> None:
    skill_links.refuse_pack_name(target.name)
    new_text = (payload / "SKILL.md").read_text(encoding="utf-8")
    found = skillcheck.problems(new_text, target.name)
    if found:
        raise TrainwrightError(f"{payload}/SKILL.md does not validate: {found[0]}")
    old_file = target / "SKILL.md"
    exists = target.exists()
    if exists:
        old_text = old_file.read_text(encoding="utf-8") if old_file.is_file() else ""
        result["diff"] = _diff(old_text, new_text, f"{result['target']}/SKILL.md", "proposed")
    if exists and not update:
        result["refused"] = True
        result["message"] = (
            f"{result['target']} already exists; read the diff and rerun with --update to "
            "replace it (the current folder is kept under .trainwright/retro/replaced/)"
        )
        return
    if not approved:
        verb = "replace" if exists else "create"
        result["message"] = f"would {verb} {result['target']}; rerun with --approved once agreed"
        if not exists:
            result["diff"] = _diff("", new_text, "/dev/null", f"{result['target']}/SKILL.md")
        return
    with locked(reg.root / ".trainwright"):
        if exists:
            keep = reg.root / REPLACED / stamp / target.name
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(target), str(keep))
            result["replaced_to"] = reg.rel(keep)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(payload), str(target))
        result["linked"] = skill_links.link(reg.root, target)
    result["applied"] = True
    result["message"] = f"{'replaced' if exists else 'created'} {result['target']}"
    if result["linked"]:
        result["message"] += f"; linked for both agents: {', '.join(result['linked'])}"


def _apply_entry(
    reg: Registry,
    folder: Path,
    manifest: dict[str, Any],
    payload: Path,
    target: Path,
    approved: bool,
    update: bool,
    stamp: str,
    result: dict[str, Any],
) -> None:
    entry = payload.read_text(encoding="utf-8").strip("\n") + "\n"
    heading = _entry_heading(entry) or manifest["title"]
    guide = target.read_text(encoding="utf-8") if target.is_file() else ""
    span = _find_section(guide, heading) if guide else None
    if span:
        lines = guide.split("\n")
        old_section = "\n".join(lines[span[0] : span[1]]).strip("\n") + "\n"
        new_lines = lines[: span[0]] + entry.rstrip("\n").split("\n") + [""] + lines[span[1] :]
        new_guide = "\n".join(new_lines)
        result["diff"] = _diff(old_section, entry, f"{result['target']} (current)", "proposed")
        if not update:
            result["refused"] = True
            result["message"] = (
                f"{result['target']} already has an entry '{heading}'; read the diff and rerun "
                "with --update to replace it"
            )
            return
    else:
        base = guide if guide else "# Troubleshooting\n"
        new_guide = base.rstrip("\n") + "\n\n" + entry
        result["diff"] = _diff(guide, new_guide, result["target"], "proposed")
    if not approved:
        result["message"] = f"would add '{heading}' to {result['target']}; rerun with --approved"
        return
    with locked(reg.root / ".trainwright"):
        if span:
            keep = reg.root / REPLACED / stamp / target.name
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(target, keep)
            result["replaced_to"] = reg.rel(keep)
        atomic_write_text(target, new_guide)
    result["applied"] = True
    result["message"] = f"{'updated' if span else 'added'} '{heading}' in {result['target']}"
