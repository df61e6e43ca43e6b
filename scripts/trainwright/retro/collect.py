"""`retro collect`: find the reports and experiment-log sections, and extract each one."""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwright.errors import TrainwrightError
from trainwright.retro import markdown
from trainwright.retro.domains import Focus, focus
from trainwright.retro.experiment_report import Report
from trainwright.retro.extract import date_in, from_markdown
from trainwright.retro.passages import find as find_passages
from trainwright.retro.reading import MAX_BYTES, Unread, read_text
from trainwright.retro.registry import Registry
from trainwright.retro.structured import StructuredError, from_structured

MAX_FILES = 5000
SKIP_DIRS = {"__pycache__", "node_modules", ".git"}
RETRO_MARK = re.compile(r"^- \*\*Kind\*\*: retrospective\s*$", re.M)
GRIMOIRE_KINDS = {"intent", "dataset-report", "config", "environment", "progress", "eval", "status"}


@dataclass
class Collection:
    domain: str
    reports_dir: str
    experiment_log: str
    reports: list[Report] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    excluded: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "reports_dir": self.reports_dir,
            "experiment_log": self.experiment_log,
            "reports": [{"source": n, **r.as_dict()} for n, r in enumerate(self.reports, start=1)],
            "skipped": self.skipped,
            "excluded_by_filter": self.excluded,
            "notes": self.notes,
        }


def detect_format(path: Path, text: str) -> str:
    name = path.name.lower()
    if name == "training-validation-report.md":
        return "training-validation-report"
    if path.suffix == ".md" and path.parent.parent.name == "training":
        if path.stem in GRIMOIRE_KINDS:
            return f"grimoire-{path.stem}"
    if name.startswith("runs_status") and path.suffix in (".yaml", ".yml"):
        return "runs-status"
    head = text[:2000]
    if re.search(r"\*\*Report kind\*\*:\s*kernel-benchmark", head):
        return "kernel-benchmark"
    if path.suffix in (".yaml", ".yml"):
        return "yaml"
    if path.suffix == ".json":
        return "json"
    return "markdown" if path.suffix in (".md", ".markdown") else "text"


def extract_text(text: str, path: Path, rel: str, fcs: Focus) -> Report:
    fmt = detect_format(path, text)
    report = Report(path=rel, format=fmt, title=rel)
    if path.suffix in (".yaml", ".yml", ".json"):
        return from_structured(text, path.suffix, report, fcs)
    doc = markdown.parse(text)
    if fmt == "text" and doc.title is None:
        first = next((ln.strip() for ln in text.split("\n") if ln.strip()), "")
        if len(first) <= 120 and not markdown.parse_pair(first):
            doc.title = markdown.clean(first)
    report = from_markdown(doc, report, fcs)
    report.read_these_yourself = [p.as_dict() for p in find_passages(text)]
    return report


def read_report(path: Path, rel: str, fcs: Focus, max_bytes: int = MAX_BYTES) -> Report | Unread:
    got = read_report_text(path, rel, fcs, max_bytes)
    return got if isinstance(got, Unread) else got[0]


def read_report_text(
    path: Path, rel: str, fcs: Focus, max_bytes: int = MAX_BYTES
) -> tuple[Report, str] | Unread:
    """The report and the text it was read from (for --match), or why it was not read."""
    text = read_text(path, max_bytes)
    if isinstance(text, Unread):
        return text
    try:
        report = extract_text(text, path, rel, fcs)
    except StructuredError as exc:
        return Unread(path, str(exc))
    if report.is_empty():
        return Unread(path, "nothing to extract (no headings, tables, key: value lines or lists)")
    if report.title == rel:
        report.title = path.stem
    if not report.date:
        found = date_in("\n".join(text.split("\n", 15)[:15]))
        if found:
            report.date, report.date_source = found, "text near the top"
    if not report.date:
        mtime = _dt.date.fromtimestamp(path.stat().st_mtime).isoformat()
        report.date, report.date_source = mtime, "file modified"
    return report, text


def iter_files(folder: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
        out += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
    return out


def matches(text: str, words: list[str]) -> bool:
    low = text.lower()
    return all(w in low for w in words)


def log_sections(text: str) -> list[tuple[str, int, str]]:
    """(heading, line, body) for each entry of an experiment log: its shallowest `##`+ headings."""
    lines = text.split("\n")
    heads = []
    for i, line in enumerate(lines):
        m = markdown.ATX.match(line)
        if m and len(m.group(1)) >= 2:
            heads.append((i, len(m.group(1)), m.group(2).strip()))
    if not heads:
        return []
    level = min(h[1] for h in heads)
    tops = [(i, title) for i, lvl, title in heads if lvl == level]
    out = []
    for n, (i, title) in enumerate(tops):
        end = tops[n + 1][0] if n + 1 < len(tops) else len(lines)
        out.append((title, i + 1, "\n".join(lines[i:end])))
    return out


def collect(
    reg: Registry,
    since: _dt.date | None = None,
    match: str | None = None,
    files: list[Path] | None = None,
    domain: str | None = None,
    max_bytes: int = MAX_BYTES,
) -> Collection:
    dom = domain or reg.domain
    fcs = focus(dom)
    reports_dir = reg.resolve("reports", dom)
    log_path = reg.resolve("experiment_log", dom)
    coll = Collection(dom, reg.rel(reports_dir), reg.rel(log_path))
    words = [w.lower() for w in (match or "").split() if w]

    def keep(report: Report, text_for_match: str) -> bool:
        if since and report.date and report.date < since.isoformat():
            return False
        return not words or matches(text_for_match, words)

    if files:
        candidates = files
    elif reports_dir.is_dir():
        candidates = iter_files(reports_dir)
        if len(candidates) > MAX_FILES:
            coll.notes.append(f"only the first {MAX_FILES} of {len(candidates)} files were read")
            candidates = candidates[:MAX_FILES]
    else:
        candidates = []
        coll.notes.append(f"reports folder {coll.reports_dir} does not exist yet")
    for path in candidates:
        rel = reg.rel(path)
        got = read_report_text(path, rel, fcs, max_bytes)
        if isinstance(got, Unread):
            if files:
                raise TrainwrightError(f"{rel}: cannot be read as a report: {got.reason}")
            coll.skipped.append({"path": rel, "reason": got.reason})
            continue
        report, text = got
        if keep(report, f"{rel}\n{report.title}\n{text}"):
            coll.reports.append(report)
        else:
            coll.excluded += 1
    if not files:
        _collect_log(coll, log_path, reg, fcs, since, words, max_bytes)
    return coll


def _collect_log(
    coll: Collection,
    log_path: Path,
    reg: Registry,
    fcs: Focus,
    since: _dt.date | None,
    words: list[str],
    max_bytes: int,
) -> None:
    if not log_path.exists():
        coll.notes.append(f"experiment log {coll.experiment_log} does not exist yet")
        return
    text = read_text(log_path, max_bytes)
    if isinstance(text, Unread):
        coll.skipped.append({"path": coll.experiment_log, "reason": text.reason})
        return
    for title, line, body in log_sections(text):
        if RETRO_MARK.search(body):
            continue  # an earlier retrospective's own entry, not an experiment
        date = date_in(title)
        if since and (not date or date < since.isoformat()):
            coll.excluded += 1
            continue
        if words and not matches(body, words):
            coll.excluded += 1
            continue
        rel = f"{coll.experiment_log}#L{line}"
        report = Report(path=rel, format="experiment-log", title=title)
        report = from_markdown(markdown.parse(body), report, fcs)
        report.read_these_yourself = [p.as_dict() for p in find_passages(body, line - 1)]
        report.title = markdown.clean(title)
        if date:
            report.date, report.date_source = date, "log heading"
        if not report.is_empty():
            coll.reports.append(report)
