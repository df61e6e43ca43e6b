"""`retro propose`: troubleshooting entries and a result skill, written to the staging folder.

Nothing goes to `.codex/skills/` or the troubleshooting guide here: `retro apply --approved` does
that after the person has read the proposal. A proposal folder holds `proposal.json` (what it is
and where it goes) and its payload (a skill folder, or `entry.md`).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any

import yaml

from trainwright.errors import TrainwrightError
from trainwright.retro import skill_links, skillcheck
from trainwright.retro.best import best_of, describe_run, label
from trainwright.retro.collect import Collection
from trainwright.retro.domains import Focus, error_patterns, focus
from trainwright.retro.experiment_report import Failure, Report
from trainwright.retro.naming import skill_name, slug
from trainwright.retro.registry import Registry
from trainwright.retro.templating import (
    ENTRY_TEMPLATE,
    SKILL_TEMPLATE,
    cell,
    fill,
    read_template,
    safe,
)
from trainwright.state.atomic import atomic_write_text, locked

MANIFEST = "proposal.json"
MAX_ROWS = 12


def _cite(n: int) -> str:
    return f"[{n}]"


def results_rows(reps: list[Report], fcs: Focus) -> tuple[list[str], list[tuple[str, str]]]:
    """Table rows for the headline metrics, and (metric, value) pairs for the description."""
    rows, headline, bests = [], [], []
    for metric in fcs.headline:
        b = best_of(reps, fcs, metric)
        if b is None:
            continue
        bests.append(b)
        where = describe_run(b.run) if b.run else b.report.title
        word = "best (highest)" if fcs.better[metric] == "higher" else "best (lowest)"
        note = cell(f"{word}: {where}")
        rows.append(f"| {cell(label(metric))} | {cell(b.value)} | {note} {_cite(b.source)} |")
        headline.append((label(metric), f"{b.value} with {where}"))
    shown = {(label(b.metric), b.value, b.source) for b in bests}
    for n, r in enumerate(reps, start=1):
        if r.runs:
            continue
        for k, v in list(r.metrics.items())[:3]:
            if (label(k), v, n) not in shown:
                rows.append(f"| {cell(label(k))} | {cell(v)} | {cell(r.title)} {_cite(n)} |")
    return rows[:MAX_ROWS], headline


def best_config(reps: list[Report], fcs: Focus) -> tuple[dict[str, str], str] | None:
    for metric in fcs.headline:
        b = best_of(reps, fcs, metric)
        if b is None:
            continue
        params = dict(b.report.parameters)
        if b.run:
            params.update(b.run.parameters)
        if params:
            return params, f"the run with the best {label(metric)} ({b.value}) {_cite(b.source)}"
    return None


def skill_values(
    reps: list[Report], fcs: Focus, name: str, subject: str, author: str, today: _dt.date
) -> dict[str, str]:
    rows, headline = results_rows(reps, fcs)
    dates = sorted(r.date for r in reps if r.date and r.date_source != "file modified")
    span = f" dated {dates[0]} to {dates[-1]}" if dates else ""
    if dates and dates[0] == dates[-1]:
        span = f" dated {dates[0]}"
    when = fcs.when.replace("{subject}", subject)
    top = f"{headline[0][0]} {headline[0][1]}" if headline else "see the results table"
    description = safe(
        f"Measured {fcs.name} results for {subject} from {len(reps)} reports: {top}. "
        f"Use when {when}."
    )[:1000]
    practice = []
    cfg = best_config(reps, fcs)
    if cfg:
        shown = ", ".join(f"{label(k)}={v}" for k, v in list(cfg[0].items())[:8])
        practice.append(f"- Start from {shown}: {cfg[1]}.")
    for n, r in enumerate(reps, start=1):
        practice += [f"- {t} {_cite(n)}" for t in r.worked + r.lessons]
        practice += [f"- Watch for: {t} {_cite(n)}" for t in r.quirks]
    failures = [
        f"| {cell(f.what)} | {cell(f.why)} | {cell(f.lesson)} {_cite(n)} |"
        for n, r in enumerate(reps, start=1)
        for f in r.failed
    ]
    config = (
        "```yaml\n"
        + yaml.safe_dump(
            {k: _scalar(v) for k, v in cfg[0].items()}, sort_keys=False, allow_unicode=True
        ).strip()
        + "\n```"
        if cfg
        else "No single configuration stood out; see the results table."
    )
    sources = [
        f"{n}. `{r.path}`: {r.title}"
        + (f" ({r.date})" if r.date_source != "file modified" and r.date not in r.title else "")
        for n, r in enumerate(reps, start=1)
    ]
    tags = ", ".join(dict.fromkeys([fcs.name, subject, *[g for r in reps for g in r.focus_found]]))
    return {
        "name": name,
        "description": description,
        "short_description": safe(f"{subject}: {top}")[:200],
        "tags": tags,
        "domain": fcs.name,
        "created": today.isoformat(),
        "author": author,
        "title": f"{subject}: what the {fcs.name} reports show",
        "general_description": (
            f"What {len(reps)} {fcs.name} reports{span} found about {subject}: "
            f"{fcs.summary}. Numbers are as the reports state them; each line cites its source."
        ),
        "when_to_apply": f"- {when[0].upper() + when[1:]}\n"
        "- Before repeating an experiment listed under Failure Modes",
        "results_rows": "\n".join(rows) or "| — | — | no comparable metric in the reports |",
        "recommended_practice": "\n".join(dict.fromkeys(practice)) or "- No recommendation yet.",
        "failure_rows": "\n".join(dict.fromkeys(failures)) or "| — | — | nothing recorded |",
        "configuration": config,
        "sources": "\n".join(sources),
    }


def _scalar(value: str) -> object:
    """`4096` -> 4096 and `1e-4` -> 0.0001 in the configuration block; other text stays text."""
    if re.fullmatch(r"[-+]?\d+", value):
        return int(value)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", value):
        return float(value)
    return value


def is_error_pattern(f: Failure) -> bool:
    text = f"{f.what} {f.why or ''}".lower()
    return bool(f.why) and (bool(f.lesson) or any(p in text for p in error_patterns()))


def existing_titles(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    text = path.read_text(encoding="utf-8", errors="replace")
    return {m.strip().lower() for m in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.M)}


def entry_title(f: Failure) -> str:
    title = f"{f.what}: {f.why}" if f.why else f.what
    title = " ".join(title.split())
    return title if len(title) <= 90 else title[:89].rstrip() + "…"


def sections(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    current = ""
    for line in text.split("\n"):
        if line.startswith("## "):
            current = line[3:].strip()
        out[current] = out.get(current, "") + line + "\n"
    return out


def _write_proposal(
    staging: Path, pid: str, manifest: dict[str, Any], files: dict[str, str]
) -> str:
    """Write a proposal folder; an identical one already staged is reused, never overwritten."""
    base, n = pid, 2
    while (staging / pid).exists():
        old_path = staging / pid / MANIFEST
        old = json.loads(old_path.read_text("utf-8")) if old_path.is_file() else {}
        same = all(
            (staging / pid / rel).is_file() and (staging / pid / rel).read_text("utf-8") == text
            for rel, text in files.items()
        )
        # A staged entry for the same failure is kept as it is: the person may have edited it.
        same_entry = manifest["kind"] == "troubleshooting" and old.get("title") == manifest["title"]
        if old.get("status") == "staged" and (same or same_entry):
            return pid
        pid, n = f"{base}-{n}", n + 1
    folder = staging / pid
    for rel, text in files.items():
        atomic_write_text(folder / rel, text)
    atomic_write_text(folder / MANIFEST, json.dumps({**manifest, "id": pid}, indent=2) + "\n")
    return pid


def propose(
    reg: Registry,
    coll: Collection,
    summary: str,
    *,
    name: str | None = None,
    subject: str | None = None,
    finding: str | None = None,
    author: str = "trainwright retro propose",
    today: _dt.date | None = None,
    max_entries: int = 8,
    skill: bool = True,
) -> dict[str, Any]:
    today = today or _dt.date.today()
    fcs = focus(coll.domain)
    reps = coll.reports
    if not reps:
        raise TrainwrightError(
            f"no reports to learn from in {coll.reports_dir} (or the experiment log); "
            "nothing proposed"
        )
    templates = reg.resolve("templates", coll.domain)
    shown = reg.paths(coll.domain)["templates"]
    entry_tpl = read_template(templates, ENTRY_TEMPLATE, shown)
    skill_tpl = read_template(templates, SKILL_TEMPLATE, shown) if skill else ""
    staging = reg.resolve("staging", coll.domain)
    skills_dir = reg.resolve("skills", coll.domain)
    guide = reg.resolve("troubleshooting", coll.domain)
    sources = [r.path for r in reps]
    planned: list[tuple[str, dict[str, Any], dict[str, str]]] = []

    if skill:
        sname, subj = skill_name(reps, fcs, name, subject, finding)
        skill_links.refuse_pack_name(sname)
        text = fill(skill_tpl, skill_values(reps, fcs, sname, subj, author, today))
        found = skillcheck.problems(text, sname)
        if found:
            raise TrainwrightError(f"the drafted skill {sname} would not validate: {found[0]}")
        target = skills_dir / sname
        old = target / "SKILL.md"
        changed: list[str] = []
        if old.is_file():
            before, after = sections(old.read_text("utf-8")), sections(text)
            changed = [s or "frontmatter and title" for s in after if before.get(s) != after[s]]
        manifest = {
            "kind": "skill",
            "title": sname,
            "domain": fcs.name,
            "created": today.isoformat(),
            "status": "staged",
            "payload": sname,
            "target": reg.rel(target),
            "sources": sources,
            "existing": old.is_file(),
            "update_sections": changed,
        }
        files = {f"{sname}/SKILL.md": text, "retrospective.md": summary}
        planned.append((f"skill-{sname}", manifest, files))

    known = existing_titles(guide)
    already: list[str] = []
    entries = 0
    seen: set[str] = set()
    for n, r in enumerate(reps, start=1):
        for f in r.failed:
            if entries >= max_entries or not is_error_pattern(f):
                continue
            title = entry_title(f)
            if title.lower() in known:
                already.append(title)
                continue
            if title.lower() in seen:
                continue
            seen.add(title.lower())
            values = {
                "title": title,
                "what": f.what,
                "why": f.why or "",
                "fix": f.lesson or "not recorded in the reports: write it before approving",
                "domain": fcs.name,
                "sources": f"`{r.path}` {_cite(n)}" + (f" line {f.line}" if f.line else ""),
                "date": today.isoformat(),
            }
            manifest = {
                "kind": "troubleshooting",
                "title": title,
                "domain": fcs.name,
                "created": today.isoformat(),
                "status": "staged",
                "payload": "entry.md",
                "target": reg.rel(guide),
                "sources": [r.path],
                "existing": False,
                "update_sections": [],
            }
            planned.append(
                (
                    f"troubleshooting-{slug(f.what, 40)}",
                    manifest,
                    {"entry.md": fill(entry_tpl, values)},
                )
            )
            entries += 1

    out = []
    with locked(staging):
        for pid, manifest, files in planned:
            got = _write_proposal(staging, pid, manifest, files)
            out.append({"id": got, **manifest, "path": reg.rel(staging / got)})
    return {
        "domain": fcs.name,
        "staging": reg.rel(staging),
        "proposals": out,
        "already_in_guide": already,
    }
