"""Logs read through a backend's own `parse_line(line) -> {"step", "loss", "total"?, "epoch"?}`
hook (backends whose output no parser here knows, such as ai-toolkit's progress lines)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainwright.run.logs.common import LogState, log_lines

LineParser = Callable[[str], "dict[str, Any] | None"]


def parse(text: str, parse_line: LineParser, name: str = "backend") -> LogState:
    st = LogState(name)
    for line in log_lines(text, st, redraws=True):
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
