"""Reading a training log: each backend's own text format (its LOG_SIGNATURE and parse_log,
asked of the registry), a backend's parse_line hook, and TensorBoard event files.

`read_log(path)` detects the format from the content (not the file name) and returns a LogState.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trainwright.errors import TrainwrightError
from trainwright.run.logs import hook, tensorboard
from trainwright.run.logs.common import LogState, Point, decode

MAX_LOG_BYTES = 256 << 20  # a million-step log is under 100 MiB


def text_parsers() -> dict[str, Any]:
    """Log format name -> the backend module that reads it (asked lazily: backends import the
    LogState defined in this package)."""
    from trainwright import backends

    return backends.log_parsers()


def formats() -> list[str]:
    return [*text_parsers(), "tensorboard"]


DETECT_SAMPLE = 1 << 20  # the first MiB decides the format, else the last; never all of it


def detect_text(text: str) -> str | None:
    big = len(text) > 2 * DETECT_SAMPLE
    for sample in (text[:DETECT_SAMPLE], text[-DETECT_SAMPLE:]) if big else (text,):
        scores = {
            name: len(mod.LOG_SIGNATURE.findall(sample)) for name, mod in text_parsers().items()
        }
        best = max(scores, key=lambda k: scores[k])
        if scores[best]:
            return best
    return None


def parse_text(text: str, fmt: str | None = None) -> LogState:
    fmt = fmt or detect_text(text)
    if fmt is None:
        st = LogState("unknown")
        st.unparsed_lines = sum(1 for line in text.splitlines() if line.strip())
        return st
    st = text_parsers()[fmt].parse_log(text)
    garbage = text.count("\ufffd")
    if garbage:
        st.notes.append(f"{garbage} byte(s) were not text and were skipped")
    return st


def read_log(path: Path, fmt: str | None = None, line_parser: Any = None) -> LogState:
    """Parse a log file, a TensorBoard event file, or a folder of event files or DiskLogger logs.

    `line_parser` is a backend's `parse_line` hook, used when `fmt` is None and the content
    matches no known format.
    """
    if fmt is not None and fmt not in formats():
        raise TrainwrightError(f"unknown log format {fmt!r}; one of: {', '.join(formats())}")
    if path.is_dir():
        if fmt in (None, "tensorboard") and tensorboard.event_files(path):
            return tensorboard.parse_path(path)
        logs = sorted(path.glob("log_*.txt"), key=lambda p: p.stat().st_mtime)
        if logs:
            return read_log(logs[-1], fmt)
        raise TrainwrightError(
            f"{path}: no training log here (looked for TensorBoard event files and log_*.txt)"
        )
    from trainwright.state.content_hash import NotRegular, open_regular

    try:
        with open(open_regular(path), "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_LOG_BYTES:  # a huge (or sparse) file: its end says where the run is
                fh.seek(size - MAX_LOG_BYTES)
            data = fh.read(MAX_LOG_BYTES)
    except FileNotFoundError:
        raise TrainwrightError(f"{path}: no such log file") from None
    except NotRegular as exc:
        raise TrainwrightError(f"{path}: a {exc.kind}, not a log file; not read") from None
    except OSError as exc:
        raise TrainwrightError(f"{path}: cannot be read ({exc.strerror})") from None
    if fmt == "tensorboard" or (fmt is None and tensorboard.is_event_data(data)):
        return tensorboard.to_state(tensorboard.read_events(data))
    text = decode(data)
    if fmt is None and line_parser is not None and detect_text(text) is None:
        st = hook.parse(text, line_parser)
    else:
        st = parse_text(text, fmt)
    if size > MAX_LOG_BYTES:
        st.notes.append(
            f"the log is {size:,} bytes; only its last {MAX_LOG_BYTES >> 20} MiB were read"
        )
    return st


__all__ = ["LogState", "formats", "Point", "detect_text", "parse_text", "read_log"]
