"""Grimoire Markdown: `- **Key**: value` lines under headings, everything else prose kept verbatim.

A document is a list of lines. Parsing records where each heading and field line is, so an update
rewrites only the value part of the lines it changes and never touches the prose around them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from trainwright.errors import StateFileError, TrainwrightError

HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
# `- **Key**: value` and the common hand-typed variant `- **Key:** value`.
FIELD = re.compile(
    r"^(?P<prefix>[ \t]{0,3}[-*][ \t]+\*\*)(?P<key>[^*\n]+?)(?P<mid>:\*\*[ \t]*|\*\*[ \t]*:[ \t]*)"
    r"(?P<value>.*?)[ \t]*$"
)
FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
PREAMBLE = ""  # the fields above the first `##` heading (under the `#` title)


@dataclass
class Field:
    key: str
    value: str
    line: int  # 1-based


@dataclass
class Section:
    title: str
    level: int
    line: int  # 1-based line of the heading; 0 for the preamble
    fields: dict[str, Field] = field(default_factory=dict)
    last_line: int = 0  # 1-based line of the last field, or of the heading


@dataclass
class Document:
    path: Path | None
    lines: list[str]
    sections: dict[str, Section]
    trailing_newline: bool = True
    title: str | None = None  # the first `# ` heading
    title_line: int = 0

    def get(self, section: str, key: str) -> str | None:
        sec = self.sections.get(section)
        if sec is None or key not in sec.fields:
            return None
        return sec.fields[key].value

    def values(self) -> dict[str, dict[str, str]]:
        """Section title -> {key: raw value}, in file order; "" is the part under the title."""
        return {t: {k: f.value for k, f in s.fields.items()} for t, s in self.sections.items()}

    def text(self) -> str:
        body = "\n".join(self.lines)
        return body + "\n" if self.trailing_newline and self.lines else body


def _where(path: Path | None) -> str:
    return str(path) if path else "<text>"


def parse_document(text: str, path: Path | None = None) -> Document:
    """Parse Markdown text; raise StateFileError (with the line) on ambiguous structure."""
    lines = text.split("\n")
    trailing = text.endswith("\n")
    if trailing:
        lines = lines[:-1]
    sections: dict[str, Section] = {PREAMBLE: Section(PREAMBLE, 0, 0)}
    current = sections[PREAMBLE]
    doc_title: str | None = None
    title_line = 0
    in_fence = False
    for idx, line in enumerate(lines, start=1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        m = HEADING.match(line)
        if m:
            title = m.group(2).strip()
            if len(m.group(1)) == 1 and doc_title is None:
                # The H1 is the document's title; the fields under it belong to the top section.
                doc_title, title_line = title, idx
                current = sections[PREAMBLE]
                current.last_line = max(current.last_line, idx)
                continue
            if title in sections:
                raise StateFileError(
                    path or _where(path),
                    f"heading '{title}' appears twice (first at line {sections[title].line}); "
                    "rename or merge one",
                    idx,
                )
            current = Section(title, len(m.group(1)), idx, last_line=idx)
            sections[title] = current
            continue
        f = FIELD.match(line)
        if f:
            key = f.group("key").strip()
            if key in current.fields:
                raise StateFileError(
                    path or _where(path),
                    f"'{key}' is set twice under '{current.title or 'the top'}' "
                    f"(first at line {current.fields[key].line})",
                    idx,
                )
            current.fields[key] = Field(key, f.group("value"), idx)
            current.last_line = idx
    if in_fence:
        raise StateFileError(
            path or _where(path), "a ``` code block is never closed (truncated file?)", len(lines)
        )
    return Document(path, lines, sections, trailing, doc_title, title_line)


def decode_state_bytes(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise StateFileError(
            path,
            f"byte 0x{data[exc.start]:02x} is not UTF-8; save the file as UTF-8 text",
            line,
        ) from None


def read_document(path: Path | str) -> Document:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StateFileError(path, "file not found") from None
    except IsADirectoryError:
        raise StateFileError(path, "is a folder, expected a Markdown file") from None
    except PermissionError:
        raise StateFileError(path, "permission denied") from None
    return parse_document(decode_state_bytes(data, path), path)


def format_value(value: object) -> str:
    """Render a Python value as the text after `**Key**: `; refuse what would break the line."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(format_value(v) for v in value)
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    if "\n" in text or "\r" in text:
        raise TrainwrightError(f"value {text!r} spans several lines; state values are one line")
    if any(ord(c) < 32 and c != "\t" for c in text):
        raise TrainwrightError(f"value {text!r} contains control characters")
    return text


def set_fields(doc: Document, updates: dict[str, dict[str, object]]) -> Document:
    """Return a new Document with the given section fields set; prose and order are kept.

    A changed key keeps its line (only the value part is rewritten); a new key goes after the last
    field of its section; a new section is appended at the end as a `##` heading.
    """
    lines = list(doc.lines)
    inserts: dict[int, list[str]] = {}  # after 1-based line n (0 = top) -> new lines
    appended: list[str] = []
    for title, fields in updates.items():
        sec = doc.sections.get(title)
        new_lines: list[str] = []
        for key, value in fields.items():
            if not key or "*" in key or ":" in key or "\n" in key:
                raise TrainwrightError(f"field name {key!r} is not allowed")
            text = format_value(value)
            if sec is not None and key in sec.fields:
                ln = sec.fields[key].line
                m = FIELD.match(lines[ln - 1])
                assert m is not None
                sep = m.group("mid").rstrip() + " "
                lines[ln - 1] = f"{m.group('prefix')}{m.group('key')}{sep}{text}".rstrip(" \t")
            else:
                new_lines.append(f"- **{key}**: {text}".rstrip(" \t"))
        if not new_lines:
            continue
        if sec is None:  # the top section ("") always exists, so this is a new heading
            appended.extend(["", f"## {title}", *new_lines])
        else:
            inserts.setdefault(sec.last_line, []).extend(new_lines)
    out: list[str] = list(inserts.get(0, []))
    for idx, line in enumerate(lines, start=1):
        out.append(line)
        out.extend(inserts.get(idx, []))
    if appended:
        while out and out[-1].strip() == "":
            out.pop()
        out.extend(appended)
    return parse_document(
        "\n".join(out) + ("\n" if doc.trailing_newline or appended else ""), doc.path
    )


BLOCK_START = "<!-- trainwright:{} -->"
BLOCK_END = "<!-- /trainwright:{} -->"


def set_block(doc: Document, section: str, block_id: str, body: str) -> Document:
    """Return a new Document whose tool-written block `block_id` holds `body`.

    The block sits between two HTML comment markers (invisible when rendered). The first time, it
    is added at the end of `section` (after its prose, before the next heading; a missing section
    is appended as `## section`); afterwards only the text between the markers is replaced, so
    whatever a person wrote around it stays as it was.
    """
    if not re.fullmatch(r"[a-z0-9-]+", block_id):
        raise TrainwrightError(f"block name {block_id!r} is not allowed")
    start, end = BLOCK_START.format(block_id), BLOCK_END.format(block_id)
    body_lines = body.rstrip("\n").split("\n") if body.strip() else []
    if any(ln.strip() in (start, end) for ln in body_lines):
        raise TrainwrightError("a block's text cannot contain its own markers")
    lines = list(doc.lines)
    idx = [i for i, ln in enumerate(lines) if ln.strip() in (start, end)]
    if idx:
        if len(idx) != 2 or lines[idx[0]].strip() != start or lines[idx[1]].strip() != end:
            raise StateFileError(
                doc.path or _where(doc.path),
                f"the markers of block '{block_id}' are damaged: restore or remove both",
                idx[0] + 1,
            )
        out = lines[: idx[0] + 1] + body_lines + lines[idx[1] :]
    else:
        sec = doc.sections.get(section)
        block = ["", start, *body_lines, end]
        if sec is None:
            out = list(lines)
            while out and out[-1].strip() == "":
                out.pop()
            out += ["", f"## {section}", *block[1:]]
        else:
            stop = len(lines)
            in_fence = False
            for i in range(max(sec.line, 1), len(lines)):
                if FENCE.match(lines[i]):
                    in_fence = not in_fence
                elif not in_fence and HEADING.match(lines[i]):
                    stop = i
                    break
            head = lines[:stop]
            while len(head) > max(sec.line, 0) and head[-1].strip() == "":
                head.pop()
            tail = lines[stop:]
            out = head + block + ([""] if tail else []) + tail
    return parse_document("\n".join(out) + "\n", doc.path)


def get_block(doc: Document, block_id: str) -> str | None:
    start, end = BLOCK_START.format(block_id), BLOCK_END.format(block_id)
    idx = [i for i, ln in enumerate(doc.lines) if ln.strip() in (start, end)]
    if len(idx) != 2:
        return None
    return "\n".join(doc.lines[idx[0] + 1 : idx[1]])
