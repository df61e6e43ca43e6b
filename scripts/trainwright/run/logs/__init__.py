"""Training-log parsers: the tiny backend, kohya sd-scripts, torchtune, TensorBoard event files.

`read_log(path)` detects the format from the content (not the file name) and returns a LogState.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainwright.errors import TrainwrightError
from trainwright.run.logs import hook, kohya, tensorboard, tiny, torchtune
from trainwright.run.logs.common import LogState, Point, decode

FORMATS = ("tiny", "kohya", "torchtune", "tensorboard")
TEXT_PARSERS = {"tiny": tiny, "kohya": kohya, "torchtune": torchtune}


DETECT_SAMPLE = 1 << 20  # the first MiB decides the format; the whole log only if it names none


def detect_text(text: str) -> str | None:
    for sample in (text[:DETECT_SAMPLE], text) if len(text) > DETECT_SAMPLE else (text,):
        scores = {name: len(mod.SIGNATURE.findall(sample)) for name, mod in TEXT_PARSERS.items()}
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
    st = TEXT_PARSERS[fmt].parse(text)
    garbage = text.count("\ufffd")
    if garbage:
        st.notes.append(f"{garbage} byte(s) were not text and were skipped")
    return st


def read_log(path: Path, fmt: str | None = None, line_parser: Any = None) -> LogState:
    """Parse a log file, a TensorBoard event file, or a folder of event files or DiskLogger logs.

    `line_parser` is a backend's `parse_line` hook, used when `fmt` is None and the content
    matches no known format.
    """
    if fmt is not None and fmt not in FORMATS:
        raise TrainwrightError(f"unknown log format {fmt!r}; one of: {', '.join(FORMATS)}")
    if path.is_dir():
        if fmt in (None, "tensorboard") and tensorboard.event_files(path):
            return tensorboard.parse_path(path)
        logs = sorted(path.glob("log_*.txt"), key=lambda p: p.stat().st_mtime)
        if logs:
            return read_log(logs[-1], fmt)
        raise TrainwrightError(
            f"{path}: no training log here (looked for TensorBoard event files and log_*.txt)"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TrainwrightError(f"{path}: no such log file") from None
    except OSError as exc:
        raise TrainwrightError(f"{path}: cannot be read ({exc.strerror})") from None
    if fmt == "tensorboard" or (fmt is None and tensorboard.is_event_data(data)):
        return tensorboard.to_state(tensorboard.read_events(data))
    text = decode(data)
    if fmt is None and line_parser is not None and detect_text(text) is None:
        return hook.parse(text, line_parser)
    return parse_text(text, fmt)


__all__ = ["FORMATS", "LogState", "Point", "detect_text", "parse_text", "read_log"]
