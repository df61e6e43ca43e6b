"""`retro check SUMMARY.md`: is every line of a retrospective supported by the source it cites?

Citation syntax (what `retro summarize` writes and the skill asks the agent to keep): a line cites
sources with `[n]` (or `[n, m]`, or `[n][m]`), and `n` is an entry of the summary's own
`### Sources` list, `n. \\`path\\`: ...`. A path is relative to the project root; an experiment-log
entry is `log.md#L<line>`, the entry whose heading is on that line.

For each line outside the Sources, Not read and Read these yourself sections (and the
scaffold's `Domain: ... Drawn from ...` line):
- a placeholder of the `retro summarize` scaffold (`nothing structured: read the passages of
  [1]`) is listed until the agent replaces it with what the passages say;
- a line that says no source records X (`No source records X`, `none recorded`, `nothing
  recorded`) is an absence: it is unsupported when a source mentions X, or, for a bare `none
  recorded`, when a source has passages no rule could structure that may hold what the section
  denies (a failure under What failed, a question under Open questions, anything elsewhere);
- any other line must cite a source, every cited number must be listed under Sources and
  readable, and every number and every double-quoted phrase of the line must appear in the cited
  sources. Numbers match across formats and units (3.02 TB/s = 3,020 GB/s, 90% = 0.9, 2e-4 =
  0.0002, 1,000 = 1000), to the precision the line writes them, sign ignored. A count of runs,
  sources or files (`3 runs`) is not checked: it is counted, not quoted.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainwright.errors import TrainwrightError
from trainwright.retro import markdown
from trainwright.retro.collect import log_sections
from trainwright.retro.domains import (
    domain_names,
    error_patterns,
    focus,
    norm_key,
    role_of_heading,
)
from trainwright.retro.passages import find as find_passages
from trainwright.retro.reading import Unread, read_text
from trainwright.retro.values import NUMBER, UNITS

CITE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\](?!\()")
SOURCE = re.compile(r"^\s*(\d+)\.\s+`?([^`\s]+?)`?(?::|\s|$)")
EXEMPT = {"sources", "not read", "read these yourself"}
META = re.compile(r"^Domain: .*Drawn from \d+ source")
QUOTED = re.compile(r'"([^"\n]{2,})"|“([^”\n]{2,})”')
COUNT = re.compile(r"(?<![\w.])\d+ (?:runs?|sources?|source\(s\)|files?|file\(s\)|passages?)\b")
LEAD = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")
ABSENT_OF = re.compile(
    r"\bno (?:source|report|run) (?:records?|mentions?|reports?|gives?|states?) (?P<x>[^:.;(]+)",
    re.I,
)
ABSENT = re.compile(r"\b(?:none|nothing) (?:was )?recorded\b|\bnot recorded\b", re.I)
PLACEHOLDER = re.compile(r"nothing structured: read the passages|may record them \(read them")
LINE_REF = re.compile(r"^(?P<file>.+)#L(?P<line>\d+)$")


@dataclass
class Finding:
    line: int
    text: str
    problems: list[str] = field(default_factory=list)


@dataclass
class Source:
    number: int
    path: str
    text: str | None
    error: str | None
    line_offset: int = 0
    _numbers: list[Number] | None = None
    _folded: str | None = None

    def numbers(self) -> list[Number]:
        if self._numbers is None:
            self._numbers = numbers_in(self.text or "")
        return self._numbers

    def folded(self) -> str:
        if self._folded is None:
            self._folded = _fold(self.text or "")
        return self._folded


@dataclass
class Number:
    value: float
    tol: float
    unit: str | None  # a key of values.UNITS, or None

    def base(self) -> tuple[float, float]:
        """Value and tolerance in the base unit of the unit's kind (GB/s, ms, GB, ...)."""
        factor = UNITS[self.unit][1] if self.unit else 1.0
        return self.value * factor, self.tol * factor


def numbers_in(text: str) -> list[Number]:
    out = []
    for m in NUMBER.finditer(text):
        raw = m.group("num").replace(",", "").lstrip("+-")
        try:
            value = float(raw)
        except ValueError:
            continue
        mant, _, exp = raw.lower().partition("e")
        decimals = len(mant.split(".")[1]) if "." in mant else 0
        tol = 0.5 * 10 ** (-decimals) * 10 ** int(exp or 0)
        unit = (m.group("unit") or "").lower() or None
        if unit == "k":
            value, tol, unit = value * 1000, tol * 1000, None
        out.append(Number(value, tol, unit if unit in UNITS else None))
    return out


def _decimal(factor: float) -> bool:
    """A power of ten: GB/s and TB/s rescale a bare number; GiB/s would match it by chance."""
    exp = math.log10(factor)
    return abs(exp - round(exp)) < 1e-9


class Pool:
    """The numbers of the cited sources, sorted for lookups: as written, and per unit kind."""

    def __init__(self, numbers: list[Number]) -> None:
        self.raw = sorted(n.value for n in numbers)
        self.bare = sorted(n.value for n in numbers if n.unit is None)
        self.percent = sorted(n.value for n in numbers if n.unit == "%")
        kinds: dict[str, list[float]] = {}
        for n in numbers:
            if n.unit:
                kinds.setdefault(UNITS[n.unit][0], []).append(n.base()[0])
        self.kinds = {k: sorted(v) for k, v in kinds.items()}

    @staticmethod
    def _near(values: list[float], value: float, tol: float) -> bool:
        """A value within `tol` of `value`: the claim's precision decides, not the source's."""
        slack = tol * (1 + 1e-9) + 1e-12 * abs(value)
        i = bisect.bisect_left(values, value - slack)
        return i < len(values) and values[i] <= value + slack

    def supports(self, claim: Number) -> bool:
        """Whether `claim` is among the numbers up to unit, format and its written precision."""
        if claim.unit is None:
            return self._near(self.raw, claim.value, claim.tol) or self._near(
                self.percent, claim.value * 100, claim.tol * 100
            )
        kind = UNITS[claim.unit][0]
        base, btol = claim.base()
        if self._near(self.kinds.get(kind, []), base, btol):
            return True
        bare = [(base / f, btol / f) for k, f in UNITS.values() if k == kind and _decimal(f)]
        if kind == "percent":
            bare.append((claim.value / 100, claim.tol / 100))
        return any(self._near(self.bare, v, t) for v, t in bare)


def _fold(text: str) -> str:
    text = markdown.clean(text).lower()
    for a, b in (("“", '"'), ("”", '"'), ("’", "'"), ("—", "-"), ("–", "-"), ("→", "->")):
        text = text.replace(a, b)
    return " ".join(text.split())


@dataclass
class Summary:
    lines: list[str]
    sources: dict[int, str]


def parse_summary(text: str) -> Summary:
    sources: dict[int, str] = {}
    section = ""
    for line in text.split("\n"):
        head = markdown.ATX.match(line)
        if head:
            section = norm_key(head.group(2))
            continue
        m = SOURCE.match(line)
        if section == "sources" and m:
            sources.setdefault(int(m.group(1)), m.group(2))
    return Summary(text.split("\n"), sources)


def _open_source(number: int, rel: str, bases: list[Path]) -> Source:
    ref = LINE_REF.match(rel)
    file_part = ref.group("file") if ref else rel
    inside = [b for b in bases if (b / file_part).resolve().is_relative_to(b.resolve())]
    if not inside:
        return Source(number, rel, None, f"source {number} (`{rel}`) is outside the project")
    path = next((b / file_part for b in inside if (b / file_part).is_file()), None)
    if path is None:
        return Source(number, rel, None, f"source {number} (`{rel}`) does not exist")
    text = read_text(path)
    if isinstance(text, Unread):
        return Source(number, rel, None, f"source {number} (`{rel}`) cannot be read: {text.reason}")
    if not ref:
        return Source(number, rel, text, None)
    at = int(ref.group("line"))
    body = next((b for _, line, b in log_sections(text) if line == at), None)
    if body is None:
        return Source(number, rel, None, f"source {number}: no log entry starts on line {at}")
    return Source(number, rel, body, None, at - 1)


def _terms(subject: str) -> list[str]:
    """What counts as a mention of `subject`: the words, or a focus group's keys and aliases."""
    name = norm_key(subject)
    terms = [name, name[:-1] if name.endswith("s") and not name.endswith("ss") else name]
    for dom in domain_names():
        fcs = focus(dom)
        if name in fcs.groups:
            for member in fcs.groups[name]:
                aliases = fcs.parameters.get(member) or fcs.metrics.get(member) or ()
                terms += [norm_key(a) or a.lower() for a in (member, *aliases)]
    return [t for t in dict.fromkeys(terms) if t]


def _mention(terms: list[str], src: Source) -> str | None:
    text = (src.text or "").lower().replace("_", " ")
    for term in terms:
        m = re.search(rf"(?<![\w]){re.escape(term)}(?![\w])", text)
        if m:
            line = text[: m.start()].count("\n") + 1 + src.line_offset
            return f"source {src.number} mentions '{term}' (line {line})"
    return None


QUESTION_WORDS = ("?", "todo", "to do", "next step", "open question", "unclear", "not sure")


def _relevant(section: str, text: str) -> bool:
    """Whether a passage may hold what a `none recorded` under `section` denies: failures for
    What failed, questions for Open questions, anything for the other sections."""
    role = role_of_heading(section)
    low = text.lower()
    if role == "failed":
        return any(w in low for w in (*error_patterns(), "fail", "too high", "too low", "worse"))
    if role == "questions":
        return any(w in low for w in QUESTION_WORDS)
    return True


def _absence(line: str, cited: list[Source], section: str) -> list[str]:
    m = ABSENT_OF.search(line)
    if m:
        subject = m.group("x").strip()
        hits = [h for s in cited if (h := _mention(_terms(subject), s))]
        return [f"says no source records {subject}, but {h}" for h in hits]
    out = []
    for s in cited:
        spans = [
            p for p in find_passages(s.text or "", s.line_offset) if _relevant(section, p.text)
        ]
        if spans:
            where = ", ".join(
                str(p.start) if p.start == p.end else f"{p.start}-{p.end}" for p in spans[:5]
            )
            out.append(
                f"says nothing was recorded, but source {s.number} has passages no rule "
                f"structured (lines {where}): read them"
            )
    return out


def _layout(line: str, nxt: str) -> bool:
    """Lines that state nothing: the scaffold's Domain line, a table's header and rule, a bold
    or `Label:` line standing as a heading."""
    if META.match(line) or markdown.ALIGN.match(line) or markdown.ALIGN.match(nxt):
        return True
    return bool(markdown.BOLD_LINE.match(line) or markdown.LABEL_LINE.match(line))


def check_lines(summary: Summary, bases: list[Path]) -> tuple[int, list[Finding]]:
    """(lines checked, the unsupported ones with what is unsupported)."""
    cache: dict[int, Source] = {}
    pools: dict[tuple[int, ...], Pool] = {}

    def source(n: int) -> Source | None:
        if n not in summary.sources:
            return None
        if n not in cache:
            cache[n] = _open_source(n, summary.sources[n], bases)
        return cache[n]

    checked, found = 0, []
    section, fence = "", False
    for num, raw in enumerate(summary.lines, start=1):
        line = raw.strip()
        if markdown.FENCE.match(raw):
            fence = not fence
            continue
        head = markdown.ATX.match(raw)
        if head:
            section = norm_key(head.group(2))
            continue
        if section == "sources" and (m := SOURCE.match(line)):
            listed = source(int(m.group(1)))
            if listed and listed.error:
                checked += 1
                found.append(Finding(num, line, [listed.error]))
            continue
        nxt = summary.lines[num] if num < len(summary.lines) else ""
        if fence or not line or section in EXEMPT or _layout(line, nxt):
            continue
        checked += 1
        cites = [int(n) for g in CITE.findall(line) for n in g.split(",")]
        problems: list[str] = []
        known = [s for n in dict.fromkeys(cites) if (s := source(n))]
        for n in dict.fromkeys(cites):
            if n not in summary.sources:
                listed = (
                    f"Sources lists 1-{max(summary.sources)}"
                    if summary.sources
                    else ("the summary has no Sources list")
                )
                problems.append(f"cites [{n}], which is not a source ({listed})")
        problems += [s.error for s in known if s.error]
        readable = [s for s in known if s.text is not None]
        if PLACEHOLDER.search(line):
            problems.append(
                "a scaffold placeholder: read the passages it names, then write what they say "
                "(or none recorded)"
            )
        elif ABSENT_OF.search(line) or ABSENT.search(line):
            pool = readable or [s for n in summary.sources if (s := source(n)) and s.text]
            problems += _absence(line, pool, section)
        elif not cites:
            problems.append("cites no source")
        elif readable:
            key = tuple(s.number for s in readable)
            if key not in pools:
                pools[key] = Pool([n for s in readable for n in s.numbers()])
            problems += _unsupported(line, readable, pools[key])
        if problems:
            found.append(Finding(num, line, problems))
    return checked, found


def _unsupported(line: str, sources: list[Source], pool: Pool) -> list[str]:
    body = COUNT.sub(" ", LEAD.sub("", CITE.sub(" ", line)))
    where = ", ".join(f"[{s.number}]" for s in sources)
    out = []
    for m in NUMBER.finditer(body):
        claim = numbers_in(m.group(0))
        if claim and not pool.supports(claim[0]):
            unit = m.group("unit") if claim[0].unit else ""
            gap = "" if unit in ("", "%") else " "
            out.append(f"{m.group('num')}{gap}{unit} is not in {where}")
    for m in QUOTED.finditer(body):
        phrase = m.group(1) or m.group(2)
        if not any(_fold(phrase) in s.folded() for s in sources):
            out.append(f'"{phrase}" is not in {where}')
    return out


def check(path: Path, bases: list[Path]) -> dict[str, Any]:
    if not path.is_file():
        raise TrainwrightError(f"{path}: no such summary file")
    text = read_text(path)
    if isinstance(text, Unread):
        raise TrainwrightError(f"{path}: cannot be read as a summary: {text.reason}")
    summary = parse_summary(text)
    checked, found = check_lines(summary, bases)
    return {
        "summary": str(path),
        "sources": {str(k): v for k, v in sorted(summary.sources.items())},
        "checked": checked,
        "supported": not found,
        "unsupported": [asdict(f) for f in found],
    }
