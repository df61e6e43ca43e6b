"""A throw-away /train project on the tiny backend: generated paintings with captions, intent.md,
tiny.yaml (32 px, so the real trainer runs in seconds) and config.md; plus GO decisions for
Gates 1 and 2 from stand-in gate modules, for the tests of what comes after them."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from trainwright.backends import tiny
from trainwright.backends.tiny_model.data import write_example_dataset
from trainwright.state import gates
from trainwright.state.content_hash import content_hash
from trainwright.state.grimoire import Grimoire

FAST = {"resolution": 32, "epochs": 2, "batch_size": 2, "save_every_n_epochs": 1}


def make_project(root: Path, name: str = "demo", images: int = 4, **config: Any) -> Grimoire:
    g = Grimoire(root / "grimoire")
    g.ensure_base()
    g.new_project(name)
    dataset = root / "dataset"
    write_example_dataset(dataset, images, size=48)
    g.update(
        "intent",
        {
            "": {
                "Type": "style",
                "Base model": "tiny",
                "Trigger word": "exstyle",
                "Dataset folder": str(dataset),
            }
        },
        name,
    )
    tiny.write_project_config(g, name, **{**FAST, **config})
    return g


def set_config(g: Grimoire, name: str, **changes: Any) -> Path:
    """Rewrite tiny.yaml with some keys changed (the way a person would edit it)."""
    import yaml

    path = g.project_dir(name) / tiny.CONFIG_FILE
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _stand_in(number: int) -> types.ModuleType:
    mod = types.ModuleType(f"stand_in_gate_{number}")

    def binding(g: Grimoire, project: str) -> str:
        if number == 2:  # the config gate binds to the config file
            return content_hash(g.project_dir(project) / tiny.CONFIG_FILE).digest
        _, intent = g.read("intent", project)
        return content_hash(intent["sections"][""]["Dataset folder"]).digest

    def check(g: Grimoire, project: str) -> gates.GateResult:
        return gates.GateResult(gates.GO, ["stand-in"], binding(g, project))

    mod.check, mod.binding = check, binding
    return mod


def pass_gates_1_and_2(monkeypatch: pytest.MonkeyPatch, g: Grimoire, name: str) -> None:
    """Gates 1 and 2 belong to other rooms; here they are stand-ins that say GO."""
    for number in (1, 2):
        mod = _stand_in(number)
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
        old = gates.GATES[number]
        monkeypatch.setitem(
            gates.GATES,
            number,
            gates.GateSpec(number, old.name, old.kind, old.section, mod.__name__),
        )
        gates.check(g, name, number)
