"""A planned run as torchtune config, through the backend's own writer (backends/torchtune.py).

This file only maps runs_plan.md's columns to the writer's arguments; the config's shape, its
components and the model facts belong to the backend and the model catalog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainwright.cluster.runs_plan import PlannedRun
from trainwright.errors import TrainwrightError

# plan column -> torchtune_config() argument
ARGUMENTS = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "learning_rate": "learning_rate",
    "lora_rank": "lora_rank",
    "lora_alpha": "lora_alpha",
    "max_seq_len": "max_seq_len",
    "seed": "seed",
    "packed": "packed",
    "max_steps": "max_steps_per_epoch",
}
BUILTIN_DATASETS = ("alpaca", "alpaca_cleaned")


def model_problem(name: str) -> str | None:
    """Why torchtune cannot train `name`, or None when the catalog has a torchtune builder."""
    from trainwright.hardware import catalog

    try:
        model = catalog.load().get(name)
    except TrainwrightError as exc:
        return str(exc).split(" (see ")[0]
    if not model.torchtune:
        return f"torchtune 0.6.1 has no model builder for {model.name}"
    return None


def _dataset(run: PlannedRun, experiment_dir: Path) -> str:
    if run.dataset in BUILTIN_DATASETS:
        return run.dataset
    path = Path(run.dataset).expanduser()
    return str(path if path.is_absolute() else (experiment_dir / path).resolve())


def arguments(run: PlannedRun, experiment_dir: Path) -> dict[str, Any]:
    from trainwright.backends.common import PLACEHOLDER

    args: dict[str, Any] = {
        "method": run.method,
        "gpus": run.gpus or 1,
        "checkpoint_dir": run.extra_value("checkpoint dir", "model dir", "weights") or PLACEHOLDER,
        "output_dir": "output",
        "dataset": _dataset(run, experiment_dir),
    }
    for column, argument in ARGUMENTS.items():
        if column in run.params:
            args[argument] = run.params[column]
    return args


def render(run: PlannedRun, folder: Path, experiment_dir: Path) -> str:
    from trainwright.backends import torchtune

    cfg = torchtune.torchtune_config(run.model, **arguments(run, experiment_dir))
    recipe = torchtune.recipe_for(run.method, run.gpus or 1)
    header = (
        f"# torchtune {recipe} config for run '{run.name}' ({run.model}), written by\n"
        "# `trainwright runs torchtune-configs` from runs_plan.md. checkpoint_dir must point at\n"
        "# the downloaded weights (`tune download ...`); a 'Checkpoint dir' column sets it.\n"
    )
    return torchtune.to_yaml(cfg, header)


def problems(config: dict[str, Any], path: Path) -> list[str]:
    """What stops this config from running: placeholders left, packing without a length."""
    from trainwright.backends.common import PLACEHOLDER

    found = []
    checkpointer = config.get("checkpointer") or {}
    if PLACEHOLDER in str(checkpointer.get("checkpoint_dir", "")):
        found.append(
            f"{path}: checkpointer.checkpoint_dir is {PLACEHOLDER}: download the weights "
            "(`tune download ORG/MODEL --output-dir DIR`) and set it, or add a 'Checkpoint dir' "
            "column to the plan"
        )
    dataset = config.get("dataset") or {}
    tokenizer = config.get("tokenizer") or {}
    if isinstance(dataset, dict) and dataset.get("packed") and not tokenizer.get("max_seq_len"):
        found.append(
            f"{path}: dataset.packed is true but tokenizer.max_seq_len is not set; packing "
            "needs a block length"
        )
    return found


def validate(path: Path) -> str | None:
    """`tune validate` through the backend; None when torchtune says the config is well-formed."""
    from trainwright.backends import torchtune

    ok, last = torchtune.validate(path)
    return None if ok else f"{path}: tune validate: {last}"
