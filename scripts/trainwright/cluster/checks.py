"""Backend-specific checks of a planned run (known model, GPU limits); the plan read with them."""

from __future__ import annotations

from pathlib import Path

from trainwright.cluster.adapters import ADAPTERS, backend_names, cpu_backends
from trainwright.cluster.runs_plan import Plan, PlannedRun, read_plan

TINY_MODELS = ("bundled", "tiny", "tiny-denoiser")


def tiny_model_ok(model: str) -> bool:
    return model.lower() in TINY_MODELS or model.endswith(".safetensors")


def _torchtune_model(model: str) -> str | None:
    try:
        from trainwright.cluster import torchtune_glue
    except ImportError:
        return None
    return torchtune_glue.model_problem(model)


def check_run(run: PlannedRun) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if run.trains or run.backend == "tiny":
        if run.backend == "tiny" and not tiny_model_ok(run.model):
            problems.append(
                (
                    "model",
                    f"model {run.model!r} is unknown to the tiny backend; "
                    f"use one of {', '.join(TINY_MODELS)} or a .safetensors file it made",
                )
            )
        elif run.backend == "torchtune":
            problem = _torchtune_model(run.model)
            if problem:
                problems.append(("model", problem))
    limit = ADAPTERS[run.backend].max_processes
    if limit is not None and run.trains and ((run.gpus or 1) > limit or run.nodes > 1):
        problems.append(
            ("gpus", f"the {run.backend} backend trains in one process: use 1 GPU (or cpu), 1 node")
        )
    return problems


def load_plan(experiment_dir: Path) -> Plan:
    """runs_plan.md parsed and checked; problems are collected, not raised."""
    return read_plan(Path(experiment_dir), check_run, backend_names(), cpu_backends())
