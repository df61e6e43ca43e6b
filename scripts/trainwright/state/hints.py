"""The commands the CLI prints as hints (`fix:`, `next:`, `then:`), filled in with real values.

A hint is copied and run as printed, by a person or an agent, so it names no placeholder: the
project's own backend, dataset folder and LoRA file, quoted for the shell.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from trainwright.errors import StateFileError, TrainwrightError
from trainwright.state.grimoire import Grimoire


def shown_path(path: Path | str) -> str:
    """A path as a hint prints it: relative to the working folder when it lies inside it."""
    path = Path(path)
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return shlex.quote(str(path))
    return shlex.quote(str(path) if rel.startswith("..") else rel)


def _top(g: Grimoire, kind: str, project: str) -> dict[str, str]:
    try:
        return g.read(kind, project)[1]["sections"].get("", {})
    except (StateFileError, TrainwrightError, OSError):
        return {}


def backend_for(g: Grimoire, project: str) -> str:
    """config.md's backend; else the one intent.md's base model calls for."""
    recorded = str(_top(g, "config", project).get("Backend") or "").strip()
    if recorded:
        return recorded
    from trainwright import backends
    from trainwright.hardware import catalog

    model_name = str(_top(g, "intent", project).get("Base model") or "").strip()
    if not model_name:
        return backends.default_for_kind("image")  # /train is about image LoRAs first
    try:
        model = catalog.load().get(model_name)
    except (TrainwrightError, KeyError, ValueError):
        return backends.default_for_kind("image")
    return backends.suggested_for(model)


def config_command(g: Grimoire, project: str) -> str:
    """`trainwright config` for the project with its backend (and its recorded preset)."""
    cmd = f"trainwright config --project {project} --backend {backend_for(g, project)}"
    preset = str(_top(g, "config", project).get("Preset") or "").strip()
    if preset in ("quick", "standard", "thorough"):
        cmd += f" --preset {preset}"
    return cmd


def dataset_arg(g: Grimoire, project: str) -> str | None:
    """intent.md's dataset folder, as a hint prints it (None when it names none)."""
    try:
        folder = g.dataset_folder(project)
    except (StateFileError, TrainwrightError, OSError):
        return None
    return shown_path(folder) if folder else None


def final_lora(g: Grimoire, project: str) -> Path | None:
    """The run's newest finished checkpoint (by its epoch and step), or None."""
    from trainwright.run.checkpoints import scan
    from trainwright.run.launch_target import load_plan

    try:
        plan = load_plan(g, project)
        info = getattr(plan.module, "checkpoint_info", None)
        found = [c for c in scan(plan.checkpoint_dir(), info) if not c.writing]
    except (TrainwrightError, ValueError, OSError):
        return None
    return found[-1].path if found else None
