"""`trainwright grimoire ...`: read, check and edit state files the exact way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from trainwright.errors import TrainwrightError
from trainwright.numeric import Int
from trainwright.output import emit, json_option
from trainwright.state.content_hash import content_hash
from trainwright.state.document import read_document
from trainwright.state.grimoire import ALL_KINDS, BASE_KINDS, Grimoire, kind_of, update_file
from trainwright.state.schema import validate_document


def grimoire_from(ctx: click.Context) -> Grimoire:
    return Grimoire(ctx.find_root().obj["grimoire"])


def _resolve(g: Grimoire, target: str, project: str | None, kind: str | None) -> tuple[Path, str]:
    if target in ALL_KINDS:
        return g.path_for(target, project), target
    path = Path(target)
    found = kind or kind_of(path)
    if found is None:
        raise TrainwrightError(
            f"{target}: not a known state file; give a kind ({', '.join(ALL_KINDS)}) "
            "or a path with --kind"
        )
    return path, found


@click.group("grimoire")
def grimoire_group() -> None:
    """Read, check and edit the grimoire state files (eye.md, studio.md, training/<name>/)."""


@grimoire_group.command("new")
@click.argument("project")
@json_option
@click.pass_context
def new_cmd(ctx: click.Context, project: str, as_json: bool) -> None:
    """Start training project PROJECT: create grimoire/training/PROJECT/ from the templates.

    Files that already exist are kept as they are.
    """
    g = grimoire_from(ctx)
    base = g.ensure_base()
    result = g.new_project(project)
    data = {
        "project": project,
        "folder": str(g.project_dir(project)),
        "created": [str(p) for p in base + result["created"]],
        "kept": [str(p) for p in result["kept"]],
    }
    emit(
        data,
        as_json,
        lambda d: "\n".join(
            [f"project {d['project']}: {d['folder']}"]
            + [f"  created {p}" for p in d["created"]]
            + [f"  kept    {p} (already there)" for p in d["kept"]]
        ),
    )


@grimoire_group.command("show")
@click.argument("target")
@click.option("--project", help="Training project name (for per-project kinds).")
@click.option("--kind", type=click.Choice(ALL_KINDS), help="Kind of file, when TARGET is a path.")
@json_option
@click.pass_context
def show_cmd(
    ctx: click.Context, target: str, project: str | None, kind: str | None, as_json: bool
) -> None:
    """Print the fields of a state file. TARGET is a kind (eye, intent, ...) or a path."""
    path, kind = _resolve(grimoire_from(ctx), target, project, kind)
    doc = read_document(path)
    data = validate_document(doc, kind)
    out = {"path": str(path), "kind": kind, **data}

    def human(d: dict[str, Any]) -> str:
        lines = [f"{d['path']} ({d['kind']}): {d['title']}"]
        for title, fields in d["sections"].items():
            if fields:
                lines.append(f"  [{title or 'top'}]")
                lines += [f"    {k}: {'' if v is None else v}" for k, v in fields.items()]
        return "\n".join(lines)

    emit(out, as_json, human)


@grimoire_group.command("set")
@click.argument("target")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.option("--section", default="", help="Heading the fields sit under (default: the top).")
@click.option("--project", help="Training project name (for per-project kinds).")
@click.option("--kind", type=click.Choice(ALL_KINDS), help="Kind of file, when TARGET is a path.")
@json_option
@click.pass_context
def set_cmd(
    ctx: click.Context,
    target: str,
    assignments: tuple[str, ...],
    section: str,
    project: str | None,
    kind: str | None,
    as_json: bool,
) -> None:
    """Set fields in a state file, keeping every other line as it is.

    Only the fields and sections the kind's schema knows can be set, and dates must be dates
    (YYYY-MM-DD); anything else is refused and the file is left as it was.

    Example: trainwright grimoire set dataset-report --project mystyle
    --section "Gate 1 Decision" Decision=GO "Reason=all checks passed"
    """
    g = grimoire_from(ctx)
    path, kind = _resolve(g, target, project, kind)
    fields: dict[str, object] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TrainwrightError(f"{item!r} is not KEY=VALUE")
        fields[key.strip()] = value
    data = update_file(path, kind, {section: fields}, known_only=True)
    out = {"path": str(path), "kind": kind, "set": fields, **data}
    emit(out, as_json, lambda d: f"{d['path']}: set " + ", ".join(d["set"]))


@grimoire_group.command("validate")
@click.option("--project", help="Check only this training project.")
@json_option
@click.pass_context
def validate_cmd(ctx: click.Context, project: str | None, as_json: bool) -> int:
    """Check every state file against its schema. Exit 1 if any is invalid or missing.

    A missing file is a problem too: the commands that read it would fail.
    `trainwright grimoire new NAME` adds the missing ones and keeps the rest.
    """
    g = grimoire_from(ctx)
    if project is not None and not g.project_dir(project).is_dir():
        raise TrainwrightError(
            f"no training project '{project}' in {g.root}; start it with "
            f"'trainwright grimoire new {project}'"
        )
    results = g.validate_all(project)
    bad = [r for r in results if r["ok"] is False]
    missing = [r for r in results if r["ok"] is None]
    out = {
        "grimoire": str(g.root),
        "ok": not bad and not missing,
        "invalid": len(bad),
        "missing": len(missing),
        "files": results,
        "fixes": _missing_fixes(g, missing),
    }

    def human(d: dict[str, Any]) -> str:
        lines = []
        for r in d["files"]:
            state = {True: "ok     ", False: "INVALID", None: "missing"}[r["ok"]]
            lines.append(
                f"{state} {r['path']}" + (f"\n        {r['error']}" if r["ok"] is False else "")
            )
        if d["ok"]:
            lines.append("all state files are valid")
        else:
            lines.append(f"{d['invalid']} invalid file(s), {d['missing']} missing file(s)")
        lines += [f"fix: {f}" for f in d["fixes"]]
        if d["fixes"]:
            lines.append("     (it adds the missing files and keeps every file that is there)")
        return "\n".join(lines)

    emit(out, as_json, human)
    return 0 if out["ok"] else 1


def _missing_fixes(g: Grimoire, missing: list[dict[str, Any]]) -> list[str]:
    """The command that adds the missing files back (`grimoire new` keeps existing ones)."""
    if not missing:
        return []
    names = sorted({Path(r["path"]).parent.name for r in missing if r["kind"] not in BASE_KINDS})
    if not names and any(r["kind"] in BASE_KINDS for r in missing):
        names = g.projects()[:1]
    if not names:
        return ["trainwright init"]
    return [f"trainwright grimoire new {n}" for n in names]


@click.command("hash")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option
def hash_cmd(paths: tuple[Path, ...], as_json: bool) -> None:
    """Content hash of files and folders (what a gate decision is bound to)."""
    h = content_hash(*paths)

    def human(d: dict[str, object]) -> str:
        lines = [f"{d['digest']}  ({d['files']} files, {d['bytes']} bytes)"]
        lines += [f"note: skipped {s}: not a regular file, never read" for s in h.skipped]
        return "\n".join(lines)

    emit(h.as_dict(), as_json, human)


@click.group("gate")
def gate_group() -> None:
    """The four /train gates: dataset, config, environment, dry run. Launch needs four GOs."""


@gate_group.command("check")
@click.argument("project")
@click.option("--gate", "number", type=Int(), required=True, help="Gate number, 1 to 4.")
@json_option
@click.pass_context
def gate_check_cmd(ctx: click.Context, project: str, number: int, as_json: bool) -> int:
    """Decide gate N for PROJECT from its state files; record GO / NO-GO with the reasons.

    The decision is bound to a content hash of its inputs: changing them later makes it stale.
    Exit 0 on GO, 1 on NO-GO.
    """
    from trainwright.state import gates

    g = grimoire_from(ctx)
    result = gates.check(g, project, number)
    out = {
        "project": project,
        "gate": number,
        "name": gates.spec(number).name,
        "decision": result.decision,
        "reasons": result.reasons,
        "fixes": result.fixes,
        "bound_to": result.binding,
        "details": result.details,
    }

    def human(d: dict[str, Any]) -> str:
        lines = [f"Gate {d['gate']} ({d['name']}) for {d['project']}: {d['decision']}"]
        lines += [f"  - {r}" for r in d["reasons"]]
        if d["fixes"]:
            lines.append("  To fix:")
            lines += [f"  - {f}" for f in d["fixes"]]
        return "\n".join(lines)

    emit(out, as_json, human)
    return 0 if result.decision == "GO" else 1


@gate_group.command("status")
@click.argument("project")
@click.option(
    "--require-all", is_flag=True, help="Exit 1 unless all four gates are GO and current."
)
@json_option
@click.pass_context
def gate_status_cmd(ctx: click.Context, project: str, require_all: bool, as_json: bool) -> int:
    """Show the four gates of PROJECT: decision, and whether a GO is stale (inputs changed)."""
    from trainwright.state import gates

    out = gates.status(grimoire_from(ctx), project)

    def human(d: dict[str, Any]) -> str:
        lines = [f"{d['project']}: " + ("ready to launch" if d["ready"] else "not ready to launch")]
        for gt in d["gates"]:
            state = "STALE (inputs changed since the decision)" if gt["stale"] else gt["decision"]
            lines.append(f"  Gate {gt['gate']} {gt['name']:<12} {state}")
        return "\n".join(lines)

    emit(out, as_json, human)
    return 1 if require_all and not out["ready"] else 0
