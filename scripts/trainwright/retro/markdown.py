"""A forgiving reader for Markdown written by people: headings (ATX, setext, bold lines, `Label:`),
pipe tables (with or without alignment rows, ragged rows), lists, `key: value` lines, code blocks.

It never raises on odd input; what it could not make sense of goes into `notes`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from trainwright.retro.domains import role_of_heading

ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SETEXT = re.compile(r"^ {0,3}(=+|-{2,})\s*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)")
BULLET = re.compile(r"^(\s*)(?:[-*+•·]|\d{1,3}[.)])\s+(.*)$")
ALIGN = re.compile(r"^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$")
BOLD_LINE = re.compile(r"^\s*(?:\*\*|__)(.+?)(?:\*\*|__)\s*:?\s*$")
LABEL_LINE = re.compile(r"^\s*([A-Za-z][\w '’/&-]{1,40}?)\s*:\s*$")
BOLD_PAIR = re.compile(r"^\*\*(?P<k>[^*]+?)(?::\*\*|\*\*\s*:)\s*(?P<v>.*)$")
PLAIN_PAIR = re.compile(r"^(?P<k>[A-Za-z%µ][\w %/().#'µ-]{0,48}?)\s*(?::|=)\s+(?P<v>\S.*)$")
CHECKBOX = re.compile(r"^\[( |x|X)\]\s+")
OK_MARKS = ("✅", "✔", "✓", "👍")
FAIL_MARKS = ("❌", "✗", "✘", "👎", "⚠")
LIST_ROLES = ("failed", "worked", "lessons", "questions", "quirks")
EMPTY_VALUES = {"", "-", "—", "–", "none", "n/a", "na", "nothing", "tbd", "null", "?", "no issues"}


_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_STRONG = re.compile(r"(\*\*|__)(.+?)\1")
_EMPH = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")


def clean(text: str) -> str:
    """Drop inline Markdown: emphasis, code ticks, links (keep their text)."""
    if "[" in text:
        text = _LINK.sub(r"\1", text)
    if "*" in text or "__" in text:
        text = _EMPH.sub(r"\1", _STRONG.sub(r"\2", text))
    return " ".join(text.replace("`", "").split())


def is_empty_value(value: str) -> bool:
    return clean(value).strip(" .").lower() in EMPTY_VALUES


@dataclass
class Pair:
    key: str
    value: str
    line: int


@dataclass
class Item:
    text: str
    line: int
    mark: str | None = None  # "ok" or "fail" when the line carries a check mark or emoji


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    line: int


@dataclass
class Code:
    lang: str
    lines: list[str]
    line: int


@dataclass
class Section:
    title: str
    level: int
    line: int
    role: str | None = None
    pairs: list[Pair] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    paragraphs: list[Item] = field(default_factory=list)
    code: list[Code] = field(default_factory=list)


@dataclass
class Doc:
    title: str | None
    sections: list[Section]
    notes: list[str] = field(default_factory=list)

    def has_content(self) -> bool:
        return any(
            s.pairs or s.items or s.tables or s.code or (s.title and s.level) for s in self.sections
        )


def split_row(line: str) -> list[str]:
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    cells = re.split(r"(?<!\\)\|", s)
    return [clean(c.replace("\\|", "|")) for c in cells]


def parse_pair(text: str) -> tuple[str, str] | None:
    """`**Key**: value`, `**Key:** value`, `Key: value`, `Key = value` -> (key, value)."""
    m = BOLD_PAIR.match(text.strip())
    if m:
        key, value = clean(m.group("k")).rstrip(":"), m.group("v").strip()
        return (key, clean(value)) if key else None
    m = PLAIN_PAIR.match(text.strip())
    if not m:
        return None
    key = clean(m.group("k"))
    if len(key.split()) > 6 or key.lower() in ("http", "https", "note", "e.g", "i.e"):
        return None
    return key, clean(m.group("v"))


def _mark(text: str) -> tuple[str, str | None]:
    t = text.strip()
    m = CHECKBOX.match(t)
    if m:
        return t[m.end() :], "ok" if m.group(1) in "xX" else None
    for mark in OK_MARKS:
        if t.startswith(mark):
            return t[len(mark) :].lstrip(" \ufe0f:-"), "ok"
    for mark in FAIL_MARKS:
        if t.startswith(mark):
            return t[len(mark) :].lstrip(" \ufe0f:-"), "fail"
    return t, None


class _Reader:
    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.doc = Doc(None, [Section("", 0, 0)])
        self.stack: list[Section] = []
        self.real_level = 0

    @property
    def cur(self) -> Section:
        return self.doc.sections[-1]

    def heading(self, title: str, level: int, line: int) -> None:
        title = clean(title).rstrip(":").strip()
        if level == 1 and self.doc.title is None:
            self.doc.title = title
        while self.stack and self.stack[-1].level >= level:
            self.stack.pop()
        role = None if self.doc.title == title and level == 1 else role_of_heading(title)
        if role is None and self.stack:
            role = self.stack[-1].role
        sec = Section(title, level, line, role)
        self.stack.append(sec)
        self.doc.sections.append(sec)

    def run(self) -> Doc:
        lines = self.lines
        i, n = 0, len(lines)
        para: list[tuple[int, str]] = []

        def flush() -> None:
            if para:
                text = " ".join(t.strip() for _, t in para)
                self.add_text(text, para[0][0], bullet=False)
                para.clear()

        while i < n:
            line, num = lines[i], i + 1
            nxt = lines[i + 1] if i + 1 < n else ""
            fence = FENCE.match(line)
            if fence:
                flush()
                mark = fence.group(1)
                body, j = [], i + 1
                while j < n and not lines[j].strip().startswith(mark[0] * len(mark)):
                    body.append(lines[j])
                    j += 1
                if j >= n:
                    self.doc.notes.append(f"line {num}: a code block is never closed")
                self.cur.code.append(Code(fence.group(2) or "", body, num))
                i = j + 1
                continue
            m = ATX.match(line)
            if m:
                flush()
                self.real_level = len(m.group(1))
                self.heading(m.group(2), self.real_level, num)
                i += 1
                continue
            if (
                line.strip()
                and SETEXT.match(nxt)
                and not para
                and not BULLET.match(line)
                and "|" not in line
            ):
                self.real_level = 1 if nxt.strip().startswith("=") else 2
                self.heading(line, self.real_level, num)
                i += 2
                continue
            if "|" in line and (line.strip().startswith("|") or ALIGN.match(nxt)):
                flush()
                i = self.table(i)
                continue
            b = BOLD_LINE.match(line) or LABEL_LINE.match(line)
            if b and not BULLET.match(line) and role_of_heading(b.group(1)):
                flush()
                self.heading(b.group(1), min(max(self.real_level, 1) + 1, 6), num)
                i += 1
                continue
            bm = BULLET.match(line)
            if bm:
                flush()
                text, j = bm.group(2), i + 1
                indent = len(bm.group(1))
                while j < n and lines[j].strip() and not BULLET.match(lines[j]):
                    cont = lines[j]
                    if ATX.match(cont) or FENCE.match(cont) or cont.strip().startswith("|"):
                        break
                    if len(cont) - len(cont.lstrip()) <= indent and not cont.startswith(" "):
                        break
                    text += " " + cont.strip()
                    j += 1
                self.add_text(text, num, bullet=True)
                i = j
                continue
            if not line.strip():
                flush()
                i += 1
                continue
            if parse_pair(line) and not para:
                self.add_text(line, num, bullet=False)
                i += 1
                continue
            para.append((num, line))
            i += 1
        flush()
        return self.doc

    def add_text(self, raw: str, line: int, bullet: bool) -> None:
        text, mark = _mark(raw)
        pair = parse_pair(text)
        sec = self.cur
        if pair and mark is None and not (bullet and sec.role in LIST_ROLES):
            sec.pairs.append(Pair(pair[0], pair[1], line))
            return
        item = Item(clean(text), line, mark)
        if not item.text:
            return
        (sec.items if bullet else sec.paragraphs).append(item)

    def table(self, start: int) -> int:
        lines = self.lines
        j = start
        rows: list[tuple[int, str]] = []
        while j < len(lines) and "|" in lines[j] and lines[j].strip():
            rows.append((j + 1, lines[j]))
            j += 1
        has_align = len(rows) > 1 and ALIGN.match(rows[1][1]) is not None
        if not has_align and not rows[0][1].strip().startswith("|"):
            self.add_text(rows[0][1], rows[0][0], bullet=False)
            return start + 1
        header = split_row(rows[0][1])
        body = [split_row(r) for _, r in rows[(2 if has_align else 1) :] if not ALIGN.match(r)]
        width = len(header)
        ragged = sum(1 for r in body if len(r) != width)
        if ragged:
            self.doc.notes.append(
                f"line {rows[0][0]}: table has {ragged} row(s) with a different cell count "
                f"than its {width}-column header (padded or cut)"
            )
        body = [(r + [""] * width)[:width] for r in body]
        body = [r for r in body if any(c for c in r)]
        if not has_align:
            self.doc.notes.append(f"line {rows[0][0]}: table without an alignment row")
        self.cur.tables.append(Table(header, body, rows[0][0]))
        return j


def parse(text: str) -> Doc:
    return _Reader(text).run()
