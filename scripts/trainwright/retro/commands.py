"""`trainwright registry ...` and `trainwright retro ...`: the retrospective on the command line."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from trainwright.errors import TrainwrightError
from trainwright.numeric import Int
from trainwright.output import emit, json_option
from trainwright.retro import registry as regmod
from trainwright.retro.domains import domain_names, focus
from trainwright.retro.templating import ENTRY_TEMPLATE, SKILL_TEMPLATE
from trainwright.state.atomic import atomic_write_text

registry_option = click.option(
    "--registry",
    "registry_path",
    type=click.Path(path_type=Path),
    envvar=regmod.ENV,
    show_envvar=True,
    help="registry.json to use (default: .codex/skills/registry.json here or above).",
)


def _load(registry_path: Path | None) -> regmod.Registry:
    return regmod.load(registry_path or regmod.find_registry())


def _date(value: str | None, flag: str) -> _dt.date | None:
    if value is None:
        return None
    try:
        return _dt.date.fromisoformat(value)
    except ValueError:
        raise TrainwrightError(f"{flag} {value!r} is not a date like 2025-01-31") from None


# -- registry --------------------------------------------------------------------------------
@click.group("registry")
def registry_group() -> None:
    """The retrospective's registry (.codex/skills/registry.json): domain and paths, shared by
    Codex and Claude Code."""


@registry_group.command("show")
@registry_option
@json_option
def show_cmd(registry_path: Path | None, as_json: bool) -> None:
    """Print the domain, the paths in force (and whether they exist), the domain's focus and the
    result skills `retro apply` made, with where each agent finds them."""
    reg = _load(registry_path)
    fcs = focus(reg.domain)
    paths = reg.paths()
    data = {
        "registry": str(reg.path),
        "root": str(reg.root),
        "domain": reg.domain,
        "domains": domain_names(),
        "paths": paths,
        "exists": {k: reg.resolve(k).exists() for k in paths},
        "focus": fcs.summary,
        "naming": fcs.naming,
        "naming_example": fcs.naming_example,
        "result_skills": _result_skills(reg),
    }

    def human(d: dict[str, Any]) -> str:
        lines = [f"{d['registry']}", f"  domain: {d['domain']} (one of {', '.join(d['domains'])})"]
        lines.append(f"  focus: {d['focus']}")
        lines.append(f"  result skills are named {d['naming']} (e.g. {d['naming_example']})")
        for k, v in d["paths"].items():
            lines.append(f"  {k:16s} {v}{'' if d['exists'][k] else '  (not there yet)'}")
        lines.append(f"  result skills: {len(d['result_skills']) or 'none yet'}")
        for s in d["result_skills"]:
            where = ", ".join(f"{k} {v}" for k, v in s["agents"].items())
            lines.append(f"    {s['name']:24s} {s['path']} ({where})")
        return "\n".join(lines)

    emit(data, as_json, human)


def _result_skills(reg: regmod.Registry) -> list[dict[str, Any]]:
    """The skills `retro apply` made, and whether each agent's skill folder links to them."""
    from trainwright.retro import skill_links

    return [
        {"name": s.name, "path": reg.rel(s), "agents": skill_links.where(reg.root, s)}
        for s in skill_links.result_skills(reg.root, reg.resolve("skills"))
    ]


@registry_group.command("validate")
@registry_option
@json_option
def validate_cmd(registry_path: Path | None, as_json: bool) -> int:
    """Check the registry: JSON, schema, domain, paths inside the project, templates present.
    Exit 1 when anything is wrong."""
    path = registry_path or regmod.find_registry()
    problems: list[str] = []
    warnings: list[str] = []
    try:
        raw = regmod.read_raw(path)
    except TrainwrightError as exc:
        raw, problems = None, [str(exc)]
    if raw is not None:
        problems = regmod.problems(raw, regmod.root_of(path), str(path))
    if raw is not None and not problems:
        reg = regmod.Registry(path, regmod.root_of(path), raw)
        tpl = reg.resolve("templates")
        for rel in (SKILL_TEMPLATE, ENTRY_TEMPLATE):
            if not (tpl / rel).is_file():
                problems.append(f"template {reg.paths()['templates']}/{rel} is missing")
        for key in ("reports", "experiment_log", "troubleshooting"):
            if not reg.resolve(key).exists():
                warnings.append(f"paths.{key} = {reg.paths()[key]} does not exist yet")
    data = {"registry": str(path), "ok": not problems, "problems": problems, "warnings": warnings}

    def human(d: dict[str, Any]) -> str:
        lines = [f"problem: {p}" for p in d["problems"]] + [f"note: {w}" for w in d["warnings"]]
        lines.append(f"{d['registry']}: " + ("valid" if d["ok"] else f"{len(problems)} problem(s)"))
        return "\n".join(lines)

    emit(data, as_json, human)
    return 0 if not problems else 1


@registry_group.command("use")
@click.argument("domain", type=click.Choice(regmod.domains_in_schema()))
@registry_option
@json_option
def use_cmd(domain: str, registry_path: Path | None, as_json: bool) -> None:
    """Switch the retrospective to DOMAIN (research, unsloth or cuda). Applies that domain's path
    overrides from `domains`, keeps every other key, and writes the file atomically."""
    path = registry_path or regmod.find_registry()
    reg, before, changed = regmod.switch(path, domain)
    data = {
        "registry": str(reg.path),
        "domain": domain,
        "previous": before,
        "changed_paths": changed,
        "paths": reg.paths(),
    }
    emit(
        data,
        as_json,
        lambda d: (
            f"domain: {d['previous']} -> {d['domain']}"
            + "".join(f"\n  paths.{k} = {v}" for k, v in d["changed_paths"].items())
        ),
    )


# -- retro -----------------------------------------------------------------------------------
def selection(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options that pick which reports a retrospective reads."""
    fn = click.argument("reports", nargs=-1, type=click.Path(path_type=Path))(fn)
    fn = click.option(
        "--domain",
        type=click.Choice(regmod.domains_in_schema()),
        help="Read as this domain without switching the registry.",
    )(fn)
    fn = click.option("--match", help="Only sources whose path or text has all these words.")(fn)
    fn = click.option("--since", help="Only sources dated on or after this day (YYYY-MM-DD).")(fn)
    return registry_option(fn)


def _collect(
    registry_path: Path | None,
    since: str | None,
    match: str | None,
    domain: str | None,
    reports: tuple[Path, ...],
) -> tuple[regmod.Registry, Any]:
    from trainwright.retro.collect import collect

    reg = _load(registry_path)
    for p in reports:
        if not p.is_file():
            raise TrainwrightError(f"{p}: no such report file")
    coll = collect(reg, _date(since, "--since"), match, list(reports) or None, domain)
    return reg, coll


@click.group("retro")
def retro_group() -> None:
    """The retrospective: collect reports, summarise, propose troubleshooting entries and result
    skills (staged, never written without approval), apply, log. Domain and paths come from the
    registry (trainwright registry show)."""


@retro_group.command("collect")
@selection
@json_option
def collect_cmd(
    registry_path: Path | None,
    since: str | None,
    match: str | None,
    domain: str | None,
    reports: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Find the reports under paths.reports (or read REPORTS) and the matching experiment-log
    sections, and extract per source: setup, parameters, metrics, runs, what worked, what failed
    and why, lessons, questions, quirks. What no rule could structure (prose) is listed per
    source under read_these_yourself: the agent reads those passages itself. Files that cannot be
    read are listed with the reason.

    JSON keys: domain, reports_dir, experiment_log, reports[] (source, path, format, title, date,
    date_source, setup, parameters, metrics, runs, tried, worked, findings, failed[what, why,
    line, lesson], lessons, questions, quirks, other, decision, focus_found, focus_missing,
    notes, read_these_yourself[start, end, heading, text]), skipped[path, reason],
    excluded_by_filter, notes.
    """
    _, coll = _collect(registry_path, since, match, domain, reports)
    data = coll.as_dict()

    def human(d: dict[str, Any]) -> str:
        head = f"domain {d['domain']}: {len(d['reports'])} source(s) from {d['reports_dir']}"
        lines = [f"{head} and {d['experiment_log']}"]
        for r in d["reports"]:
            runs = f", {len(r['runs'])} runs" if r["runs"] else ""
            lines.append(
                f"  [{r['source']}] {r['path']} ({r['format']}{runs}, {len(r['failed'])} failed, "
                f"{len(r['parameters'])} parameters, {len(r['metrics'])} metrics): {r['title']}"
            )
            spans = [
                str(p["start"]) if p["start"] == p["end"] else f"{p['start']}-{p['end']}"
                for p in r["read_these_yourself"]
            ]
            if spans:
                lines.append(f"      read these yourself: lines {', '.join(spans)}")
        for s in d["skipped"]:
            lines.append(f"  not read: {s['path']}: {s['reason']}")
        if d["excluded_by_filter"]:
            lines.append(f"  {d['excluded_by_filter']} source(s) left out by --since/--match")
        lines += [f"  note: {n}" for n in d["notes"]]
        return "\n".join(lines)

    emit(data, as_json, human)


def _write_new(path: Path, text: str) -> None:
    if path.exists():
        raise TrainwrightError(f"{path} already exists; choose another --out (nothing is replaced)")
    atomic_write_text(path, text)


@retro_group.command("summarize")
@selection
@click.option("--title", help="Title of the retrospective (default: from --match and the month).")
@click.option("--date", "date", help="The retrospective's date (default: today).")
@click.option("--out", type=click.Path(path_type=Path), help="Also write the summary to this file.")
@json_option
def summarize_cmd(
    registry_path: Path | None,
    since: str | None,
    match: str | None,
    domain: str | None,
    reports: tuple[Path, ...],
    title: str | None,
    date: str | None,
    out: Path | None,
    as_json: bool,
) -> None:
    """Write the scaffold of a retrospective from the structured data: What we tried, Key
    findings, What failed, Open questions, the passages to read yourself, Sources (every line
    cites one), and the files that could not be read. Complete it, then `retro check` it.

    JSON keys: domain, sources, skipped, markdown, written."""
    from trainwright.retro.summary import summarize

    _, coll = _collect(registry_path, since, match, domain, reports)
    text = summarize(coll, title, match, _date(date, "--date"))
    if out:
        _write_new(out, text)
    data = {
        "domain": coll.domain,
        "sources": [r.path for r in coll.reports],
        "skipped": coll.skipped,
        "markdown": text,
        "written": str(out) if out else None,
    }
    emit(data, as_json, lambda d: d["markdown"].rstrip("\n"))


@retro_group.command("check")
@click.argument("summary", type=click.Path(path_type=Path))
@registry_option
@json_option
def check_cmd(summary: Path, registry_path: Path | None, as_json: bool) -> int:
    """Check a retrospective SUMMARY (Markdown) against its sources: every line cites a source
    with [n] from the summary's Sources list; every number and "quoted phrase" of a cited line
    appears in the cited source (units and formats may differ: 3.02 TB/s = 3,020 GB/s); every
    cited source exists; no line says no source records X when a source mentions X. Lists each
    unsupported line; exit 0 when all are supported, 1 when lines are listed.

    JSON keys: summary, sources, checked, supported, unsupported[line, text, problems]."""
    from trainwright.retro.check import check

    bases = [Path.cwd(), summary.resolve().parent]
    try:
        bases.insert(0, regmod.root_of(registry_path or regmod.find_registry()))
    except TrainwrightError:
        pass  # no project here: sources are read relative to this folder and the summary's
    data = check(summary, bases)

    def human(d: dict[str, Any]) -> str:
        lines = [
            f"{d['summary']}:{f['line']}: {'; '.join(f['problems'])}" for f in d["unsupported"]
        ]
        if d["supported"]:
            lines.append(f"{d['summary']}: all {d['checked']} checked line(s) supported")
        else:
            lines.append(
                f"{len(d['unsupported'])} of {d['checked']} checked line(s) unsupported: fix "
                "them, or save the summary only if the person accepts them as they are"
            )
        return "\n".join(lines)

    emit(data, as_json, human)
    return 0 if data["supported"] else 1


@retro_group.command("propose")
@selection
@click.option("--name", help="Result skill name (default: by the domain's naming convention).")
@click.option("--subject", help="Task, model or operation the skill is about (first name part).")
@click.option("--finding", help="Second name part (the finding, config or optimisation).")
@click.option("--author", default="trainwright retro propose", show_default=True)
@click.option("--title", help="Title of the retrospective written beside the skill.")
@click.option("--date", "date", help="Date stamped on the proposals (default: today).")
@click.option(
    "--max-entries",
    default=8,
    show_default=True,
    type=Int(0, 100),
    help="At most this many troubleshooting entries.",
)
@click.option("--no-skill", is_flag=True, help="Propose troubleshooting entries only.")
@json_option
def propose_cmd(
    registry_path: Path | None,
    since: str | None,
    match: str | None,
    domain: str | None,
    reports: tuple[Path, ...],
    name: str | None,
    subject: str | None,
    finding: str | None,
    author: str,
    title: str | None,
    date: str | None,
    max_entries: int,
    no_skill: bool,
    as_json: bool,
) -> None:
    """Draft troubleshooting entries (one per failure with an error pattern) and a result skill
    from the templates, into the staging folder (paths.staging). Nothing under .codex/skills or
    the troubleshooting guide changes: show the person, then `retro apply ID --approved`.

    JSON keys: domain, staging, proposals[id, kind, title, target, path, existing,
    update_sections, sources, ...], already_in_guide."""
    from trainwright.retro.propose import propose
    from trainwright.retro.summary import summarize

    reg, coll = _collect(registry_path, since, match, domain, reports)
    day = _date(date, "--date")
    summary = summarize(coll, title, match, day)
    data = propose(
        reg,
        coll,
        summary,
        name=name,
        subject=subject,
        finding=finding,
        author=author,
        today=day,
        max_entries=max_entries,
        skill=not no_skill,
    )

    def human(d: dict[str, Any]) -> str:
        lines = [f"staged in {d['staging']} (nothing applied yet):"]
        for p in d["proposals"]:
            what = "update of" if p["existing"] else "new"
            lines.append(f"  {p['id']}: {what} {p['kind']} -> {p['target']}")
            if p["update_sections"]:
                lines.append(f"      sections that change: {', '.join(p['update_sections'])}")
        for t in d["already_in_guide"]:
            lines.append(f"  already in the guide: {t}")
        for p in d["proposals"]:  # the real ids: a hint is run as printed
            lines.append(
                f"show {p['id']} to the person, then: trainwright retro apply {p['id']} --approved"
            )
        return "\n".join(lines)

    emit(data, as_json, human)


@retro_group.command("hook")
@click.option(
    "--agent", type=click.Choice(["claude", "codex"]), default="claude", show_default=True
)
def hook_cmd(agent: str) -> None:
    """UserPromptSubmit hook (Claude Code, Codex): reads the prompt event as JSON on stdin; for a
    prompt that starts with <retrospective>, prints the context that routes it to the
    domain-retrospective skill. Never blocks a prompt: other prompts and bad input print nothing."""
    import sys

    from trainwright.retro.prompt_hook import run

    try:
        out = run(sys.stdin.buffer.read())
    except Exception as exc:  # noqa: BLE001 - a hook must never block or crash the prompt
        click.echo(f"trainwright retro hook ({agent}): ignored: {exc}", err=True)
        return
    if out:
        click.echo(out)


@retro_group.command("apply")
@click.argument("proposal")
@click.option("--approved", is_flag=True, help="The person has read the proposal and agreed.")
@click.option("--update", is_flag=True, help="Replace an existing skill or entry (kept aside).")
@registry_option
@json_option
def apply_cmd(
    proposal: str, approved: bool, update: bool, registry_path: Path | None, as_json: bool
) -> int:
    """Move staged PROPOSAL (its id, or its folder) into place: a skill into paths.skills, an
    entry into the troubleshooting guide. Without --approved nothing is written (preview, exit
    1). An existing skill or entry is not replaced without --update: the diff is shown, exit 1.

    JSON keys: id, kind, target, applied, refused, diff, replaced_to, linked, message."""
    from trainwright.retro.apply import apply

    result = apply(_load(registry_path), proposal, approved, update)

    def human(d: dict[str, Any]) -> str:
        return (d["diff"].rstrip("\n") + "\n" if d["diff"] else "") + d["message"]

    emit(result, as_json, human)
    return 0 if result["applied"] else 1


@retro_group.command("log")
@click.argument("title")
@click.option("--description", required=True, help="One line: what this retrospective covered.")
@click.option("--date", "date", help="Date of the entry (default: today).")
@click.option(
    "--summary",
    "summary_path",
    type=click.Path(path_type=Path),
    help="A summary file (from retro summarize --out) to include.",
)
@click.option("--source", "sources", multiple=True, help="A report the retrospective read.")
@click.option("--skill", "skills", multiple=True, help="A result skill it proposed.")
@registry_option
@json_option
def log_cmd(
    title: str,
    description: str,
    date: str | None,
    summary_path: Path | None,
    sources: tuple[str, ...],
    skills: tuple[str, ...],
    registry_path: Path | None,
    as_json: bool,
) -> None:
    """Append the dated entry `DATE – TITLE` with its general description to the experiment log
    (paths.experiment_log), after everything already there. An entry with the same date and
    title is not written twice.

    JSON keys: log, heading, status (appended or exists), written."""
    from trainwright.retro.logbook import append_entry, read_summary

    summary = read_summary(summary_path) if summary_path else None
    result = append_entry(
        _load(registry_path),
        title,
        description,
        date=_date(date, "--date"),
        summary=summary,
        sources=list(sources),
        skills=list(skills),
    )
    emit(result, as_json, lambda d: f"{d['log']}: {d['status']} '{d['heading']}'")
