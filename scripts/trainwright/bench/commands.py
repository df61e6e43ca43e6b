"""`trainwright bench kernel`: a block-size sweep of a Triton kernel, written as a cuda report."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import click

from trainwright.bench.kernels import KERNELS, load_kernel
from trainwright.errors import TrainwrightError
from trainwright.numeric import Int
from trainwright.output import emit, json_option
from trainwright.state.atomic import atomic_write_text

DTYPES = ("float32", "float16", "bfloat16")


def _ints(text: str | None, what: str) -> list[int] | None:
    if not text:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise TrainwrightError(
            f"{what} must be whole numbers separated by commas, got {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise TrainwrightError(f"{what} must be positive numbers, got {text!r}")
    return values


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise TrainwrightError(
            "torch is not installed: pip install 'trainwright[torch,gpu]'"
        ) from None
    return torch


def _default_out() -> Path:
    from trainwright.retro.registry import find_registry, load

    try:
        return load(find_registry()).resolve("reports", "cuda")
    except TrainwrightError:
        return Path("reports") / "cuda"


def _unique(folder: Path, stem: str) -> Path:
    path = folder / f"{stem}.md"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}.md"
        n += 1
    return path


@click.group("bench")
def bench_group() -> None:
    """Benchmarks that write reports the retrospective (trainwright retro) can read."""


@bench_group.command("kernel")
@click.option(
    "--kernel",
    "name",
    type=click.Choice(list(KERNELS)),
    default="softmax",
    show_default=True,
    help="Which kernel to sweep.",
)
@click.option(
    "--rows", type=Int(1, 1 << 20), help="Rows of the input (default: the kernel's own size)."
)
@click.option("--cols", type=Int(1, 1 << 20), help="Columns of the input.")
@click.option("--block-sizes", help="BLOCK_SIZE values to sweep, e.g. 1024,2048,4096.")
@click.option("--warps", help="num_warps values to sweep, e.g. 4,8,16.")
@click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="Folder for the report (default: the registry's cuda reports folder).",
)
@click.option("--no-report", is_flag=True, help="Measure and print; write no report.")
@json_option
def kernel_cmd(
    name: str,
    rows: int | None,
    cols: int | None,
    block_sizes: str | None,
    warps: str | None,
    dtype: str,
    out_dir: Path | None,
    no_report: bool,
    as_json: bool,
) -> int:
    """Sweep a Triton kernel over block sizes and warps: time, achieved bandwidth, % of the
    device's peak, registers, spills and theoretical occupancy, checked against torch. Writes a
    cuda-domain report (Markdown) that `trainwright retro collect` reads.

    Without a GPU it says so, runs the sweep's correctness check under TRITON_INTERPRET=1 on a
    small input, writes no report and exits 0 (1 if an output was wrong).
    """
    blocks = _ints(block_sizes, "--block-sizes")
    warp_list = _ints(warps, "--warps")
    for value, flag in ((rows, "--rows"), (cols, "--cols")):
        if value is not None and value <= 0:
            raise TrainwrightError(f"{flag} must be positive, got {value}")
    torch = _torch()
    gpu = torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1"
    if not gpu:
        os.environ["TRITON_INTERPRET"] = "1"  # before the kernel module defines its @triton.jit
    mod = load_kernel(name)
    from trainwright.bench.device import describe_cuda_device
    from trainwright.bench.kernel_report import render
    from trainwright.bench.sweep import run_sweep

    default_shape = mod.GPU_SHAPE if gpu else mod.CHECK_SHAPE
    shape = (rows or default_shape[0], cols or default_shape[1])
    configs = mod.gpu_configs() if gpu else mod.check_configs()
    if blocks or warp_list:
        blocks = blocks or sorted({c["BLOCK_SIZE"] for c in configs})
        warp_list = warp_list or sorted({c["num_warps"] for c in configs})
        configs = [{"BLOCK_SIZE": b, "num_warps": w} for b in blocks for w in warp_list]
    bad = [c["BLOCK_SIZE"] for c in configs if c["BLOCK_SIZE"] & (c["BLOCK_SIZE"] - 1)]
    if bad:
        raise TrainwrightError(f"BLOCK_SIZE must be a power of two, got {bad[0]}")
    device = describe_cuda_device() if gpu else {"name": "none (CPU, TRITON_INTERPRET=1)"}
    sweep = run_sweep(
        name,
        mod,
        gpu=gpu,
        shape=shape,
        dtype=getattr(torch, dtype),
        configs=configs,
        device=device,
    )
    all_correct = all(r["correct"] for r in sweep["results"])
    swept_blocks = ",".join(str(b) for b in sorted({c["BLOCK_SIZE"] for c in configs}))
    swept_warps = ",".join(str(w) for w in sorted({c["num_warps"] for c in configs}))
    command = (
        f"trainwright bench kernel --kernel {name} --rows {shape[0]} --cols {shape[1]} "
        f"--dtype {dtype} --block-sizes {swept_blocks} --warps {swept_warps}"
    )
    report_path = None
    if gpu and not no_report:
        folder = out_dir or _default_out()
        slug = re.sub(r"[^a-z0-9]+", "-", device["name"].lower()).strip("-")
        report_path = _unique(folder, f"{sweep['date']}-{name}-{slug}")
        atomic_write_text(report_path, render(sweep, command))
    data = {
        "gpu": gpu,
        "all_correct": all_correct,
        "report": str(report_path) if report_path else None,
        "command": command,
        **sweep,
    }
    emit(data, as_json, _human)
    return 0 if all_correct else 1


def _human(d: dict[str, Any]) -> str:
    shape = " x ".join(str(s) for s in d["shape"])
    ok = sum(1 for r in d["results"] if r["correct"])
    lines = []
    if not d["gpu"]:
        lines.append(
            f"no GPU found: checked {len(d['results'])} configurations of {d['kernel']} under "
            f"TRITON_INTERPRET=1 on a {shape} {d['dtype']} input: {ok} correct"
        )
    for r in d["results"]:
        cfg = ", ".join(f"{k}={v}" for k, v in r["config"].items())
        if r["error"]:
            lines.append(f"  {cfg}: {r['error']}")
        elif d["gpu"]:
            pct = f", {r['pct_peak']:.1f}% of peak" if r["pct_peak"] is not None else ""
            lines.append(
                f"  {cfg}: {r['time_ms']:.4f} ms, {r['bandwidth_gbs']:,.0f} GB/s{pct}"
                f"{'' if r['correct'] else ', WRONG OUTPUT'}"
            )
        else:
            verdict = "correct" if r["correct"] else "WRONG"
            lines.append(f"  {cfg}: {verdict} (max abs error {r['max_error']:.2e})")
    if d["gpu"] and d.get("peer"):
        p = d["peer"]
        lines.append(f"  peer {p['name']}: {p['time_ms']:.4f} ms, {p['bandwidth_gbs']:,.0f} GB/s")
    if not d["gpu"]:
        lines.append("timing, bandwidth and % of peak need a GPU: no report written")
    elif d["report"]:
        lines.append(f"report: {d['report']}")
    return "\n".join(lines)
