"""Measured memory beside the estimate: the peak line a trainer prints, the comparison Gate 4
makes with Gate 2's estimate, and the measured/estimated ratio kept per GPU in studio.md.

A trainer on CUDA prints one line at the end of its steps:
    trainwright-peak device=cuda allocated_mib=... reserved_mib=... gpu="NAME" total_mib=...
(torch.cuda.max_memory_allocated / max_memory_reserved). On the CPU the line says device=cpu and
carries the process's own peak (rss_mib); it is never treated as VRAM. A program that cannot
print the line is polled through nvidia-smi instead (hardware/gpu_poll.py: device=nvml, the
process's used memory as the driver sees it, CUDA context included).

The comparison is like for like: torch's reserved peak against the estimate's reserved figure,
a polled figure (context included) against the estimate's total. The card's budget is its memory
less the 20% margin, or the memory that was free when the run started if another process held
some.
"""

from __future__ import annotations

import datetime as _dt
import shlex
from dataclasses import dataclass, replace
from typing import Any

from trainwright.hardware.vram import GIB, SAFETY_MARGIN

PREFIX = "trainwright-peak"
OVER_ESTIMATE = 1.05  # measured above estimate x this: Gate 4 says the estimate was low
MIB = 2**20
# What an idle card shows in use (the driver, a display, this run's own CUDA context): below
# this, nothing else is counted as holding the GPU.
IDLE_HELD_GIB = 1.5
RATIO_FIELD, RATIO_DATE_FIELD = "Measured/estimated", "Measured on"


@dataclass(frozen=True)
class Peak:
    device: str  # cuda | nvml | cpu
    allocated_mib: float | None = None
    reserved_mib: float | None = None
    process_mib: float | None = None  # nvml: the driver's figure; cpu: the process's own peak
    gpu: str | None = None
    total_mib: float | None = None
    free_mib: float | None = None  # free on the card when the run started

    @property
    def on_gpu(self) -> bool:
        return self.device in ("cuda", "nvml")

    @property
    def card_mib(self) -> float | None:
        """What the card had to give: the reserved peak (torch) or the polled figure."""
        if self.device == "cuda":
            return self.reserved_mib
        return self.process_mib if self.device == "nvml" else None

    def line(self) -> str:
        parts = [PREFIX, f"device={self.device}"]
        for key in ("allocated_mib", "reserved_mib", "process_mib", "total_mib", "free_mib"):
            value = getattr(self, key)
            if value is not None:
                parts.append(f"{key}={value:.1f}")
        if self.gpu:
            parts.append(f"gpu={shlex.quote(self.gpu)}")
        return " ".join(parts)

    def describe(self) -> str:
        if self.device == "cpu":
            return f"{(self.process_mib or 0) / 1024:.2f} GiB of process memory (CPU run, not VRAM)"
        where = f" on {self.gpu}" if self.gpu else ""
        if self.device == "cuda":
            return (
                f"{(self.reserved_mib or 0) / 1024:.2f} GiB reserved, "
                f"{(self.allocated_mib or 0) / 1024:.2f} GiB allocated{where} (torch)"
            )
        mib = self.process_mib or 0
        return f"{mib / 1024:.2f} GiB{where} (nvidia-smi, CUDA context included)"


def parse_peak(text: str) -> Peak | None:
    """The last peak line in a trainer's output, or None; a garbled line is ignored."""
    found = None
    for raw in text.splitlines():
        at = raw.find(PREFIX + " ")
        if at < 0:
            continue
        try:
            words = shlex.split(raw[at + len(PREFIX) :])
        except ValueError:
            continue
        fields = dict(w.split("=", 1) for w in words if "=" in w)
        device = fields.get("device")
        if device not in ("cuda", "nvml", "cpu"):
            continue
        try:
            nums = {
                k: float(fields[k])
                for k in ("allocated_mib", "reserved_mib", "process_mib", "total_mib", "free_mib")
                if k in fields
            }
        except ValueError:
            continue
        if any(not 0 <= v < 1 << 40 for v in nums.values()):
            continue
        peak = Peak(device, gpu=fields.get("gpu"), **nums)
        if peak.card_mib is None and peak.process_mib is None:
            continue
        found = peak
    return found


def torch_peak(torch: Any, device: str, free_mib: float | None = None) -> Peak:
    """The peak of this process so far, read from torch on CUDA, or the process's own on CPU."""
    if str(device).startswith("cuda"):
        index = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return Peak(
            "cuda",
            allocated_mib=torch.cuda.max_memory_allocated() / MIB,
            reserved_mib=torch.cuda.max_memory_reserved() / MIB,
            gpu=str(props.name),
            total_mib=props.total_memory / MIB,
            free_mib=free_mib,
        )
    from trainwright.hardware.process_memory import own_peak_bytes

    return Peak("cpu", process_mib=own_peak_bytes() / MIB)


@dataclass
class Comparison:
    measured_gib: float
    estimate_gib: float
    ratio: float
    budget_gib: float | None  # what the card can give with the margin (or free memory)
    over_estimate: bool
    over_budget: bool
    busy_note: str | None
    fitting_batch: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "measured_gib": round(self.measured_gib, 2),
            "estimate_gib": round(self.estimate_gib, 2),
            "ratio": round(self.ratio, 3),
            "budget_gib": None if self.budget_gib is None else round(self.budget_gib, 2),
            "over_estimate": self.over_estimate,
            "over_budget": self.over_budget,
            "busy": self.busy_note,
            "fitting_batch": self.fitting_batch,
        }


def budget_gib(total_gib: float | None, free_gib: float | None) -> tuple[float | None, str | None]:
    """Memory the run may use: the card less the margin, or less when another process holds some
    (the free memory at the start, less the same share of the card)."""
    if total_gib is None:
        return None, None
    usable = total_gib * (1 - SAFETY_MARGIN)
    if free_gib is None or total_gib - free_gib <= max(IDLE_HELD_GIB, total_gib * 0.02):
        return usable, None
    busy = total_gib - free_gib
    usable = min(usable, free_gib - total_gib * SAFETY_MARGIN * 0.5)
    note = (
        f"the GPU was busy: {busy:.1f} GiB were held by other processes when the run started, so "
        f"it was measured against the {free_gib:.1f} GiB free ({max(usable, 0):.1f} GiB usable)"
    )
    return max(usable, 0.0), note


def compare(peak: Peak, est: Any, model: Any = None, setup: Any = None) -> Comparison | None:
    """Measured against estimated (like for like), against the card, and the batch that fits
    when the run does not (the estimator scaled by the measured ratio)."""
    if not peak.on_gpu or peak.card_mib is None:
        return None
    measured = peak.card_mib / 1024
    basis = est.reserved if peak.device == "cuda" else est.total
    estimate_gib = basis / GIB
    if estimate_gib <= 0:
        return None
    ratio = measured / estimate_gib
    total = None if peak.total_mib is None else peak.total_mib / 1024
    free = None if peak.free_mib is None else peak.free_mib / 1024
    budget, busy = budget_gib(total, free)
    context = 0.0 if peak.device == "nvml" else (est.total - est.reserved) / GIB
    over_budget = budget is not None and measured + context > budget
    result = Comparison(
        measured, estimate_gib, ratio, budget, ratio > OVER_ESTIMATE, over_budget, busy
    )
    if over_budget and model is not None and setup is not None and budget is not None:
        result.fitting_batch = batch_that_fits(model, setup, budget, ratio, peak.device)
    return result


def batch_that_fits(model: Any, setup: Any, budget: float, ratio: float, device: str) -> int:
    """The largest batch below the measured one whose estimate, scaled by the measured ratio,
    fits `budget` GiB (0 when not even batch 1 does)."""
    from trainwright.hardware.vram import estimate

    for b in range(setup.batch - 1, 0, -1):
        est = estimate(model, replace(setup, batch=b))
        if device == "nvml":
            need = est.total * ratio
        else:
            need = est.reserved * ratio + (est.total - est.reserved)
        if need / GIB <= budget:
            return b
    return 0


def verdict_lines(c: Comparison, batch: int) -> tuple[list[str], list[str]]:
    """Gate 4's plain words about memory: (reasons, fixes)."""
    reasons = [
        f"measured peak {c.measured_gib:.2f} GiB against Gate 2's estimate of "
        f"{c.estimate_gib:.2f} GiB (measured/estimated {c.ratio:.2f})"
    ]
    fixes: list[str] = []
    if c.busy_note:
        reasons.append(c.busy_note)
    if c.over_estimate:
        reasons.append(
            f"the estimate was low by {(c.ratio - 1) * 100:.0f}% on this GPU: the ratio is kept "
            "in grimoire/studio.md and `trainwright vram` shows it beside later estimates"
        )
    if c.over_budget and c.budget_gib is not None:
        reasons.append(
            f"the measured peak does not leave the {int(SAFETY_MARGIN * 100)}% margin: only "
            f"{c.budget_gib:.1f} GiB is usable, so a longer run at batch {batch} may run out "
            "of memory"
        )
        if c.fitting_batch:
            fixes.append(
                f"set batch {c.fitting_batch} (it fits with the margin by the measured figure), "
                "with gradient accumulation to keep the effective batch"
            )
        else:
            fixes.append(
                "not even batch 1 fits with the margin by the measured figure: turn on gradient "
                "checkpointing, use LoRA/QLoRA or a bigger GPU (`trainwright vram` lists options)"
            )
    return reasons, fixes


# --- the per-GPU ratio in grimoire/studio.md --------------------------------------------------

GPUS_SECTION = "GPUs"


def _entry_for(data: dict[str, Any], gpu: str) -> str | None:
    from trainwright.hardware.gpu import _normal

    want = _normal(gpu)
    for title, fields in data["sections"].items():
        if not title.startswith("GPU: "):
            continue
        label = title.removeprefix("GPU: ").strip()
        if want in (_normal(label), _normal(str(fields.get("Name") or ""))):
            return title
    return None


def record_ratio(
    g: Any, gpu: str, total_gib: float | None, ratio: float, today: _dt.date | None = None
) -> str:
    """Keep measured/estimated under the GPU's `### GPU:` entry in studio.md (a new entry in the
    `## GPUs` part when there is none), with the date. Returns the entry's title."""
    from trainwright.state.atomic import atomic_write_text, locked
    from trainwright.state.document import parse_document, read_document, set_fields
    from trainwright.state.schema import validate_document

    day = (today or _dt.date.today()).isoformat()
    fields: dict[str, object] = {RATIO_FIELD: round(ratio, 3), RATIO_DATE_FIELD: day}
    g.ensure_base()
    path = g.path_for("studio")
    with locked(path.parent):
        doc = read_document(path)
        data = validate_document(doc, "studio")
        title = _entry_for(data, gpu)
        if title is None:
            if total_gib is None:
                raise ValueError("a new GPU entry needs the card's memory")
            title = f"GPU: {gpu}"
            doc = _add_entry(
                doc, title, {"Name": gpu, "VRAM GB": round(total_gib, 1)}, parse_document
            )
        new = set_fields(doc, {title: fields})
        validate_document(new, "studio")
        atomic_write_text(path, new.text())
    return title


def _add_entry(doc: Any, title: str, fields: dict[str, object], parse: Any) -> Any:
    """A `### title` entry at the end of the `## GPUs` part (made when missing)."""
    from trainwright.state.document import format_value

    lines = list(doc.lines)
    if GPUS_SECTION not in doc.sections:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", f"## {GPUS_SECTION}"]
        doc = parse("\n".join(lines) + "\n", doc.path)
        lines = list(doc.lines)
    part = doc.sections[GPUS_SECTION]
    after = [s.line for s in doc.sections.values() if s.line > part.line and s.level <= 2]
    end = (min(after) - 1) if after else len(lines)
    while end > part.line and not lines[end - 1].strip():
        end -= 1
    block = ["", f"### {title}"] + [f"- **{k}**: {format_value(v)}" for k, v in fields.items()]
    if end < len(lines) and lines[end].strip():
        block.append("")
    lines[end:end] = block
    return parse("\n".join(lines) + "\n", doc.path)


def ratio_for(g: Any, gpu: str) -> tuple[float, str] | None:
    """(measured/estimated, date) kept for this GPU, or None."""
    path = g.path_for("studio")
    if not path.exists():
        return None
    _, data = g.read("studio")
    title = _entry_for(data, gpu)
    if title is None:
        return None
    fields = data["sections"][title]
    value = fields.get(RATIO_FIELD)
    try:
        ratio = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not 0 < ratio < 100:
        return None
    return ratio, str(fields.get(RATIO_DATE_FIELD) or "")
