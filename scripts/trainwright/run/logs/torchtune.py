"""torchtune: DiskLogger files (`Step 12 | loss:1.234 lr:0.0003 ...`) and the recipe's tqdm bar
(`1|12|Loss: 1.2345:  12%|...| 12/100 [00:30<03:40,  2.50s/it]`: epoch, global step, loss).

DiskLogger carries no epoch and no clock; the bar carries the epoch and the per-epoch total.
Memory figures (`peak_memory_active`, `peak_memory_reserved`) are GiB.
"""

from __future__ import annotations

import re

from trainwright.run.logs.common import (
    ATTEMPT_MARK,
    LogState,
    clock_seconds,
    complete_lines,
    to_float,
)

DISK = re.compile(r"^Step (?P<step>\d+) \| (?P<rest>.*)$")
BAR = re.compile(
    r"(?<!\d)(?P<epoch>\d+)\|(?P<step>\d+)\|Loss: (?P<loss>[-+\w.]+):\s*\d+%\|[^|]*\|\s*"
    r"(?P<n>\d+)/(?P<total>\d+)\s*\[(?P<elapsed>[\d:]+)<(?P<left>[\d:?]+)[^\]]*\]"
)
PAIR = re.compile(r"(\w+):(\S+)")
ERROR = re.compile(r"^(?:\w*Error|torch\.\w*Error)\b.*|.*\bout of memory\b.*")
SIGNATURE = re.compile(r"^Step \d+ \| loss:|(?<!\d)\d+\|\d+\|Loss: ", re.M)


def parse(text: str, state: LogState | None = None) -> LogState:
    st = state or LogState("torchtune")
    segments, tail = complete_lines(text, "\r\n")
    if BAR.search(tail):
        segments.append(tail)
    for seg in segments:
        line = seg.rstrip()
        if not line:
            continue
        if ATTEMPT_MARK.match(line):
            st.new_attempt()
            continue
        d = DISK.match(line)
        if d:
            _disk(st, int(d.group("step")), dict(PAIR.findall(d.group("rest"))))
            continue
        b = BAR.search(line)
        if b:
            step, loss = int(b.group("step")), to_float(b.group("loss"))
            epoch = int(b.group("epoch"))
            if loss is not None and step > 0:
                st.add_point(step, loss, epoch)
                st.tick(step, clock_seconds(b.group("elapsed")), per_bar=True)
            st.epoch = epoch
            st.steps_per_epoch = int(b.group("total"))
            continue
        if ERROR.match(line.strip()):
            st.errors.append(line.strip())
            continue
        st.unparsed_lines += 1
    if st.epochs and st.epoch and st.steps and st.step and st.step >= st.steps:
        st.finished = True
    return st


def _disk(st: LogState, step: int, fields: dict[str, str]) -> None:
    loss = to_float(fields.get("loss", ""))
    if loss is None:
        st.unparsed_lines += 1
        return
    prev = st.points.get(step)
    st.add_point(step, loss, prev.epoch if prev else None)
    for key in ("peak_memory_reserved", "peak_memory_active", "peak_memory_alloc"):
        mem = to_float(fields.get(key, ""))
        if mem is not None:
            st.vram_used_gib = round(mem, 2)
            break
