"""The GPU under the benchmark: its peak bandwidth and the limits that decide occupancy."""

from __future__ import annotations

import functools
import math
import re
from importlib import resources
from typing import Any

import yaml


@functools.cache
def peak_table() -> list[dict[str, Any]]:
    text = (resources.files("trainwright.bench") / "peaks.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def peak_bandwidth(
    name: str, memory_clock_khz: int | None = None, bus_width_bits: int | None = None
) -> tuple[float | None, str]:
    """(GB/s, where the figure comes from) for a device name; None when nothing is known."""
    for row in peak_table():
        if re.search(row["pattern"], name, flags=re.I):
            return float(row["bandwidth_gbs"]), f"{row['name']}, {row['source']}"
    if memory_clock_khz and bus_width_bits:
        gbs = 2 * memory_clock_khz * 1e3 * bus_width_bits / 8 / 1e9
        return round(gbs, 1), "computed from the memory clock and bus width torch reports"
    return None, "unknown device: no peak figure, so no % of peak"


def theoretical_occupancy(
    num_warps: int,
    regs_per_thread: int | None,
    shared_bytes: int | None,
    regs_per_sm: int | None,
    max_threads_per_sm: int | None,
    shared_per_sm: int | None,
    max_blocks_per_sm: int = 32,
) -> float | None:
    """Resident warps / maximum warps per SM, from registers, shared memory and threads.

    Registers are allocated per warp in units of 256; a None input makes the answer unknown.
    """
    if not (regs_per_thread is not None and regs_per_sm and max_threads_per_sm):
        return None
    max_warps = max_threads_per_sm // 32
    limits = [max_blocks_per_sm, max_threads_per_sm // (num_warps * 32)]
    regs_per_warp = math.ceil(max(regs_per_thread, 1) * 32 / 256) * 256
    limits.append((regs_per_sm // regs_per_warp) // num_warps)
    if shared_bytes:
        if not shared_per_sm:
            return None
        limits.append(shared_per_sm // shared_bytes)
    blocks = max(min(limits), 0)
    return min(blocks * num_warps / max_warps, 1.0)


def describe_cuda_device() -> dict[str, Any]:
    """Name and limits of GPU 0, read through torch (only called when CUDA is available)."""
    import torch

    props = torch.cuda.get_device_properties(0)
    clock = getattr(props, "memory_clock_rate", None)
    bus = getattr(props, "memory_bus_width", None)
    peak, source = peak_bandwidth(props.name, clock, bus)
    return {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "sms": props.multi_processor_count,
        "regs_per_sm": getattr(props, "regs_per_multiprocessor", None),
        "max_threads_per_sm": getattr(props, "max_threads_per_multi_processor", None),
        "shared_per_sm": getattr(props, "shared_memory_per_multiprocessor", None),
        "peak_bandwidth_gbs": peak,
        "peak_source": source,
    }
