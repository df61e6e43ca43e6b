"""From a parsed report (Markdown, or rows from YAML/JSON) to a Report, through a domain's focus."""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable

from trainwright.retro.domains import (
    Focus,
    is_role_phrase,
    norm_key,
    role_of_heading,
    status_failed,
)
from trainwright.retro.experiment_report import Failure, Report, Run
from trainwright.retro.markdown import (
    LIST_ROLES,
    Doc,
    Item,
    Section,
    Table,
    clean,
    is_empty_value,
)
from trainwright.retro.passages import is_prose_pair
from trainwright.retro.values import parse_number, unit_of_key

INLINE = re.compile(
    r"(?<![\w./-])([A-Za-z_][\w.]{0,30})\s*=\s*"
    r"(\"[^\"]*\"|'[^']*'|\[[^\]]*\]|[^\s,;()]+(?:,(?![^,\s]*=)[^\s,;()]+)*)"
)
BOOL_WORDS = {"true", "false", "yes", "no", "on", "off"}
DATE = re.compile(r"(?<!\d)(20\d\d)[-_.]?(0[1-9]|1[0-2])[-_.]?(0[1-9]|[12]\d|3[01])(?!\d)")
SEPARATORS = (": ", " — ", " – ", " -> ", " → ", " because ", " due to ", " - ", " (")
MAX_ITEM = 400

DATE_KEYS = {"date", "when", "day", "run date", "created", "decided at"}
DECISION_KEYS = {"decision", "verdict", "outcome", "gate decision", "overall decision"}
STATUS_KEYS = {"status", "state", "run status", "job status", "slurm state"}
REASON_KEYS = {"reason", "why", "cause", "root cause", "failure reason", "error", "message"}
PROBLEM_WORDS = ("issue", "issues", "problem", "problems", "failure", "failures", "error")
WHAT_COLS = {"what failed", "failure", "failed", "attempt", "what", "issue", "problem", "symptom"}
WHY_COLS = {"why", "reason", "cause", "root cause", "because"}
LESSON_COLS = {"lesson", "lessons", "fix", "workaround", "mitigation", "solution", "takeaway"}
KEY_COLS = {
    "metric", "metrics", "name", "measure", "key", "parameter", "parameters", "param",
    "setting", "settings", "field", "item", "hyperparameter", "config", "option", "quantity",
}  # fmt: skip
VALUE_COLS = {"value", "values", "result", "setting", "measured", "achieved", "amount"}
NOTE_COLS = {"notes", "note", "comment", "comments", "remarks", "observation", "observations"}
NOTE_COLS |= REASON_KEYS
CODE_COLS = {"exit code", "exitcode", "return code", "signal"}
STATUS_COLS = STATUS_KEYS | {"result", "outcome", "ok", "pass", "passed", "correct", "verdict"}
# A first column with one of these names labels runs: its rows are runs, never transposed.
RUN_KEY_COLS = {
    "config", "configuration", "setting", "settings", "variant", "kernel", "run", "run name",
    "run id", "experiment", "trial", "case",
}  # fmt: skip


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ITEM else text[: MAX_ITEM - 1].rstrip() + "…"


def split_failure(text: str) -> tuple[str, str | None]:
    """`BLOCK_M=128: register spilling` -> (`BLOCK_M=128`, `register spilling`)."""
    best: tuple[int, str] | None = None
    for sep in SEPARATORS:
        pos = text.find(sep)
        if 0 < pos <= 160 and (best is None or pos < best[0]):
            best = (pos, sep)
    if best is None:
        return text.strip(), None
    pos, sep = best
    what, why = text[:pos].strip(), text[pos + len(sep) :].strip()
    if sep == " (" and why.endswith(")"):
        why = why[:-1]
    return (what, why) if why else (what, None)


def names_value(label: str, value: str) -> bool:
    """Whether a run label already states `value` (`BLOCK_SIZE=16384` states 16384, not 4)."""
    return re.search(rf"(?<![\w.]){re.escape(value)}(?![\w.])", label) is not None


def date_in(text: str) -> str | None:
    for m in DATE.finditer(text or ""):
        try:
            return _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
        except ValueError:
            continue
    return None


class Extractor:
    def __init__(self, report: Report, focus: Focus) -> None:
        self.r = report
        self.focus = focus
        self._pending_reason: list[Failure] = []
        self._decision_open = False
        # The pack's own state files carry template prose under their headings: lists only.
        self.prose_items = not report.format.startswith("grimoire-")

    # -- fields ----------------------------------------------------------------------------
    def put(self, key: str, value: str, role: str | None) -> None:
        """A classified key: a focus parameter or metric, else setup (or results) context."""
        value = _short(clean(value))
        cls = self.focus.classify(key)
        if cls:
            kind, canon = cls
            target = self.r.parameters if kind == "parameter" else self.r.metrics
            if value.lower() in BOOL_WORDS and norm_key(key) != norm_key(canon):
                value = f"{clean(key)}={value}"
            if kind == "metric":
                canon = self.focus.metric_name(canon, value, key)
                unit = unit_of_key(key)
                parsed = parse_number(value)
                if unit and parsed and parsed[1] is None and len(value.split()) == 1:
                    value = f"{value} {unit}"
            if canon not in target:
                target[canon] = value
                return
        by_unit = None if cls else self.focus.metric_by_unit(value)
        if by_unit and by_unit not in self.r.metrics:
            self.r.metrics[by_unit] = value
            return
        bucket = self.r.metrics if role == "results" and not cls else self.r.setup
        bucket.setdefault(clean(key), value)

    def inline(self, text: str, keep_unknown: bool) -> None:
        for key, value in INLINE.findall(text):
            value = value.strip("\"'").rstrip(":.")
            if self.focus.classify(key):
                self.put(key, value, None)
            elif keep_unknown:
                self.r.setup.setdefault(key, value)

    def fail(self, what: str, why: str | None, line: int | None, lesson: str | None = None) -> None:
        f = Failure(_short(what), _short(why) if why else None, line, lesson or None)
        if any(x.what == f.what and x.why == f.why for x in self.r.failed):
            return
        self.r.failed.append(f)
        if f.why is None:
            self._pending_reason.append(f)

    def pair(self, key: str, value: str, role: str | None, line: int) -> None:
        if is_empty_value(value) or not key.strip():
            return
        if is_prose_pair(key, value) and role_of_heading(key) is None:
            return  # a sentence with a colon: left to the agent as a passage
        nk = norm_key(key)
        if nk in DATE_KEYS and not self.r.date and date_in(value):
            self.r.date, self.r.date_source = date_in(value), f"'{key}' field"
        if nk in REASON_KEYS and self._pending_reason:
            for f in self._pending_reason:
                f.why = _short(clean(value))
            self._pending_reason.clear()
        if nk in REASON_KEYS and self._decision_open and self.r.decision:
            self.r.decision = _short(f"{self.r.decision} ({clean(value)})")
            self._decision_open = False
            return
        if nk in DECISION_KEYS:
            self.r.decision = clean(value)
            self._decision_open = True
            verdict = status_failed(value)
            if verdict or nk == "decision" and norm_key(value) in ("no go", "fail", "failed"):
                self.fail(f"{key}: {clean(value)}", None, line)
            elif norm_key(value).startswith("inconclusive"):
                self.r.questions.append(f"Inconclusive decision: {clean(value)}")
            return
        if nk in STATUS_KEYS and status_failed(value):
            self.fail(f"{key} {clean(value)}", None, line)
            return
        key_role = role_of_heading(key) if len(key.split()) <= 4 else None
        if key_role in LIST_ROLES and role not in LIST_ROLES:
            if key_role == "failed" and is_role_phrase(key):
                what, why = split_failure(clean(value))
                self.fail(what, why, line)
            elif key_role == "failed":
                self.fail(clean(key), clean(value), line)
            else:
                self._list(key_role).append(_short(clean(value)))
            return
        if role == "failed":
            self.fail(key, clean(value), line)
            return
        if role in ("worked", "lessons", "questions", "quirks"):
            self._list(role).append(_short(f"{clean(key)}: {clean(value)}"))
            return
        if any(w in nk.split() for w in PROBLEM_WORDS):
            self.fail(clean(key), clean(value), line)
            return
        if nk in ("oom recoveries", "ooms") and (parse_number(value) or (0, None))[0] > 0:
            self.r.quirks.append(f"{clean(value)} out-of-memory recoveries during the run")
        self.put(key, value, role)
        self.inline(value, keep_unknown=True)

    def _list(self, role: str) -> list[str]:
        return {
            "worked": self.r.worked,
            "lessons": self.r.lessons,
            "questions": self.r.questions,
            "quirks": self.r.quirks,
            "setup": self.r.tried,
            "results": self.r.findings,
        }.get(role, self.r.other)

    def item(self, it: Item, role: str | None, bullet: bool) -> None:
        text = _short(it.text)
        if role not in LIST_ROLES:
            self.inline(text, keep_unknown=False)
            if not re.sub(r"[\s,;.]+", "", INLINE.sub("", text)):
                return  # nothing but key=value pairs, now in parameters
        if not bullet and not self.prose_items:
            return
        if it.mark == "fail" or (role == "failed" and it.mark != "ok"):
            what, why = split_failure(text)
            self.fail(what, why, it.line)
        elif it.mark == "ok" and role not in ("lessons", "questions", "quirks"):
            self.r.worked.append(text)
        elif role == "decision":
            self.r.findings.append(text)
        elif (role is None or not self.prose_items) and not bullet:
            return
        elif role in ("setup", "results") and not bullet:
            return
        else:
            self._list(role or "").append(text)

    # -- tables ----------------------------------------------------------------------------
    def table(self, t: Table, role: str | None) -> None:
        hdr = [norm_key(h) for h in t.header]
        what_col = next((i for i, h in enumerate(hdr) if h in WHAT_COLS), None)
        why_col = next((i for i, h in enumerate(hdr) if h in WHY_COLS), None)
        if what_col is not None and why_col is not None:
            lesson_col = next((i for i, h in enumerate(hdr) if h in LESSON_COLS), None)
            for n, row in enumerate(t.rows, start=1):
                lesson = row[lesson_col] if lesson_col is not None else None
                self.fail(row[what_col], row[why_col] or None, t.line + 1 + n, lesson)
            return
        first_is_key = bool(hdr) and hdr[0] in KEY_COLS
        if first_is_key and len(hdr) >= 2 and (hdr[1] in VALUE_COLS or len(hdr) == 2):
            for n, row in enumerate(t.rows, start=1):
                self.pair(row[0], row[1], role, t.line + 1 + n)
            return
        if first_is_key and len(hdr) >= 3 and not self._rows_are_runs(hdr):
            for col in range(1, len(hdr)):
                cells = {row[0]: row[col] for row in t.rows if row[0]}
                self.run(t.header[col], cells, t.line, role)
            return
        for n, row in enumerate(t.rows, start=1):
            cells = dict(zip(t.header, row, strict=False))
            named = hdr[0] in RUN_KEY_COLS or not parse_number(row[0])
            label = row[0] if named else f"{t.header[0]}={row[0]}"
            self.run(label, cells, t.line + 1 + n, role)

    def _rows_are_runs(self, hdr: list[str]) -> bool:
        """`Config | time (ms) | GB/s`: the first column names runs, the others are measures."""
        return hdr[0] in RUN_KEY_COLS or any(self.focus.classify(h) for h in hdr[1:])

    def run(self, label: str, cells: dict[str, str], line: int | None, role: str | None) -> None:
        run = Run(clean(label) or "?", line)
        for key, value in INLINE.findall(run.label):  # `BLOCK=4096` under a Config column
            cls = self.focus.classify(key)
            if cls and cls[0] == "parameter":
                run.parameters.setdefault(cls[1], value.strip("\"'"))
        notes: list[str] = []
        failing_cell = None
        for col, raw in cells.items():
            value = clean(raw)
            if not value:
                continue
            nk = norm_key(col)
            if nk in STATUS_COLS:
                run.status = value
                continue
            if nk in NOTE_COLS:
                notes.append(value)
                continue
            if nk in CODE_COLS:
                notes.append(f"{clean(col)} {value}")
                continue
            if nk in ("oom retries", "oom recoveries") and (parse_number(value) or (0, None))[0]:
                self.r.quirks.append(f"{run.label}: {value} out-of-memory retries")
            cls = self.focus.classify(col)
            if cls and cls[0] == "metric":
                unit = unit_of_key(col)
                parsed = parse_number(value)
                if parsed is None and status_failed(value):
                    failing_cell = f"{clean(col)} {value}"
                if unit and parsed and parsed[1] is None and len(value.split()) == 1:
                    value = f"{value} {unit}"
                run.metrics.setdefault(self.focus.metric_name(cls[1], value, col), value)
            elif cls:
                run.parameters.setdefault(cls[1], value)
            else:
                run.other[clean(col)] = value
        verdict = status_failed(run.status) if run.status else None
        run.failed = bool(verdict) or failing_cell is not None or (role == "failed" and not verdict)
        if run.failed:
            reasons = [x for x in (*notes, failing_cell) if x]
            why = "; ".join(dict.fromkeys(reasons))
            if run.status and run.status.lower() not in why.lower():
                why = f"{run.status}: {why}" if why else run.status
            run.why = why or None
            what = run.label
            extra = ", ".join(
                f"{k}={v}" for k, v in run.parameters.items() if not names_value(what, v)
            )
            self.fail(f"{what} ({extra})" if extra else what, run.why, line)
        elif notes:
            run.other["notes"] = "; ".join(notes)
        self.r.runs.append(run)

    # -- whole documents -------------------------------------------------------------------
    def section(self, s: Section) -> None:
        self._pending_reason = []
        self._decision_open = False
        role = s.role
        if role == "setup" and s.title and s.level > 1:
            self.inline(s.title, keep_unknown=False)
        for p in s.pairs:
            self.pair(p.key, p.value, role, p.line)
        for t in s.tables:
            self.table(t, role)
        for it in s.items:
            self.item(it, role, bullet=True)
        for it in s.paragraphs:
            self.item(it, role, bullet=False)
        for code in s.code:
            self.code(code.lines)
        self._pending_reason = []

    def code(self, lines: list[str]) -> None:
        """Nsight Compute tables pasted in a code block: `Name   unit   value` columns."""
        for text in lines:
            cols = re.split(r"\s{2,}", text.strip())
            if len(cols) == 3 and parse_number(cols[2]) and self.focus.classify(cols[0]):
                unit = cols[1] if cols[1] not in ("", "-") else ""
                self.put(cols[0], f"{cols[2]} {unit}".strip(), "results")
            elif len(cols) == 2 and parse_number(cols[1]) and self.focus.classify(cols[0]):
                self.put(cols[0], cols[1], "results")

    def finish(self, path_hint: str) -> Report:
        r = self.r
        if not r.date:
            found = date_in(r.title) or date_in(path_hint)
            if found:
                r.date, r.date_source = found, "title or file name"
        keys = set(r.parameters) | set(r.metrics)
        for run in r.runs:
            keys |= set(run.parameters) | set(run.metrics)
        for group, members in self.focus.groups.items():
            hit = bool(keys & set(members)) if members else bool(r.quirks)
            (r.focus_found if hit else r.focus_missing).append(group)
        for name in ("tried", "worked", "findings", "lessons", "questions", "quirks", "other"):
            setattr(r, name, list(dict.fromkeys(getattr(r, name))))
        return r


def from_markdown(doc: Doc, report: Report, focus: Focus) -> Report:
    ex = Extractor(report, focus)
    if doc.title:
        report.title = doc.title
    for s in doc.sections:
        ex.section(s)
    report.notes += doc.notes
    return ex.finish(report.path)


def from_rows(
    report: Report,
    focus: Focus,
    top: dict[str, str],
    rows: Iterable[tuple[str, dict[str, str]]],
) -> Report:
    """Structured files (runs_status.yaml, JSON): top-level fields plus one row per run."""
    ex = Extractor(report, focus)
    for key, value in top.items():
        ex.pair(key, value, None, 0)
    for label, cells in rows:
        ex.run(label, cells, None, None)
    return ex.finish(report.path)
