"""`retro summarize`: the Markdown retrospective, every line citing the source it came from."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from trainwright.retro.best import best_of, describe_run, label
from trainwright.retro.collect import Collection
from trainwright.retro.domains import focus
from trainwright.retro.experiment_report import Report
from trainwright.retro.values import comparable

MAX_PARAMS = 6
MAX_TRIED = 2
READ_HEADING = "Read these yourself"


def _cites(numbers: list[int]) -> str:
    return ", ".join(f"[{n}]" for n in numbers)


def _nothing(to_read: list[int], absent: str) -> str:
    """The placeholder of an empty section: an absence only when nothing is left unread."""
    if not to_read:
        return f"- {absent}"
    return f"- nothing structured: read the passages of {_cites(to_read)} ({READ_HEADING})"


def _passage_line(n: int, rep: Report, p: dict[str, Any]) -> str:
    lines = f"line {p['start']}" if p["start"] == p["end"] else f"lines {p['start']}-{p['end']}"
    under = f" (under {p['heading']})" if p["heading"] and p["heading"] != rep.title else ""
    return f"- [{n}] `{rep.path}` {lines}{under}"


def _uniq(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(lines))


def _sort_values(values: list[str]) -> list[str]:
    nums = [comparable(v) for v in values]
    if all(n is not None for n in nums):
        return [v for _, v in sorted(zip([n[0] for n in nums if n], values, strict=True))]
    return values


def varied(rep: Report) -> dict[str, list[str]]:
    """Focus parameters that take more than one value across a report's runs."""
    seen: dict[str, list[str]] = {}
    for run in rep.runs:
        for k, v in run.parameters.items():
            seen.setdefault(k, [])
            if v not in seen[k]:
                seen[k].append(v)
    return {k: _sort_values(v) for k, v in seen.items() if len(v) > 1}


def tried_line(n: int, rep: Report) -> str:
    parts = []
    fixed = [f"{label(k)}={v}" for k, v in rep.parameters.items()][:MAX_PARAMS]
    if fixed:
        parts.append(", ".join(fixed))
    for k, values in varied(rep).items():
        parts.append(f"{label(k)} over {', '.join(values)}")
    if rep.runs:
        parts.append(f"{len(rep.runs)} runs")
    parts += rep.tried[:MAX_TRIED]
    return f"- {rep.title}: {'; '.join(parts)} [{n}]" if parts else f"- {rep.title} [{n}]"


def default_title(coll: Collection, match: str | None, today: _dt.date) -> str:
    subject = match or f"{coll.domain} work"
    return f"{subject} ({today.strftime('%b %Y')})"


def summarize(
    coll: Collection,
    title: str | None = None,
    match: str | None = None,
    today: _dt.date | None = None,
) -> str:
    today = today or _dt.date.today()
    fcs = focus(coll.domain)
    reps = coll.reports
    out = [f"## Retrospective: {title or default_title(coll, match, today)}", ""]
    unread = f"; {len(coll.skipped)} file(s) could not be read" if coll.skipped else ""
    out.append(
        f"Domain: {coll.domain} (focus: {fcs.summary}). "
        f"Drawn from {len(reps)} source(s), listed under Sources{unread}."
    )
    out += ["", "### What we tried"]
    out += [tried_line(n, r) for n, r in enumerate(reps, start=1)] or ["- no reports found"]

    findings: list[str] = []
    for metric in fcs.headline:
        b = best_of(reps, fcs, metric)
        if b is None:
            continue
        word = "highest" if fcs.better[metric] == "higher" else "lowest"
        where = describe_run(b.run) if b.run else b.report.title
        findings.append(f"- {word.capitalize()} {label(metric)}: {b.value}, {where} [{b.source}]")
    for n, r in enumerate(reps, start=1):
        if not r.runs and r.metrics:
            shown = [f"{label(k)} {v}" for k, v in r.metrics.items()][:MAX_PARAMS]
            findings.append(f"- {r.title}: {', '.join(shown)} [{n}]")
        findings += [f"- {t} [{n}]" for t in r.worked + r.findings]
        if r.decision and not any(f.what.startswith("Decision") for f in r.failed):
            findings.append(f"- Decision: {r.decision} [{n}]")
        findings += [f"- Lesson: {t} [{n}]" for t in r.lessons]
        findings += [f"- Quirk: {t} [{n}]" for t in r.quirks]
    to_read = [n for n, r in enumerate(reps, start=1) if r.read_these_yourself]
    out += ["", "### Key findings"] + (_uniq(findings) or [_nothing(to_read, "none recorded")])

    failed = []
    for n, r in enumerate(reps, start=1):
        for f in r.failed:
            why = f": {f.why}" if f.why else " (no reason recorded)"
            lesson = f"; lesson: {f.lesson}" if f.lesson else ""
            failed.append(f"- {f.what}{why}{lesson} [{n}]")
    out += ["", "### What failed"] + (
        _uniq(failed) or [_nothing(to_read, "nothing recorded as failed")]
    )

    questions = [f"- {q} [{n}]" for n, r in enumerate(reps, start=1) for q in r.questions]
    if reps:
        missing = [g for g in fcs.groups if all(g in r.focus_missing for r in reps)]
        if missing and to_read:
            questions.append(
                f"- Not structured in any source: {', '.join(missing)}; the passages of "
                f"{_cites(to_read)} may record them (read them before saying none did)."
            )
        else:
            questions += [f"- No source records {g}: measure it next time." for g in missing]
    out += ["", "### Open questions"] + (_uniq(questions) or [_nothing(to_read, "none recorded")])
    if to_read:
        out += ["", f"### {READ_HEADING}"]
        out += [_passage_line(n, r, p) for n, r in enumerate(reps, start=1)
                for p in r.read_these_yourself]  # fmt: skip

    out += ["", "### Sources"]
    for n, r in enumerate(reps, start=1):
        dated = r.date and r.date_source != "file modified" and r.date not in r.title
        date = f", {r.date}" if dated else ""
        out.append(f"{n}. `{r.path}`: {r.title} ({r.format}{date})")
    if not reps:
        out.append("- none")
    if coll.skipped:
        out += ["", "### Not read"]
        out += [f"- `{s['path']}`: {s['reason']}" for s in coll.skipped]
    return "\n".join(out) + "\n"
