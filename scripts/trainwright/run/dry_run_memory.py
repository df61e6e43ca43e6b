"""Gate 4's memory measurement: the peak of the dry run's real steps beside Gate 2's estimate.

Before the run: the card's free memory (another process may hold some) and, where nvidia-smi
exists, a poller of the trainer's process tree. The trainer's own `trainwright-peak` line wins
over the poll (torch's figures are exact; Python trainers get the line from run/peak_site). After
the run: the figures go to progress.md (Dry Run section) and config.md (Measured VRAM), the
measured/estimated ratio to the GPU's entry in studio.md, and plain words when the peak is above
the estimate by more than 5% or leaves less than the margin free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trainwright.hardware import measured
from trainwright.hardware.gpu import GPU, probe_gpus
from trainwright.hardware.gpu_poll import Poller
from trainwright.hardware.measured import Peak
from trainwright.state.grimoire import Grimoire

SITE = Path(__file__).resolve().parent / "peak_site"


@dataclass
class Watch:
    gpus: list[GPU]
    poller: Poller | None = None

    def on_start(self, proc: Any) -> None:
        if self.gpus:
            self.poller = Poller(proc.pid)

    def stop(self) -> float | None:
        return self.poller.stop() if self.poller else None


def start() -> Watch:
    probe = probe_gpus()
    return Watch(probe.gpus if probe.found else [])


def child_env() -> dict[str, str]:
    """PYTHONPATH with the peak reporter first; the caller's PYTHONPATH kept after it."""
    rest = os.environ.get("PYTHONPATH")
    path = str(SITE) + (os.pathsep + rest if rest else "")
    return {"PYTHONPATH": path, "TRAINWRIGHT_PEAK_REPORT": "1"}


def _card(gpus: list[GPU], name: str | None) -> GPU | None:
    from trainwright.hardware.gpu import _normal

    for gpu in gpus:
        if name and _normal(gpu.name) == _normal(name):
            return gpu
    return gpus[0] if gpus else None


def peak_of(text: str, watch: Watch, polled_mib: float | None) -> Peak | None:
    """The trainer's own line, else the poll; with the card's size and its free memory at the
    start filled in from nvidia-smi where the line lacks them."""
    peak = measured.parse_peak(text)
    if peak is None and polled_mib is not None:
        peak = Peak("nvml", process_mib=polled_mib)
    if peak is None or not peak.on_gpu:
        return peak
    card = _card(watch.gpus, peak.gpu)
    if card is not None:
        peak = replace(
            peak,
            gpu=peak.gpu or card.name,
            total_mib=peak.total_mib or float(card.memory_total_mib),
            free_mib=peak.free_mib
            if peak.free_mib is not None
            else float(card.memory_total_mib - card.memory_used_mib),
        )
    return peak


def project_estimate(g: Grimoire, project: str) -> tuple[Any, Any, Any]:
    """(model, setup, estimate) the way Gate 2 makes them, with the batch in the config now."""
    import json
    from dataclasses import replace as dc_replace

    from trainwright import backends
    from trainwright.backends.config_gate import _files
    from trainwright.backends.configure import replan, vram_setup
    from trainwright.hardware.vram import estimate

    paths = _files(g, project)
    record = json.loads(paths[-1].read_text(encoding="utf-8"))
    backend = backends.get(record["backend"])
    plan = replan(record)
    batch, accumulation = backends.batch_settings(backend, paths[0])
    plan = dc_replace(plan, batch_size=batch, gradient_accumulation=accumulation)
    setup = vram_setup(plan, backend, "cuda")
    return plan.model, setup, estimate(plan.model, setup)


@dataclass
class Memory:
    progress: dict[str, object] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    over_budget: bool = False
    details: dict[str, Any] = field(default_factory=dict)


def assess(g: Grimoire, project: str, peak: Peak | None, batch: int) -> Memory:
    """Record the measured peak (progress.md, config.md, studio.md) and Gate 4's words on it."""
    from trainwright.errors import TrainwrightError

    out = Memory()
    if peak is None:
        return out
    out.progress["Measured peak"] = peak.describe()
    out.details["measured"] = {"line": peak.line(), "device": peak.device}
    if not peak.on_gpu:
        return out
    try:
        model, setup, est = project_estimate(g, project)
    except (TrainwrightError, KeyError, ValueError, OSError) as exc:
        out.reasons.append(f"measured peak {peak.describe()}; no estimate to compare: {exc}")
        g.update("config", {"": {"Measured VRAM": peak.describe()}}, project)
        return out
    comp = measured.compare(peak, est, model, setup)
    if comp is None:
        return out
    kind = "reserved" if peak.device == "cuda" else "total"
    out.progress["Estimated peak"] = f"{comp.estimate_gib:.2f} GiB {kind} (Gate 2's estimate)"
    out.progress["Measured/estimated"] = round(comp.ratio, 3)
    g.update(
        "config",
        {"": {"Measured VRAM": f"{peak.describe()}; x{comp.ratio:.2f} the estimate"}},
        project,
    )
    if peak.gpu:
        total = None if peak.total_mib is None else peak.total_mib / 1024
        out.details["studio_entry"] = measured.record_ratio(g, peak.gpu, total, comp.ratio)
    out.reasons, out.fixes = measured.verdict_lines(comp, batch)
    out.over_budget = comp.over_budget
    out.details["memory"] = comp.as_dict()
    return out
