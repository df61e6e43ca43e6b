"""What to run for a project: its backend, its config file, its batch knob, from config.md.

config.md's `Backend` names a module in trainwright.backends; its `Config file` is the backend's
main file (relative to the project folder, or absolute). Everything backend-specific that the
run room needs goes through that module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from trainwright.errors import TrainwrightError
from trainwright.state.grimoire import Grimoire
from trainwright.state.hints import config_command


@dataclass
class RunPlan:
    project: str
    folder: Path
    backend: str
    module: ModuleType
    config: Path
    batch: int
    accumulation: int

    @property
    def has_accumulation(self) -> bool:
        return bool(getattr(self.module, "HAS_ACCUMULATION", False))

    @property
    def can_resume(self) -> bool:
        return bool(getattr(self.module, "CAN_RESUME", False))

    @property
    def log_format(self) -> str | None:
        return getattr(self.module, "LOG_FORMAT", None)

    @property
    def line_parser(self) -> Any:
        """The backend's own `parse_line` hook, for logs no parser in run/logs knows."""
        return getattr(self.module, "parse_line", None)

    def command(
        self,
        *,
        batch: int | None = None,
        accumulation: int | None = None,
        resume: bool = False,
        max_steps: int | None = None,
        save: bool = True,
    ) -> list[str]:
        return self.module.command(
            self.config,
            max_steps=max_steps,
            batch_size=batch,
            accumulation=accumulation if self.has_accumulation else None,
            resume=resume and self.can_resume,
            save=save,
        )

    def checkpoint_dir(self) -> Path:
        from trainwright import backends

        return backends.checkpoint_dir(self.module, self.config)


def backend_module(name: str) -> ModuleType:
    from trainwright.backends import get

    return get(name)


def config_files(g: Grimoire, project: str) -> tuple[str, list[Path]]:
    """The backend name and every config file listed in config.md (main file first), checked."""
    _, data = g.read("config", project)
    top = data["sections"][""]
    backend = (top.get("Backend") or "").strip()
    listed = [p.strip() for p in (top.get("Config file") or "").split(",") if p.strip()]
    if not backend or not listed:
        raise TrainwrightError(
            f"config.md of '{project}' names no backend or config file: run "
            f"'{config_command(g, project)}' first"
        )
    paths = []
    for raw in listed:
        path = Path(raw)
        if not path.is_absolute():
            path = g.project_dir(project) / path
        if not path.is_file():
            raise TrainwrightError(f"the config file {path} named in config.md does not exist")
        paths.append(path)
    return backend, paths


def config_path(g: Grimoire, project: str) -> tuple[str, Path]:
    """The backend name and its main config file (the first one config.md lists)."""
    backend, paths = config_files(g, project)
    return backend, paths[0]


def load_plan(g: Grimoire, project: str) -> RunPlan:
    backend, path = config_path(g, project)
    from trainwright import backends

    module = backend_module(backend)
    try:
        batch, accumulation = backends.batch_settings(module, path)
    except ValueError as exc:
        raise TrainwrightError(f"{path}: {exc}") from None
    return RunPlan(project, g.project_dir(project), backend, module, path, batch, accumulation)
