"""The four /train gates: record a decision bound to a content hash, and tell when it is stale.

Each gate's check lives in the room that owns its inputs (dataset/, hardware/, run/) as a module
with two functions:
    check(grimoire, project) -> GateResult     decide GO / NO-GO from the state files
    binding(grimoire, project) -> str           the content hash the decision is bound to now
This module records results in the gate's state file and in status.md, and compares the
recorded hash with the current one: a GO whose inputs changed afterwards is stale, not GO.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from trainwright.clock import now_iso
from trainwright.errors import TrainwrightError
from trainwright.state.grimoire import Grimoire

GO, NO_GO, PENDING = "GO", "NO-GO", "PENDING"


@dataclass(frozen=True)
class GateSpec:
    number: int
    name: str
    kind: str  # the state file that holds the decision
    section: str  # its heading there
    module: str  # where check() and binding() live


GATES: dict[int, GateSpec] = {
    1: GateSpec(1, "dataset", "dataset-report", "Gate 1 Decision", "trainwright.dataset.gate"),
    2: GateSpec(2, "config", "config", "Gate 2 Decision", "trainwright.backends.config_gate"),
    3: GateSpec(
        3, "environment", "environment", "Gate 3 Decision", "trainwright.hardware.env_gate"
    ),
    4: GateSpec(4, "dry run", "progress", "Dry Run (Gate 4)", "trainwright.run.dry_run_gate"),
}
STATUS_KEYS = {
    1: "Gate 1 dataset",
    2: "Gate 2 config",
    3: "Gate 3 environment",
    4: "Gate 4 dry run",
}


@dataclass
class GateResult:
    decision: str  # GO or NO-GO
    reasons: list[str]
    binding: str | None  # content hash of the inputs the decision was made on
    fixes: list[str] = field(default_factory=list)
    updates: dict[str, dict[str, object]] = field(default_factory=dict)  # more fields to record
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.decision not in (GO, NO_GO):
            raise ValueError(f"a gate decides GO or NO-GO, not {self.decision!r}")


def spec(number: int) -> GateSpec:
    if number not in GATES:
        raise TrainwrightError(f"there is no gate {number}: the gates are 1 to 4")
    return GATES[number]


def _module(s: GateSpec) -> ModuleType:
    try:
        return importlib.import_module(s.module)
    except ModuleNotFoundError as exc:
        if exc.name and s.module.startswith(exc.name):
            raise TrainwrightError(
                f"Gate {s.number} ({s.name}) has no check in this version of trainwright"
            ) from None
        raise


def record(grimoire: Grimoire, project: str, number: int, result: GateResult) -> None:
    """Write the decision into the gate's file and status.md (validated, atomic, prose kept)."""
    s = spec(number)
    now = now_iso()
    section = {
        "Decision": result.decision,
        "Bound to": result.binding or "",
        "Decided at": now,
        "Reason": "; ".join(result.reasons),
    }
    updates = {**result.updates}
    updates[s.section] = {**updates.get(s.section, {}), **section}
    grimoire.update(s.kind, updates, project)
    grimoire.update(
        "status", {"": {"Updated": now}, "Gates": {STATUS_KEYS[number]: result.decision}}, project
    )


def check(grimoire: Grimoire, project: str, number: int) -> GateResult:
    """Run gate `number` for `project` and record its decision."""
    s = spec(number)
    grimoire.project_dir(project)  # name check before anything runs
    if not grimoire.path_for(s.kind, project).exists():
        raise TrainwrightError(
            f"project '{project}' has no {s.kind}.md: "
            f"start it with 'trainwright grimoire new {project}'"
        )
    result = _module(s).check(grimoire, project)
    record(grimoire, project, number, result)
    return result


def state(grimoire: Grimoire, project: str, number: int) -> dict[str, Any]:
    """A gate's recorded decision and whether it still holds for the current inputs."""
    s = spec(number)
    _, data = grimoire.read(s.kind, project)
    fields = data["sections"].get(s.section, {})
    decision = fields.get("Decision") or PENDING
    bound = fields.get("Bound to") or None
    current, problem = None, None
    if decision == GO:
        try:
            current = _module(s).binding(grimoire, project)
        except TrainwrightError as exc:
            problem = exc.one_line()
    stale = decision == GO and (problem is not None or (bound or None) != current)
    return {
        "gate": number,
        "name": s.name,
        "decision": decision,
        "bound_to": bound,
        "current": current,
        "stale": stale,
        "ok": decision == GO and not stale,
        "decided_at": fields.get("Decided at"),
        "reason": problem or fields.get("Reason"),
    }


def status(grimoire: Grimoire, project: str) -> dict[str, Any]:
    gates = [state(grimoire, project, n) for n in sorted(GATES)]
    return {"project": project, "ready": all(g["ok"] for g in gates), "gates": gates}
