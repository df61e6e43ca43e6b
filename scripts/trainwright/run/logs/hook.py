"""Logs read through a backend's own `parse_line(line) -> {"step", "loss", "total"?, "epoch"?}`
hook (backends whose output no parser here knows, such as ai-toolkit's progress lines)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainwright.run.logs.common import ATTEMPT_MARK, LogState, complete_lines

LineParser = Callable[[str], "dict[str, Any] | None"]


def parse(text: str, parse_line: LineParser, name: str = "backend") -> LogState:
    st = LogState(name)
    segments, _tail = complete_lines(text, "\r\n")
    for seg in segments:
        line = seg.rstrip()
        if not line:
            continue
        if ATTEMPT_MARK.match(line):
            st.new_attempt()
            continue
        try:
            found = parse_line(line)
        except (ValueError, KeyError, TypeError):
            found = None
        if not found or "step" not in found or "loss" not in found:
            st.unparsed_lines += 1
            continue
        st.add_point(int(found["step"]), float(found["loss"]), found.get("epoch"))
        if found.get("total"):
            st.steps = int(found["total"])
    if st.steps and st.step is not None and st.step >= st.steps:
        st.finished = True
    return st
