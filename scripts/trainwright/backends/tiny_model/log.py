"""The tiny backend's log: `tiny: ...` lines, key=value fields (see tiny_model/train.py)."""

from __future__ import annotations

import re

from trainwright.run.logs.common import (
    LogState,
    log_lines,
    to_float,
)

EPOCH = re.compile(r"^epoch (\d+)/(\d+)$")
SIGNATURE = re.compile(r"^tiny: (step=\d+/\d+|start backend=tiny|epoch \d+/\d+)", re.M)


def fields_of(rest: str) -> dict[str, str]:
    """`key=value` words (key: letters, digits, _); split, not a regex, so a line of any length
    costs time in proportion to it."""
    out = {}
    for word in rest.split():
        key, eq, value = word.partition("=")
        if eq and value and key and key.replace("_", "a").isalnum():
            out[key] = value
    return out


def _pair(text: str) -> tuple[int, int] | None:
    a, _, b = text.partition("/")
    return (int(a), int(b)) if a.isdigit() and b.isdigit() else None


def parse(text: str, state: LogState | None = None) -> LogState:
    st = state or LogState("tiny")
    for line in log_lines(text, st):  # plain string tests before any regex: a million lines
        if not line.startswith("tiny: "):  # stay quick
            st.unparsed_lines += 1
            continue
        rest = line[len("tiny: ") :]
        if rest.startswith("step="):
            _step_line(st, fields_of(rest))
            continue
        if rest.startswith("error "):
            st.errors.append(rest[len("error ") :])
            continue
        e = EPOCH.match(rest) if rest.startswith("epoch ") else None
        if e:
            st.epoch, st.epochs = int(e.group(1)), int(e.group(2))
            continue
        fields = fields_of(rest)
        head = rest.split(" ", 1)[0]
        if head.startswith("step="):
            _step_line(st, fields)
        elif head == "start":
            if "steps" in fields and fields["steps"].isdigit():
                st.steps = int(fields["steps"])
            if "epochs" in fields and fields["epochs"].isdigit():
                st.epochs = int(fields["epochs"])
            st.device = fields.get("device", st.device)
            if st.attempts == 0:
                st.attempts = 1
        elif head == "checkpoint":
            st.checkpoints.append(
                {
                    "path": fields.get("path"),
                    "epoch": int(fields["epoch"]) if fields.get("epoch", "").isdigit() else None,
                    "step": int(fields["step"]) if fields.get("step", "").isdigit() else None,
                    "loss": to_float(fields.get("loss", "")),
                }
            )
        elif head == "done":
            st.finished = True
            st.dry_run = fields.get("dry_run") == "yes"
    return st


def _step_line(st: LogState, fields: dict[str, str]) -> None:
    step = _pair(fields.get("step", ""))
    loss = to_float(fields.get("loss", ""))
    if step is None or loss is None:
        st.unparsed_lines += 1
        return
    epoch = _pair(fields.get("epoch", ""))
    st.steps = step[1]
    if epoch:
        st.epochs = epoch[1]
    st.add_point(step[0], loss, epoch[0] if epoch else None)
    mem = to_float(fields.get("mem_mib", ""))
    if mem is not None:
        if (st.device or "").startswith("cuda"):
            st.vram_used_gib = round(mem / 1024, 2)
        else:
            st.ram_used_gib = round(mem / 1024, 3)
    st.tick(step[0], to_float(fields.get("elapsed_s", "")))
