"""Read a report file safely: never more than a cap, and a reason for every file not read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 2 * 1024 * 1024
TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".yaml", ".yml", ".json"}
SNIFF = 8192


@dataclass
class Unread:
    path: Path
    reason: str


def read_text(path: Path, max_bytes: int = MAX_BYTES) -> str | Unread:
    """The file's text, or Unread with the reason (empty, binary, too large, not UTF-8, ...)."""
    if path.suffix.lower() not in TEXT_SUFFIXES:
        return Unread(path, f"not a report file type ({path.suffix or 'no extension'})")
    try:
        size = path.stat().st_size
        if size == 0:
            return Unread(path, "empty file")
        if size > max_bytes:
            return Unread(path, f"too large to read ({size:,} bytes; the cap is {max_bytes:,})")
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except PermissionError:
        return Unread(path, "permission denied")
    except IsADirectoryError:
        return Unread(path, "is a folder")
    except OSError as exc:
        return Unread(path, f"cannot be read ({exc.strerror or exc})")
    if len(data) > max_bytes:
        return Unread(path, f"too large to read (over {max_bytes:,} bytes)")
    if b"\x00" in data[:SNIFF]:
        return Unread(path, "binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return Unread(path, f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})")
    if not text.strip():
        return Unread(path, "empty file (only whitespace)")
    return text.replace("\r\n", "\n").replace("\r", "\n")
