"""How long this project's run takes on a rented GPU, from config.md's Estimated time.

`trainwright config` writes "about 1.4 h on RTX 4090 (...)" for a whole run; that figure is
scaled to another card by the two cards' bf16 throughput from the GPU table. A per-step figure
(LLM configs) or no config gives no estimate: the commands then ask for --hours.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from trainwright.errors import TrainwrightError
from trainwright.state.grimoire import Grimoire

_TOTAL = re.compile(r"about\s+([\d.]+)\s*(s|min|h)\s+on\s+(.+?)\s*\(", re.I)
_UNIT = {"s": 1 / 3600, "min": 1 / 60, "h": 1.0}


@dataclass
class RunEstimate:
    hours: float
    basis: str


def deadline_hours(est: RunEstimate | None, what: str = "set the deadline from") -> float:
    """The default --max-hours: half again the estimate, in whole hours, at least one."""
    if est is None:
        raise TrainwrightError(f"no whole-run estimate in config.md to {what}: give --max-hours H")
    return float(max(1, math.ceil(est.hours * 1.5)))


def _tflops(gpu: str) -> float | None:
    from trainwright.hardware.gpu import lookup_gpu

    try:
        return lookup_gpu(gpu).bf16_tflops
    except TrainwrightError:
        return None


def from_config(g: Grimoire, project: str, gpu: str | None) -> RunEstimate | None:
    """The run's hours on `gpu` from the project's config.md, or None when it does not say."""
    path = g.path_for("config", project)
    if not path.exists():
        return None
    _, data = g.read("config", project)
    text = str(data["sections"].get("", {}).get("Estimated time") or "")
    m = _TOTAL.search(text)
    if not m or "per step" in text:
        return None
    hours = float(m.group(1)) * _UNIT[m.group(2).lower()]
    on = m.group(3).strip()
    basis = f"config.md: {text.strip()}"
    if gpu:
        mine, theirs = _tflops(on), _tflops(gpu)
        if mine and theirs and _norm(on) != _norm(gpu):
            hours *= mine / theirs
            basis += f"; scaled to {gpu} by bf16 throughput ({mine:g} / {theirs:g} TFLOPS)"
    return RunEstimate(hours, basis)


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def billed(price_per_hour: float, hours: float) -> float:
    """What `hours` cost at `price_per_hour`, billed by the started minute."""
    return round(price_per_hour * math.ceil(hours * 60 - 1e-9) / 60, 2)
