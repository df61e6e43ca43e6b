"""The experiment's folders: `<run>/evaluations/` per run and a README. Nothing framework-specific.

Idempotent: folders that exist are left alone, and an existing README is never rewritten.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainwright.cluster.runs_plan import Plan
from trainwright.state.atomic import atomic_write_text

README_NAME = "README.md"


def run_dir(experiment_dir: Path, run_name: str) -> Path:
    return Path(experiment_dir) / run_name


def _readme(plan: Plan) -> str:
    rows = "\n".join(
        f"| {r.name} | {r.model} | {r.method} | {r.dataset} | "
        f"{'cpu' if r.gpus is None and r.trains else (r.gpus or '-')} |"
        for r in plan.runs
    )
    return f"""# Experiment: {plan.experiment}

The runs are planned in `runs_plan.md`; where each one stands is in `runs_status.yaml`
(`trainwright runs monitor` prints it as a table).

| Run | Base model | Method | Dataset | GPUs |
|---|---|---|---|---|
{rows}

Each run folder holds its trainer config (`finetune.yaml`), its SLURM script (`finetune.slurm`),
its logs (`logs/`) and, after training, its evaluations (`evaluations/`).

## Notes
"""


def setup_dirs(experiment_dir: Path, plan: Plan, dry_run: bool = False) -> dict[str, Any]:
    """Create what is missing; return what was created and what was already there."""
    created: list[str] = []
    existing: list[str] = []
    for run in plan.runs:
        evals = run_dir(experiment_dir, run.name) / "evaluations"
        (existing if evals.is_dir() else created).append(str(evals))
        if not dry_run:
            evals.mkdir(parents=True, exist_ok=True)
    readme = Path(experiment_dir) / README_NAME
    if readme.exists():
        existing.append(str(readme))
    else:
        created.append(str(readme))
        if not dry_run:
            atomic_write_text(readme, _readme(plan))
    missing = [p for p in created if not dry_run and not Path(p).exists()]
    return {
        "experiment_dir": str(experiment_dir),
        "created": created,
        "existing": existing,
        "verified": not missing,
        "missing": missing,
        "dry_run": dry_run,
    }
