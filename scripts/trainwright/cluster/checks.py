"""Backend-specific checks of a planned run (known model, process limit), asked of its backend;
the plan read with them."""

from __future__ import annotations

from pathlib import Path

from trainwright.cluster.adapters import adapter, backend_names, cpu_backends, max_processes
from trainwright.cluster.runs_plan import Plan, PlannedRun, read_plan


def check_run(run: PlannedRun) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    backend = adapter(run.backend)
    if run.trains and run.on_cpu and hasattr(backend, "cpu_problem"):
        problem = backend.cpu_problem(run.model)  # some of its models train on the CPU
        if problem:
            problems.append(("gpus", problem))
    checks_model = run.trains or getattr(backend, "BASE_RUNS_USE_IT", False)
    if checks_model and hasattr(backend, "model_problem"):
        problem = backend.model_problem(run.model)
        if problem:
            problems.append(("model", problem))
    limit = max_processes(run.backend)
    # MULTI_NODE: one process per node, data-parallel over the nodes (torchrun).
    nodes_ok = run.nodes == 1 or getattr(backend, "MULTI_NODE", False)
    if limit is not None and run.trains and ((run.gpus or 1) > limit or not nodes_ok):
        where = "per node" if getattr(backend, "MULTI_NODE", False) else "1 node"
        text = f"the {run.backend} backend trains in one process: use 1 GPU (or cpu), {where}"
        problems.append(("gpus", text))
    return problems


def load_plan(experiment_dir: Path) -> Plan:
    """runs_plan.md parsed and checked; problems are collected, not raised. The default backend
    (for a plan that names none) is the registry's first choice."""
    from trainwright import backends

    default = backends.cluster_default()
    names = (default, *[n for n in backend_names() if n != default])
    return read_plan(Path(experiment_dir), check_run, names, cpu_backends())
