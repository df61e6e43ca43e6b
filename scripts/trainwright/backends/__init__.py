"""Trainers behind one small interface: one module per backend in this package.

A backend module defines, at module level (see kohya.py for a full one, tiny.py for the embedded
trainer):

    NAME, CONFIG_FILE, LOG_FORMAT, HAS_ACCUMULATION, CAN_RESUME   constants
    render_config(**settings) -> {file name: text}      its own files, ready to write
    read_config(path) -> dict                           the main file, parsed
    command(config, *, max_steps, batch_size, accumulation, resume, save) -> argv
        max_steps: the dry-run step limit; batch_size / accumulation: the batch knob
    batch_settings(config) -> (batch, accumulation)
    checkpoint_dir(config) -> Path                      where its checkpoints land
    installed() -> (ok, detail)                         optional
    parse_line(line) -> dict | None                     optional log-parser hook; LOG_FORMAT
                                                        names a parser of trainwright.run.logs

Backends that `trainwright config` can write from a TrainingPlan also define
`render(plan) -> {file: text}`, `OPTIMIZER_KEY` (their column in optimizers.yaml), `KINDS`
(image / llm), optionally `FAMILIES` (the catalog families it can train; others are refused)
and `check_keys(files) -> [problems]` against the names kept as data.
Adding a trainer is adding one module here; nothing else lists them.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from trainwright.errors import TrainwrightError


def module_name(name: str) -> str:
    return (name or "").strip().lower().replace("-", "_")


def names() -> list[str]:
    """Every backend module in this package (those that define NAME)."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg or info.name.startswith("_") or info.name in ("common", "toml", "names"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "NAME"):
            found.append(str(mod.NAME))
    return sorted(found)


def get(name: str) -> ModuleType:
    clean = module_name(name)
    if not clean.isidentifier():
        raise TrainwrightError(f"backend {name!r} is not a backend name")
    try:
        mod = importlib.import_module(f"{__name__}.{clean}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith(__name__):
            raise TrainwrightError(
                f"unknown backend {name!r}; one of: {', '.join(names())}"
            ) from None
        raise
    if not hasattr(mod, "NAME"):
        raise TrainwrightError(f"unknown backend {name!r}; one of: {', '.join(names())}")
    return mod
