"""Reading the rows of a text dataset (JSON Lines, JSON, CSV, parquet) without ever crashing.

Each row comes back as a Row (its file, its line or row number, the parsed object) or a
Problem (where, what kind, a plain reason); a bad line never stops the rest from being read.
Only regular files are opened: a FIFO or a device would block or never end.
"""

from __future__ import annotations

import codecs
import csv
import importlib.util
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainwright.dataset.text_columns import is_data_file
from trainwright.state.content_hash import special_kind


@dataclass(frozen=True)
class Row:
    file: Path
    where: int  # 1-based line (JSON Lines, CSV) or row number (JSON array, parquet)
    value: dict[str, Any]


@dataclass(frozen=True)
class Problem:
    file: Path
    where: int | None
    kind: str  # "parse", "not-object", "not-utf8", "long-line", "unreadable"
    reason: str


def data_files(path: Path) -> list[Path]:
    """The data files of a dataset path: itself, or every one under a folder (hidden names and
    links into loops skipped)."""
    if not path.is_dir():
        return [path]
    found = []
    for top, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(top) / f for f in sorted(files) if not f.startswith(".")]
    return [f for f in found if is_data_file(f)]


def read(file: Path, max_line: int) -> Iterator[Row | Problem]:
    try:
        kind = special_kind(os.stat(file).st_mode)
    except OSError as exc:
        yield Problem(file, None, "unreadable", f"cannot be read ({exc.strerror or exc})")
        return
    if kind:
        yield Problem(file, None, "unreadable", f"is a {kind}, not a regular file (not opened)")
        return
    suffix = file.suffix.lower()
    try:
        if suffix == ".csv":
            yield from _csv(file, max_line)
        elif suffix == ".parquet":
            yield from _parquet(file)
        elif _whole_json(file):
            yield from _json_array(file)
        else:
            yield from _json_lines(file, max_line)
    except OSError as exc:
        yield Problem(file, None, "unreadable", f"cannot be read ({exc.strerror or exc})")


def _whole_json(file: Path) -> bool:
    """One JSON document (a list of rows) rather than JSON Lines: a .json file that starts a
    list or does not hold one object a line, or a .jsonl whose first line is not JSON alone."""
    with open(file, "rb") as fh:
        head = fh.read(1 << 16).removeprefix(codecs.BOM_UTF8).lstrip()
    if not head.startswith((b"[", b"{")):
        return False
    is_json = file.suffix.lower() == ".json"
    if is_json and head.startswith(b"["):
        return True
    line, newline, _ = head.partition(b"\n")
    if not newline and len(head) == 1 << 16:  # a first line too long to judge here
        return False
    try:
        first = json.loads(line)
    except (ValueError, RecursionError):
        return True
    return is_json and not isinstance(first, dict)


def _json_lines(file: Path, max_line: int) -> Iterator[Row | Problem]:
    with open(file, "rb") as fh:
        n = 0
        while raw := fh.readline(max_line + 1):
            n += 1
            if len(raw) > max_line and not raw.endswith(b"\n"):
                while (more := fh.readline(1 << 20)) and not more.endswith(b"\n"):
                    pass
                yield Problem(file, n, "long-line", f"is longer than {max_line >> 20} MiB")
                continue
            if n == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield Problem(file, n, "not-utf8", "is not UTF-8 text")
                continue
            if text.strip():
                yield _row(file, n, text)


def _row(file: Path, n: int, text: str) -> Row | Problem:
    try:
        value = json.loads(text)
    except ValueError as exc:
        return Problem(file, n, "parse", f"is not JSON ({getattr(exc, 'msg', exc)})")
    except RecursionError:
        return Problem(file, n, "parse", "is nested too deeply to read")
    return _object(file, n, value)


def _object(file: Path, n: int, value: Any) -> Row | Problem:
    if isinstance(value, dict):
        return Row(file, n, value)
    what = type(value).__name__.replace("NoneType", "null").replace("dict", "object")
    what = {"list": "list", "str": "string", "int": "number", "float": "number"}.get(what, what)
    return Problem(file, n, "not-object", f"is a JSON {what}, not an object of columns")


def _json_array(file: Path) -> Iterator[Row | Problem]:
    try:
        data = json.loads(file.read_bytes().removeprefix(codecs.BOM_UTF8).decode("utf-8"))
    except UnicodeDecodeError:
        yield Problem(file, None, "not-utf8", "is not UTF-8 text")
        return
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        yield Problem(file, line, "parse", f"is not valid JSON ({getattr(exc, 'msg', exc)})")
        return
    except RecursionError:
        yield Problem(file, None, "parse", "is nested too deeply to read")
        return
    if not isinstance(data, list):
        yield Problem(file, None, "not-object", "holds one JSON value, not a list of rows")
        return
    for i, value in enumerate(data, 1):
        yield _object(file, i, value)


def _csv(file: Path, max_line: int) -> Iterator[Row | Problem]:
    csv.field_size_limit(max(csv.field_size_limit(), max_line))
    with open(file, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        try:
            for value in reader:
                n = reader.line_num
                if None in value or None in value.values():
                    yield Problem(file, n, "parse", "has more or fewer fields than the header")
                else:
                    yield Row(file, n, value)
        except UnicodeDecodeError:
            yield Problem(file, reader.line_num + 1, "not-utf8", "is not UTF-8 text")
        except csv.Error as exc:
            yield Problem(file, reader.line_num, "parse", f"is not CSV ({exc})")


def _parquet(file: Path) -> Iterator[Row | Problem]:
    if importlib.util.find_spec("pyarrow") is None:
        yield Problem(file, None, "unreadable", "needs pyarrow to be read (pip install pyarrow)")
        return
    import pyarrow.parquet as pq

    try:
        n = 0
        for batch in pq.ParquetFile(file).iter_batches():
            for value in batch.to_pylist():
                n += 1
                yield Row(file, n, value)
    except Exception as exc:  # noqa: BLE001  pyarrow raises its own error classes
        yield Problem(file, None, "unreadable", f"is not a readable parquet file ({exc})")
