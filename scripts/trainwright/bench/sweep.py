"""Run a kernel over its configurations: correctness always; time, bandwidth, % of peak,
registers, spills and occupancy on a GPU."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

from trainwright.bench.device import theoretical_occupancy


@dataclass
class ConfigResult:
    config: dict[str, int]
    grid: list[int]
    one_pass: bool | None = None
    correct: bool | None = None
    max_error: float | None = None
    time_ms: float | None = None
    bandwidth_gbs: float | None = None
    pct_peak: float | None = None
    tflops: float | None = None
    registers: int | None = None
    spills: int | None = None
    shared_bytes: int | None = None
    occupancy: float | None = None
    error: str | None = None


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def _compiled_info(compiled: Any) -> tuple[int | None, int | None, int | None]:
    if compiled is None:
        return None, None, None
    meta = getattr(compiled, "metadata", None)
    shared = getattr(meta, "shared", None) if meta is not None else None
    return getattr(compiled, "n_regs", None), getattr(compiled, "n_spills", None), shared


def run_sweep(
    name: str,
    mod: ModuleType,
    *,
    gpu: bool,
    shape: tuple[int, ...],
    dtype: Any,
    configs: list[dict[str, int]],
    device: dict[str, Any],
    seed: int = 0,
) -> dict[str, Any]:
    where = "cuda" if gpu else "cpu"
    inputs = mod.make_inputs(shape, dtype, where, seed)
    expected = mod.reference(inputs)
    nbytes, nflops = mod.bytes_moved(inputs), mod.flops(inputs)
    peak = device.get("peak_bandwidth_gbs")
    results: list[ConfigResult] = []
    for cfg in configs:
        res = ConfigResult(dict(cfg), list(mod.grid(inputs, cfg)), mod.one_pass(inputs, cfg))
        try:
            out, compiled = mod.launch(inputs, cfg)
            if gpu:
                import torch

                torch.cuda.synchronize()
            res.correct, res.max_error = mod.check(out, expected)
            if gpu:
                res.registers, res.spills, res.shared_bytes = _compiled_info(compiled)
                res.time_ms = _time(lambda cfg=cfg, out=out: mod.launch(inputs, cfg, out))
                res.bandwidth_gbs = nbytes / (res.time_ms * 1e-3) / 1e9
                res.tflops = nflops / (res.time_ms * 1e-3) / 1e12
                if peak:
                    res.pct_peak = 100.0 * res.bandwidth_gbs / peak
                res.occupancy = theoretical_occupancy(
                    cfg.get("num_warps", 4),
                    res.registers,
                    res.shared_bytes,
                    device.get("regs_per_sm"),
                    device.get("max_threads_per_sm"),
                    device.get("shared_per_sm"),
                )
        except Exception as exc:  # a config that does not compile or run is a finding
            res.error = _one_line(exc)
        results.append(res)
    peer = None
    if gpu and hasattr(mod, "peer"):
        label, fn = mod.peer(inputs)
        t = _time(fn)
        bw = nbytes / (t * 1e-3) / 1e9
        peer = {
            "name": label,
            "time_ms": t,
            "bandwidth_gbs": bw,
            "pct_peak": 100.0 * bw / peak if peak else None,
        }
    timed = [i for i, r in enumerate(results) if r.time_ms is not None and r.correct]
    best = max(timed, key=lambda i: results[i].bandwidth_gbs or 0.0) if timed else None
    return {
        "kernel": name,
        "operation": mod.OPERATION,
        "memory_pattern": mod.MEMORY_PATTERN,
        "module": mod.__name__,
        "mode": "gpu" if gpu else "interpreter",
        "shape": list(shape),
        "dtype": str(dtype).removeprefix("torch."),
        "bytes_per_call": nbytes,
        "flops_per_call": nflops,
        "device": device,
        "versions": {"triton": _version("triton"), "torch": _version("torch")},
        "date": _dt.date.today().isoformat(),
        "results": [asdict(r) for r in results],
        "peer": peer,
        "best": best,
    }


def _time(fn: Any) -> float:
    """Median milliseconds of `fn` on the GPU (triton's do_bench: warm-up, cache flush)."""
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))
