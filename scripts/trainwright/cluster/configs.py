"""Each training run's trainer config (`<run>/finetune.yaml`), written by its backend's module.

The text comes from the run's backend (`cluster_config`, which maps the plan's columns to its
settings); this step skips base-model runs, and never overwrites a config a person (or an
out-of-memory retry) changed unless asked to, keeping the old one beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainwright.clock import file_stamp
from trainwright.cluster.adapters import CONFIG_NAME, adapter
from trainwright.cluster.dirs import run_dir
from trainwright.cluster.runs_plan import Plan
from trainwright.errors import TrainwrightError
from trainwright.state.atomic import atomic_write_text
from trainwright.state.safe_paths import new_backup_file


def write_configs(
    experiment_dir: Path,
    plan: Plan,
    backend: str | None = None,
    only: tuple[str, ...] = (),
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    experiment_dir = Path(experiment_dir)
    for name in only:
        plan.run(name)
    results: list[dict[str, Any]] = []
    missing = [
        str(run_dir(experiment_dir, r.name))
        for r in plan.runs
        if r.trains and not run_dir(experiment_dir, r.name).is_dir()
    ]
    if missing:
        raise TrainwrightError(
            f"run folders missing ({', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}): "
            "create them first with `trainwright runs setup-dirs`"
        )
    for run in plan.runs:
        if only and run.name not in only:
            continue
        if not run.trains:
            results.append({"run": run.name, "action": "skipped", "reason": "base-model run"})
            continue
        if backend and run.backend != backend:
            results.append(
                {"run": run.name, "action": "skipped", "reason": f"backend {run.backend}"}
            )
            continue
        folder = run_dir(experiment_dir, run.name)
        path = folder / CONFIG_NAME
        text = adapter(run.backend).cluster_config(run, experiment_dir)
        action = _write(path, text, force, dry_run)
        results.append(
            {"run": run.name, "backend": run.backend, "config": str(path), "action": action}
        )
    return {"experiment_dir": str(experiment_dir), "configs": results, "dry_run": dry_run}


def _write(path: Path, text: str, force: bool, dry_run: bool) -> str:
    if path.exists():
        old = path.read_bytes()
        if old == text.encode("utf-8"):
            return "unchanged"
        if not force:
            return "kept"  # changed by a person or an OOM retry: --force rewrites it
        if not dry_run:
            new_backup_file(path, file_stamp(), old)  # its bytes, as they were
            atomic_write_text(path, text)
        return "rewritten"
    if not dry_run:
        atomic_write_text(path, text)
    return "created"
