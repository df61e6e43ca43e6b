"""The passages of a Markdown or text report that no rule could structure: the agent reads them.

A line is structured when it is a heading, a table row, a code fence, a short `key: value` field,
or a line under a heading whose role keeps its items whole (What failed, What worked, Lessons,
Open questions, Quirks). Everything else (sentences, bullets of prose, code blocks) is grouped
into passages of consecutive lines, each with its line numbers and the heading above it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from trainwright.retro import markdown
from trainwright.retro.domains import role_of_heading

MAX_TEXT = 1500
FIELD_WORDS = 6  # a value longer than this is a sentence, not a field
KEY_WORDS = 4


@dataclass
class Passage:
    start: int
    end: int
    heading: str
    text: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_field(line: str) -> bool:
    """`lr: 1e-4`, `**Peak memory**: 14.1 GB`: a short value under a short key."""
    body = markdown.BULLET.match(line)
    pair = markdown.parse_pair(body.group(2) if body else line)
    if pair is None:
        return False
    key, value = pair
    return len(key.split()) <= KEY_WORDS and len(value.split()) <= FIELD_WORDS


def is_prose_pair(key: str, value: str) -> bool:
    """`Rank 16 is the sweet spot: 32 buys ...`: a sentence with a colon, not a field."""
    return len(key.split()) > KEY_WORDS - 1 and len(value.split()) > FIELD_WORDS


def _table_row(lines: list[str], i: int) -> bool:
    line = lines[i]
    if "|" not in line:
        return False
    if line.strip().startswith("|") or markdown.ALIGN.match(line):
        return True
    near = [lines[j] for j in (i - 1, i + 1) if 0 <= j < len(lines)]
    return any(markdown.ALIGN.match(x) or x.strip().startswith("|") for x in near)


def find(text: str, offset: int = 0) -> list[Passage]:
    """Passages of `text`; line numbers are 1-based, plus `offset` (a log entry's first line)."""
    lines = text.split("\n")
    out: list[Passage] = []
    heading = ""
    roles: list[tuple[int, str | None]] = []  # (level, role) of the headings above
    cur: list[tuple[int, str]] = []
    fence: str | None = None

    def enter(title: str, level: int) -> None:
        nonlocal heading
        heading = markdown.clean(title)
        while roles and roles[-1][0] >= level:
            roles.pop()
        inherited = roles[-1][1] if roles else None
        roles.append((level, role_of_heading(heading) or inherited))

    def flush() -> None:
        if cur:
            body = "\n".join(t for _, t in cur).strip()
            if len(body) > MAX_TEXT:
                body = body[: MAX_TEXT - 1].rstrip() + "…"
            if body:
                out.append(Passage(cur[0][0] + offset, cur[-1][0] + offset, heading, body))
            cur.clear()

    for i, line in enumerate(lines):
        num = i + 1
        m = markdown.FENCE.match(line)
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            else:
                cur.append((num, line.rstrip()))
            continue
        if m:
            flush()
            fence = m.group(1)[0] * len(m.group(1))
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        atx = markdown.ATX.match(line)
        if atx or (line.strip() and markdown.SETEXT.match(nxt) and "|" not in line):
            flush()
            level = len(atx.group(1)) if atx else (1 if nxt.strip().startswith("=") else 2)
            enter(atx.group(2) if atx else line, level)
            continue
        if markdown.SETEXT.match(line) and i and lines[i - 1].strip():
            continue
        label = markdown.BOLD_LINE.match(line) or markdown.LABEL_LINE.match(line)
        if label and not markdown.BULLET.match(line):
            flush()
            enter(label.group(1), (roles[-1][0] if roles else 0) + 1)
            continue
        kept = bool(roles) and roles[-1][1] in markdown.LIST_ROLES
        if not line.strip() or kept or _table_row(lines, i) or is_field(line):
            flush()
            continue
        if markdown.BULLET.match(line) and cur and not markdown.BULLET.match(cur[-1][1]):
            flush()
        cur.append((num, line.rstrip()))
    flush()
    return out
