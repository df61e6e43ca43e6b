"""`trainwright runs plan`: a runs_plan.md to edit (never over an existing one), and its status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainwright.cluster.checks import load_plan
from trainwright.cluster.runs_plan import PLAN_NAME
from trainwright.cluster.status import editing, status_path, sync_with_plan
from trainwright.state.atomic import atomic_write_text

LEARNING_RATES = ("3e-4", "1e-4", "5e-5", "2e-4", "5e-4")


def plan_text(
    experiment: str,
    *,
    model: str,
    dataset: str,
    method: str,
    backend: str,
    gpus: str,
    count: int,
    with_base: bool,
    ticket: str | None = None,
) -> str:
    rows = []
    if with_base:
        rows.append(f"| base | {model} | base | {dataset} | - | | | |")
    for i in range(count):
        lr = LEARNING_RATES[i % len(LEARNING_RATES)]
        rows.append(f"| run{i + 1} | {model} | {method} | {dataset} | {gpus} | {lr} | 1 | 4 |")
    table = "\n".join(rows)
    # the staged-workflow ticket this experiment belongs to (`trainwright ticket status` shows it)
    ticket_line = f"- **Ticket**: {ticket}\n" if ticket else ""
    return f"""# Runs plan: {experiment}

One row per run. Edit freely, then check with `trainwright runs validate`.
- Method: lora, qlora, full, or base (the base model itself: evaluated, not fine-tuned).
- GPUs: the total over all nodes (add a Nodes column for multi-node runs; `cpu` for a CPU trainer).
- Optional columns: Nodes, Backend, Learning rate, Epochs, Max steps, Batch size,
  Grad accum, LoRA rank, LoRA alpha, Max seq len, Packed, Seed, Time, Sweep, Notes.
  Runs with the same Sweep name go to SLURM as one job array.
- Values that every run shares can go once under `## Defaults` as `- **Column**: value`.

- **Experiment**: {experiment}
- **Backend**: {backend}
{ticket_line}
## Runs

| Run | Base model | Method | Dataset | GPUs | Learning rate | Epochs | Batch size |
|---|---|---|---|---|---|---|---|
{table}

## Notes
"""


def scaffold(experiment_dir: Path, **options: Any) -> dict[str, Any]:
    experiment_dir = Path(experiment_dir)
    path = experiment_dir / PLAN_NAME
    created = not path.exists()
    if created:
        name = experiment_dir.resolve().name or "experiment"
        atomic_write_text(path, plan_text(name, **options))
    plan = load_plan(experiment_dir)
    added: list[str] = []
    if plan.ok:
        with editing(experiment_dir) as data:
            added = sync_with_plan(data, plan.experiment, plan.runs)
    from trainwright.workflow.ticket_runs import plan_ticket

    return {
        "plan": str(path),
        "ticket": plan_ticket(path),
        "status": str(status_path(experiment_dir)),
        "created": created,
        "valid": plan.ok,
        "problems": [{"line": p.line, "message": p.message} for p in plan.problems],
        "runs": [r.as_dict() for r in plan.runs],
        "status_added": added,
    }
