"""The 0-8 stages of each staged workflow skill, read from stages.yaml."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from trainwright.errors import TrainwrightError

STAGE_COUNT = 9
IMPLEMENTATION = 4  # the only stage in which source edits can be unlocked
PLAN = 3


@dataclass(frozen=True)
class Stage:
    number: int
    name: str
    folder: str
    artifact: str
    template: str | None
    exit: str
    on_failure: str

    @property
    def label(self) -> str:
        return f"Stage {self.number} {self.name}"


@functools.cache
def _data() -> dict[str, Any]:
    text = (resources.files("trainwright.workflow") / "stages.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def skills() -> list[str]:
    return list(_data()["skills"])


def check_skill(skill: str) -> str:
    if skill not in _data()["skills"]:
        raise TrainwrightError(f"unknown workflow skill {skill!r}; one of: {', '.join(skills())}")
    return skill


@functools.cache
def stages_for(skill: str) -> tuple[Stage, ...]:
    data = _data()
    overrides = data["skills"][check_skill(skill)].get("stages", {})
    out = []
    for base in data["stages"]:
        merged = {**base, **overrides.get(base["number"], {})}
        plan = overrides.get(PLAN, {}).get("artifact", "plan.md")
        out.append(
            Stage(
                number=merged["number"],
                name=merged["name"],
                folder=merged["folder"],
                artifact=merged["artifact"],
                template=merged["template"],
                exit=merged["exit"].replace("{plan}", plan),
                on_failure=merged["on_failure"].replace("{plan}", plan),
            )
        )
    return tuple(out)


def stage(skill: str, number: int) -> Stage:
    return stages_for(skill)[check_stage_number(number)]


def check_stage_number(number: int) -> int:
    if not 0 <= number < STAGE_COUNT:
        raise TrainwrightError(f"stage {number} is out of range: stages are 0 to {STAGE_COUNT - 1}")
    return number


def skill_title(skill: str) -> str:
    return _data()["skills"][check_skill(skill)]["title"]
