"""How much of the cluster a run asks for: nodes, GPUs, CPUs, memory and time.

Order of precedence for each value: the command's option, then the plan, then what the run's
config and the VRAM estimate imply, then a stated default. `notes` says where each value came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from trainwright.cluster.runs_plan import PlannedRun
from trainwright.cluster.timelimit import format_minutes, parse_time
from trainwright.errors import TrainwrightError

DEFAULT_TIME = "1-00:00:00"
CPUS_PER_GPU = 8
CPU_RUN_CPUS = 2
HOST_MEM_PER_GPU_GB = 32  # room for the data loader and for loading the weights on the host
CPU_RUN_MEM_GB = 4
TIME_MARGIN = 2.0  # the estimate is good to about a factor of two
STARTUP_MINUTES = 15  # loading weights, compiling, the first checkpoint


@dataclass
class Request:
    """What the sbatch options ask for, per node."""

    nodes: int
    gpus_per_node: int  # 0: a CPU-only run
    cpus_per_task: int
    mem: str
    time: str
    notes: dict[str, str] = field(default_factory=dict)
    vram_gb: float | None = None  # estimated per GPU, when an estimate exists
    fits: bool | None = None  # on the --gpu-type card, when both are known

    def as_dict(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "gpus_per_node": self.gpus_per_node,
            "cpus_per_task": self.cpus_per_task,
            "mem": self.mem,
            "time": self.time,
            "vram_gb": self.vram_gb,
            "fits": self.fits,
            "notes": dict(self.notes),
        }


@dataclass
class Overrides:
    """The `slurm-scripts` options that replace a derived value (None: derive it)."""

    time: str | None = None
    cpus_per_gpu: int | None = None
    cpus: int | None = None
    mem: str | None = None
    gpu: Any | None = None  # a GPUSpec from the hardware table, when --gpu-type names one


def _mem(text: str) -> str:
    """SLURM memory: a number with an optional K/M/G/T suffix (default megabytes)."""
    value = text.strip().upper().removesuffix("B")
    number = value[:-1] if value[-1:] in "KMGT" else value
    try:
        if float(number) <= 0:
            raise ValueError
    except ValueError:
        raise TrainwrightError(f"memory {text!r} is not a SLURM size (like 64G or 200M)") from None
    return value


def vram_estimate(
    run: PlannedRun, config: dict[str, Any], gpu: Any | None = None
) -> dict[str, Any] | None:
    """The hardware room's VRAM (and, with a known GPU, time) estimate for a run whose backend
    can describe its config for it (`cluster_vram`).

    Returns {"per_gpu_gb", "weights_gb", "fits", "gpu_gb", "time", "source"} or None when the
    model is not in the catalog (or the backend says nothing about memory).
    """
    from trainwright import backends
    from trainwright.cluster.adapters import adapter
    from trainwright.hardware import catalog, timing, vram

    backend = adapter(run.backend)
    if not hasattr(backend, "cluster_vram"):
        return None
    try:
        model = catalog.load().get(run.model)
    except TrainwrightError:
        return None
    settings, schedule = backend.cluster_vram(run, config)
    settings.setdefault("framework", backends.framework(backend))  # its loss head
    setup = vram.Setup(method=run.method, **settings)
    try:
        est = vram.estimate(model, setup)
    except TrainwrightError:
        return None
    per_gpu = est.total / vram.GIB
    out: dict[str, Any] = {
        "per_gpu_gb": round(per_gpu, 1),
        "weights_gb": round(model.params * 2 / 1e9, 1),
        "source": "VRAM estimator, for one GPU; FSDP over several needs less",
        "fits": None,
        "gpu_gb": None,
        "time": None,
    }
    if gpu is not None:
        out["gpu_gb"] = gpu.memory_gib
        out["fits"] = per_gpu <= gpu.memory_gib
        steps = schedule.get("steps_per_epoch")
        if gpu.bf16_tflops and steps:
            step_s = timing.seconds_per_step(
                model, setup.seq_len, setup.batch, gpu.bf16_tflops, setup.gradient_checkpointing
            )
            total_s = schedule.get("epochs", 1) * int(steps) * setup.gradient_accumulation * step_s
            out["time"] = format_minutes(TIME_MARGIN * total_s / 60 + STARTUP_MINUTES)
    return out


def derive(run: PlannedRun, config: dict[str, Any], opts: Overrides) -> Request:
    notes: dict[str, str] = {}
    gpus_per_node = run.gpus_per_node if run.gpus else 0
    notes["gpus"] = (
        f"{run.gpus} GPU(s) over {run.nodes} node(s), from the plan" if gpus_per_node else "CPU run"
    )

    if opts.cpus is not None:
        cpus = opts.cpus
        notes["cpus"] = "--cpus"
    elif gpus_per_node:
        per = opts.cpus_per_gpu or CPUS_PER_GPU
        cpus = per * gpus_per_node
        notes["cpus"] = f"{per} per GPU" + (" (--cpus-per-gpu)" if opts.cpus_per_gpu else "")
    else:
        cpus = CPU_RUN_CPUS
        notes["cpus"] = "default for a CPU run"

    estimate = vram_estimate(run, config, opts.gpu) if gpus_per_node else None
    vram = float(estimate["per_gpu_gb"]) if estimate else None
    if opts.mem is not None:
        mem = _mem(opts.mem)
        notes["mem"] = "--mem"
    elif gpus_per_node:
        weights = (estimate or {}).get("weights_gb")
        host = max(HOST_MEM_PER_GPU_GB * gpus_per_node, math.ceil(2 * weights) if weights else 0)
        mem = f"{host}G"
        notes["mem"] = (
            f"{HOST_MEM_PER_GPU_GB}G per GPU, at least twice the weights"
            if weights
            else f"{HOST_MEM_PER_GPU_GB}G per GPU (no size estimate for {run.model!r})"
        )
    else:
        mem = f"{CPU_RUN_MEM_GB}G"
        notes["mem"] = "default for a CPU run"

    if opts.time is not None:
        try:
            time = parse_time(opts.time)
        except ValueError as exc:
            raise TrainwrightError(f"--time: {exc}") from None
        notes["time"] = "--time"
    elif run.time:
        time = run.time
        notes["time"] = "the plan's Time"
    elif estimate and estimate.get("time"):
        time = parse_time(str(estimate["time"]))
        notes["time"] = f"estimate ({estimate.get('source', 'hardware estimator')})"
    else:
        time = DEFAULT_TIME
        notes["time"] = "default: set the plan's Time column or --time"
    fits = None
    if estimate:
        notes["vram"] = f"{vram:.1f} GB per GPU ({estimate['source']})"
        fits = estimate.get("fits")
        if fits is False:
            notes["vram"] += f"; more than the {estimate['gpu_gb']:g} GB of this GPU type"
    return Request(run.nodes, gpus_per_node, cpus, mem, time, notes, vram, fits)
