"""The re-entry matrix (transitions.yaml): which classes a stage may declare, and their paths."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

from trainwright.errors import TrainwrightError
from trainwright.workflow.stages import STAGE_COUNT


@functools.cache
def _data() -> dict[str, Any]:
    text = (resources.files("trainwright.workflow") / "transitions.yaml").read_text(
        encoding="utf-8"
    )
    return check(yaml.safe_load(text))


def check(data: dict[str, Any]) -> dict[str, Any]:
    """Refuse a matrix whose paths jump or run backwards, or that names an unknown class."""
    for part in ("published", "extensions"):
        for stage, cells in data[part].items():
            for cls, path in cells.items():
                if cls not in data["classes"]:
                    raise TrainwrightError(f"transitions.yaml: unknown class {cls!r} at {stage}")
                if path != list(range(path[0], stage + 1)):
                    raise TrainwrightError(
                        f"transitions.yaml: {part} {stage}/{cls} must walk forward to {stage}"
                    )
    return data


def classes() -> dict[str, str]:
    """Class name -> what it means."""
    return dict(_data()["classes"])


@functools.cache
def cells() -> dict[tuple[int, str], tuple[tuple[int, ...], str]]:
    """(from stage, class) -> (return path, "published" or "extension")."""
    out: dict[tuple[int, str], tuple[tuple[int, ...], str]] = {}
    for part, origin in (("published", "published"), ("extensions", "extension")):
        for stage, row in _data()[part].items():
            for cls, path in row.items():
                if (stage, cls) in out:
                    raise TrainwrightError(f"transitions.yaml: {stage}/{cls} is defined twice")
                out[(stage, cls)] = (tuple(path), origin)
    return out


def allowed_classes(stage: int) -> list[str]:
    return [cls for cls in classes() if (stage, cls) in cells()]


def return_path(stage: int, cls: str) -> tuple[int, ...]:
    if not 0 <= stage < STAGE_COUNT:
        raise TrainwrightError(f"stage {stage} is out of range: stages are 0 to {STAGE_COUNT - 1}")
    if cls not in classes():
        raise TrainwrightError(f"unknown re-entry class {cls!r}; one of: {', '.join(classes())}")
    cell = cells().get((stage, cls))
    if cell is None:
        allowed = allowed_classes(stage)
        hint = (
            f"from Stage {stage} use one of: {', '.join(allowed)}"
            if allowed
            else (f"Stage {stage} has no re-entry: it is the start of the chain")
        )
        raise TrainwrightError(f"re-entry class {cls!r} does not apply at Stage {stage}; {hint}")
    return cell[0]


def path_text(path: tuple[int, ...] | list[int]) -> str:
    return " -> ".join(str(s) for s in path)
