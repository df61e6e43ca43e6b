"""`finetune.slurm` for every training run, and one job-array script per sweep.

Reads each run's trainer config (written before this step) to find where checkpoints land and
to size the request; writes nothing for base-model runs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwright.backends.common import Launch
from trainwright.clock import file_stamp
from trainwright.cluster import sizing
from trainwright.cluster.adapters import CONFIG_NAME, SCRIPT_NAME, adapter, read_config
from trainwright.cluster.dirs import run_dir
from trainwright.cluster.render import JobScript, checkpoint_glob, render_script
from trainwright.cluster.runs_plan import Plan, PlannedRun
from trainwright.errors import TrainwrightError
from trainwright.state.atomic import atomic_write_text
from trainwright.state.safe_paths import new_backup_file

SWEEP_DIR = "sweeps"
SIGNAL_BEFORE_END_S = 90


@dataclass
class Settings:
    """The `slurm-scripts` options: cluster-specific choices the plan does not carry."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpu_type: str | None = None
    launcher: str | None = None  # how multi-GPU runs start (a backend's LAUNCHERS; None: its first)
    python: str = field(default_factory=lambda: sys.executable)
    setup: list[str] = field(default_factory=list)  # shell lines run first (module load ...)
    overrides: sizing.Overrides = field(default_factory=sizing.Overrides)
    extra: dict[str, str] = field(default_factory=dict)  # more `--key=value` sbatch options


def job_name(plan: Plan, name: str) -> str:
    return f"{plan.experiment}/{name}"


def log_pattern(experiment_dir: Path, run: PlannedRun) -> str:
    """Where SLURM writes the job's output; `%j` becomes the job id."""
    return str(run_dir(experiment_dir, run.name) / "logs" / "slurm-%j.out")


def sweep_script(experiment_dir: Path, sweep: str) -> Path:
    return Path(experiment_dir) / SWEEP_DIR / f"{sweep}.slurm"


def sweep_log_pattern(experiment_dir: Path, sweep: str) -> str:
    return str(Path(experiment_dir) / SWEEP_DIR / "logs" / f"{sweep}-%A_%a.out")


def _launch(run: PlannedRun, experiment_dir: Path, settings: Settings) -> tuple[Launch, dict]:
    rdir = run_dir(experiment_dir, run.name)
    config_path = rdir / CONFIG_NAME
    if not config_path.exists():
        raise TrainwrightError(
            f"run {run.name!r} has no {config_path}: write the configs first "
            "(`trainwright runs configs`)"
        )
    config = read_config(config_path)
    return adapter(run.backend).cluster_launch(
        run, rdir, config, settings.python, settings.launcher
    ), config


def _options(request: sizing.Request, settings: Settings) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "cpus-per-task": request.cpus_per_task,
        "mem": request.mem,
        "nodes": request.nodes,
        "ntasks-per-node": 1,
        "open-mode": "append",
        "requeue": True,
        "signal": f"B:USR2@{SIGNAL_BEFORE_END_S}",
        "time": request.time,
    }
    if request.gpus_per_node:
        kind = f"{settings.gpu_type}:" if settings.gpu_type else ""
        opts["gpus-per-node"] = f"{kind}{request.gpus_per_node}"
    for key in ("partition", "account", "qos", "constraint"):
        value = getattr(settings, key)
        if value:
            opts[key] = value
    for key, value in settings.extra.items():
        opts[key.lstrip("-")] = value
    return opts


def render_run(
    plan: Plan, run: PlannedRun, experiment_dir: Path, settings: Settings
) -> tuple[str, sizing.Request]:
    launch, config = _launch(run, experiment_dir, settings)
    request = sizing.derive(run, config, settings.overrides)
    options = _options(request, settings)
    options["job-name"] = job_name(plan, run.name)
    options["output"] = log_pattern(experiment_dir, run)
    script = JobScript(
        label=f"{run.name!r} of experiment {plan.experiment!r}",
        options=options,
        run_dirs=[run_dir(experiment_dir, run.name)],
        checkpoints=[checkpoint_glob(launch.checkpoint_dir, launch.checkpoint_pattern)],
        launch=launch.words,
        resume=launch.resume,
        nodes=run.nodes,
        setup=[*settings.setup, *launch.prelude],
    )
    return render_script(script), request


def render_sweep(
    plan: Plan, sweep: str, runs: list[PlannedRun], experiment_dir: Path, settings: Settings
) -> tuple[str, sizing.Request]:
    launches = [_launch(r, experiment_dir, settings) for r in runs]
    first_launch, first_config = launches[0]
    for run, (launch, _) in zip(runs[1:], launches[1:], strict=True):
        if launch.words != first_launch.words or launch.prelude != first_launch.prelude:
            raise TrainwrightError(
                f"sweep {sweep!r}: run {run.name!r} starts differently from {runs[0].name!r}; "
                "one job array runs one command line"
            )
    requests = [
        sizing.derive(r, c, settings.overrides) for r, (_, c) in zip(runs, launches, strict=True)
    ]
    request = max(requests, key=lambda q: sizing_key(q))
    options = _options(request, settings)
    options["array"] = f"0-{len(runs) - 1}"
    options["job-name"] = job_name(plan, sweep)
    options["output"] = sweep_log_pattern(experiment_dir, sweep)
    script = JobScript(
        label=f"sweep {sweep!r} of experiment {plan.experiment!r}: "
        + ", ".join(r.name for r in runs),
        options=options,
        run_dirs=[run_dir(experiment_dir, r.name) for r in runs],
        checkpoints=[
            checkpoint_glob(lc.checkpoint_dir, lc.checkpoint_pattern) for lc, _ in launches
        ],
        launch=first_launch.words,
        resume=first_launch.resume,
        nodes=runs[0].nodes,
        setup=[*settings.setup, *first_launch.prelude],
    )
    return render_script(script), request


def sizing_key(request: sizing.Request) -> tuple[float, float]:
    from trainwright.cluster.timelimit import time_minutes

    return (time_minutes(request.time), _mem_mb(request.mem))


def _mem_mb(mem: str) -> float:
    unit = mem[-1:].upper()
    factor = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}.get(unit)
    return float(mem[:-1]) * factor if factor else float(mem)


def write_if_changed(path: Path, text: str, dry_run: bool) -> str:
    """'created', 'unchanged' or 'updated' (the previous version is kept beside it)."""
    if path.exists():
        old = path.read_bytes()
        if old == text.encode("utf-8"):
            return "unchanged"
        if not dry_run:
            new_backup_file(path, file_stamp(), old)
            atomic_write_text(path, text)
            path.chmod(0o755)
        return "updated"
    if not dry_run:
        atomic_write_text(path, text)
        path.chmod(0o755)
    return "created"


def write_scripts(
    experiment_dir: Path,
    plan: Plan,
    settings: Settings,
    only: tuple[str, ...] = (),
    dry_run: bool = False,
) -> dict[str, Any]:
    experiment_dir = Path(experiment_dir)
    selected = [r for r in plan.runs if not only or r.name in only]
    results: list[dict[str, Any]] = []
    for run in selected:
        if not run.trains:
            results.append({"run": run.name, "action": "skipped", "reason": "base-model run"})
            continue
        text, request = render_run(plan, run, experiment_dir, settings)
        path = run_dir(experiment_dir, run.name) / SCRIPT_NAME
        if not dry_run:
            (path.parent / "logs").mkdir(parents=True, exist_ok=True)
        action = write_if_changed(path, text, dry_run)
        results.append(
            {"run": run.name, "script": str(path), "action": action, **request.as_dict()}
        )
    sweeps = []
    for sweep, members in plan.sweeps().items():
        if only and not any(r.name in only for r in members):
            continue
        text, request = render_sweep(plan, sweep, members, experiment_dir, settings)
        path = sweep_script(experiment_dir, sweep)
        if not dry_run:
            (path.parent / "logs").mkdir(parents=True, exist_ok=True)
        action = write_if_changed(path, text, dry_run)
        sweeps.append(
            {
                "sweep": sweep,
                "script": str(path),
                "runs": [r.name for r in members],
                "action": action,
                **request.as_dict(),
            }
        )
    return {
        "experiment_dir": str(experiment_dir),
        "runs": results,
        "sweeps": sweeps,
        "dry_run": dry_run,
    }
