"""kohya-ss/sd-scripts console output: the tqdm `steps:` bar, `epoch N/M`, `saving checkpoint:`.

The bar is redrawn with carriage returns, so a tee'd log holds many bars on one physical line;
each `\\r` or `\\n` ends a segment. Older versions print `loss=` where newer print `avr_loss=`
(an average over the current epoch); both are read.
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

BAR = re.compile(
    r"steps:\s*\d+%\|[^|]*\|\s*(?P<step>\d+)/(?P<total>\d+)\s*"
    r"\[(?P<elapsed>[\d:]+)<(?P<left>[\d:?]+),\s*(?P<rate>[^,\]]*)"
    r"(?:,\s*(?:avr_loss|loss)=(?P<loss>[-+\w.]+))?\]"
)
EPOCH = re.compile(r"(?:^|\s)epoch (\d+)/(\d+)\s*$")
SAVED = re.compile(r"saving checkpoint:\s*(?P<path>\S+\.(?:safetensors|ckpt|pt))")
TOTAL = re.compile(r"total optimization steps[^:=]*[:=]\s*(\d+)")
EPOCHS = re.compile(r"num epochs[^:=]*[:=]\s*(\d+)")
ERROR = re.compile(r"^(?:\w*Error|RuntimeError|torch\.\w*Error)\b.*|.*\bout of memory\b.*")
SIGNATURE = re.compile(r"steps:\s*\d+%\||running training / |\bavr_loss=")
_CKPT_EPOCH = re.compile(r"-(\d{6})\.(?:safetensors|ckpt|pt)$")
_CKPT_STEP = re.compile(r"-step(\d{8})\.(?:safetensors|ckpt|pt)$")


def parse(text: str, state: LogState | None = None) -> LogState:
    st = state or LogState("kohya")
    segments, tail = complete_lines(text, "\r\n")
    if BAR.search(tail):
        segments.append(tail)  # a bar redrawn in place has no newline, yet is complete
    for seg in segments:
        line = seg.rstrip()
        if not line:
            continue
        if ATTEMPT_MARK.match(line):
            st.new_attempt()
            continue
        m = BAR.search(line)
        if m:
            _bar(st, m)
            continue
        e = EPOCH.search(line)
        if e:
            st.epoch, st.epochs = int(e.group(1)), int(e.group(2))
            continue
        s = SAVED.search(line)
        if s:
            path = s.group("path")
            ep, stp = _CKPT_EPOCH.search(path), _CKPT_STEP.search(path)
            st.checkpoints.append(
                {
                    "path": path,
                    "epoch": int(ep.group(1)) if ep else None,
                    "step": int(stp.group(1)) if stp else st.step,
                    "loss": st.loss,
                }
            )
            continue
        t = TOTAL.search(line)
        if t:
            st.steps = int(t.group(1))
            continue
        n = EPOCHS.search(line)
        if n:
            st.epochs = int(n.group(1))
            continue
        if ERROR.match(line.strip()):
            st.errors.append(line.strip())
            continue
        st.unparsed_lines += 1
    if st.steps and st.step is not None and st.step >= st.steps:
        st.finished = True
    return st


def _bar(st: LogState, m: re.Match[str]) -> None:
    step, total = int(m.group("step")), int(m.group("total"))
    st.steps = total
    elapsed = clock_seconds(m.group("elapsed"))
    if m.group("loss") is not None:
        loss = to_float(m.group("loss"))
        if loss is not None and step > 0:
            st.add_point(step, loss, st.epoch)
    elif step > (st.step or 0):
        st.step = step
    if step > 0:
        st.tick(step, elapsed)
    left = clock_seconds(m.group("left"))
    st.eta_s = left
