"""workflow-state.md: render it, read a typed view, check it, change it through the state layer.

The file is a state file like the grimoire's: `- **Key**: value` lines under fixed headings,
validated against `state/schemas/workflow-state.schema.json`, rewritten only by changing those
lines (atomic write, advisory lock), so the prose a person adds is kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from trainwright.clock import now_iso
from trainwright.errors import StateFileError
from trainwright.state.atomic import atomic_write_text, locked
from trainwright.state.document import Document, parse_document, read_document, set_fields
from trainwright.state.schema import validate_document
from trainwright.workflow import matrix
from trainwright.workflow.stages import (
    IMPLEMENTATION,
    PLAN,
    STAGE_COUNT,
    skill_title,
    stages_for,
)

KIND = "workflow-state"
REQUIREMENTS_KIND = "requirements"
TICKET_KINDS = (KIND, REQUIREMENTS_KIND)
FILE = "workflow-state.md"
REQUIREMENTS = "requirements.md"

SNAPSHOT = "Current Snapshot"
BOOTSTRAP = "Stage 0 Bootstrap Record"
GATES = "Stage Gates"
EVIDENCE = "Gate Evidence"
CHECKLIST = "Pre-Edit Checklist"
DECLARATION = "Re-Entry Declaration"
TRANSITIONS = "Transition Log"
VIOLATIONS = "Process Violation Log"

GATE_STATUSES = ("Not Started", "In Progress", "Pass", "Fail", "Blocked")
BOOTSTRAP_KEYS = (
    "Mode",
    "Project Root",
    "Base Remote",
    "Base Branch",
    "Base Resolved From",
    "Finalization Target",
    "Remote Refs Refreshed",
    "Worktree Path",
    "Ticket Branch",
    "Created",
)
_STAGE_KEY = re.compile(r"^Stage ([0-8]) ")

Updates = dict[str, dict[str, object]]


def _template(name: str) -> Template:
    text = (resources.files("trainwright.workflow") / "templates" / name).read_text("utf-8")
    return Template(text)


def _field_lines(pairs: list[tuple[str, object]]) -> str:
    return "\n".join(f"- **{k}**: {'' if v is None else v}".rstrip() for k, v in pairs)


def render_state(
    skill: str,
    ticket: str,
    created: str,
    bootstrap: dict[str, str | None],
    preface: str = "",
) -> str:
    stages = stages_for(skill)
    classes = list(matrix.classes())
    cells = matrix.cells()
    rows = []
    for frm in range(1, STAGE_COUNT):
        out = []
        for cls in classes:
            cell = cells.get((frm, cls))
            out.append(
                "-"
                if cell is None
                else matrix.path_text(cell[0]) + ("*" if cell[1] == "extension" else "")
            )
        rows.append(f"| {frm} | " + " | ".join(out) + " |")
    summary = f"{bootstrap.get('Mode')} mode" + (
        f", branch {bootstrap['Ticket Branch']} from {bootstrap.get('Base Branch')}"
        if bootstrap.get("Ticket Branch")
        else ""
    )
    return _template(FILE).substitute(
        ticket=ticket,
        skill=skill,
        skill_title=skill_title(skill),
        created=created,
        preface=f"\n{preface}\n" if preface else "",
        bootstrap=_field_lines([(k, bootstrap.get(k)) for k in BOOTSTRAP_KEYS]),
        gates=_field_lines(
            [(s.label, "In Progress" if s.number == 0 else "Not Started") for s in stages]
        ),
        evidence=_field_lines([(s.label, None) for s in stages]),
        contract="\n".join(
            f"| {s.number} {s.name} | {s.artifact} | {s.exit} | {s.on_failure} |" for s in stages
        ),
        class_header=" | ".join(classes),
        class_rule="---|" * len(classes),
        matrix="\n".join(rows),
        class_notes="\n".join(f"- `{k}`: {v}" for k, v in matrix.classes().items()),
        bootstrap_summary=summary,
    )


def render_requirements(skill: str, ticket: str) -> str:
    return _template(REQUIREMENTS).substitute(ticket=ticket, skill=skill)


@dataclass
class Problem:
    message: str
    repair: str

    def as_dict(self) -> dict[str, str]:
        return {"message": self.message, "repair": self.repair}


@dataclass
class WorkflowState:
    """A typed view of one workflow-state.md."""

    path: Path
    ticket: str
    skill: str
    stage: int
    next_stage: int | None
    unlocked: bool
    reentry_active: bool
    reentry_class: str | None
    last_transition: str | None
    bootstrap: dict[str, Any]
    gates: dict[int, str] = field(default_factory=dict)
    gate_keys: dict[int, str] = field(default_factory=dict)
    evidence: dict[int, str | None] = field(default_factory=dict)
    declaration: dict[str, Any] = field(default_factory=dict)
    transitions: dict[str, str] = field(default_factory=dict)
    violations: dict[str, str] = field(default_factory=dict)
    duplicate_gates: list[int] = field(default_factory=list)

    def gate(self, number: int) -> str:
        return self.gates.get(number, "Not Started")

    def next_id(self, prefix: str) -> str:
        log = self.transitions if prefix == "T" else self.violations
        numbers = [int(k.split("-", 1)[1]) for k in log]
        return f"{prefix}-{max(numbers, default=0) + 1:03d}"


def view(path: Path, data: dict[str, Any]) -> WorkflowState:
    sections = data["sections"]
    snap = sections[SNAPSHOT]
    state = WorkflowState(
        path=path,
        ticket=snap["Ticket"],
        skill=snap["Skill"],
        stage=snap["Current Stage"],
        next_stage=snap.get("Next Stage"),
        unlocked=snap["Code Edit Permission"] == "Unlocked",
        reentry_active=bool(snap["Active Re-Entry"]),
        reentry_class=snap.get("Re-Entry Classification"),
        last_transition=snap.get("Last Transition ID"),
        bootstrap=dict(sections[BOOTSTRAP]),
        declaration=dict(sections[DECLARATION]),
        transitions=dict(sections[TRANSITIONS]),
        violations=dict(sections[VIOLATIONS]),
    )
    for key, value in sections[GATES].items():
        number = int(_STAGE_KEY.match(key).group(1))  # type: ignore[union-attr]
        if number in state.gates:
            state.duplicate_gates.append(number)
        state.gates[number] = value
        state.gate_keys[number] = key
    for key, value in sections[EVIDENCE].items():
        state.evidence[int(_STAGE_KEY.match(key).group(1))] = value  # type: ignore[union-attr]
    return state


def load(path: Path) -> tuple[Document, WorkflowState]:
    """Read and schema-check the file; raise StateFileError (with the line) when it cannot be."""
    doc = read_document(path)
    return doc, view(path, validate_document(doc, KIND))


def problems(state: WorkflowState, folder_name: str | None = None) -> list[Problem]:
    """States no command can produce (a hand edit or a merge gone wrong), each with its repair."""
    out: list[Problem] = []
    stages = stages_for(state.skill)
    label = {s.number: s.label for s in stages}
    for n in sorted(set(state.duplicate_gates)):
        out.append(
            Problem(
                f"Stage {n} has two gate lines under '## {GATES}'",
                f"keep only '- **{label[n]}**: ...' and delete the other line",
            )
        )
    for s in stages:
        if s.number not in state.gates:
            out.append(
                Problem(
                    f"the gate line for {s.label} is missing",
                    f"add '- **{s.label}**: Not Started' under '## {GATES}'",
                )
            )
    if folder_name is not None and state.ticket != folder_name:
        out.append(
            Problem(
                f"the file says Ticket {state.ticket!r} but sits in folder {folder_name!r}",
                f"set '- **Ticket**: {folder_name}' or move the folder back",
            )
        )
    if state.unlocked and state.stage != IMPLEMENTATION:
        out.append(
            Problem(
                f"Code Edit Permission is Unlocked at Stage {state.stage}; "
                f"only Stage {IMPLEMENTATION} can be Unlocked",
                "set '- **Code Edit Permission**: Locked' (the commands unlock it again on "
                f"entering Stage {IMPLEMENTATION})",
            )
        )
    if state.unlocked and state.stage == IMPLEMENTATION and state.gate(PLAN) != "Pass":
        out.append(
            Problem(
                f"edits are Unlocked at Stage {IMPLEMENTATION} but the Stage {PLAN} gate is "
                f"{state.gate(PLAN)}",
                "set '- **Code Edit Permission**: Locked', then re-enter through Stage 3 "
                "(trainwright ticket reenter ... --class plan-impact)",
            )
        )
    for n in range(state.stage):
        if state.gate(n) != "Pass":
            out.append(
                Problem(
                    f"the ticket is at Stage {state.stage} but the {label[n]} gate is "
                    f"{state.gate(n)}, not Pass",
                    f"set '- **Current Stage**: {n}' (and Locked) to go back to it, or set "
                    f"'- **{label[n]}**: Pass' if it did pass",
                )
            )
    for n in range(state.stage + 1, STAGE_COUNT):
        if state.gate(n) != "Not Started":
            out.append(
                Problem(
                    f"the ticket is at Stage {state.stage} but the later {label[n]} gate is "
                    f"{state.gate(n)}",
                    f"set '- **{label[n]}**: Not Started' (a later gate is passed by reaching it)",
                )
            )
    expected_next = state.stage + 1 if state.stage + 1 < STAGE_COUNT else None
    if state.next_stage != expected_next:
        shown = "" if expected_next is None else expected_next
        out.append(
            Problem(
                f"Next Stage is {state.next_stage} but the ticket is at Stage {state.stage}",
                f"set '- **Next Stage**: {shown}'",
            )
        )
    if state.reentry_active and not state.reentry_class:
        out.append(
            Problem(
                "Active Re-Entry is yes but no Re-Entry Classification is given",
                "set the classification the declaration names, or '- **Active Re-Entry**: no'",
            )
        )
    return out


def checklist(state: WorkflowState, plan_current: bool, stage: int, unlocked: bool) -> Updates:
    """The Pre-Edit Checklist for the state a transition is about to write."""
    items = {
        "Stage Is 4": stage == IMPLEMENTATION,
        "Stage 3 Gate Pass": state.gate(PLAN) == "Pass",
        "Upstream Artifacts Current": plan_current,
        "Edits Unlocked": unlocked,
    }
    items["Result"] = all(items.values())
    return {CHECKLIST: {k: "Pass" if v else "Fail" for k, v in items.items()}}


def modify(
    path: Path,
    compute: Callable[[WorkflowState], Updates],
    timeout: float | None = 30.0,
    folder_name: str | None = None,
) -> WorkflowState:
    """Read, check, compute updates from the current content and write, all under the lock.

    A file that fails its schema or holds an impossible state is never rewritten.
    """
    with locked(path.parent, timeout=timeout):
        doc, state = load(path)
        found = problems(state, folder_name)
        if found:
            raise StateFileError(
                path,
                f"{found[0].message}; repair: {found[0].repair} "
                f"(trainwright ticket status {state.ticket} lists every problem)",
            )
        updates = compute(state)
        updates.setdefault(SNAPSHOT, {})["Last Updated"] = now_iso(utc=True)
        new = set_fields(doc, updates)
        data = validate_document(new, KIND)
        atomic_write_text(path, new.text())
    return view(path, data)


def check_rendered(text: str, path: Path, kind: str) -> None:
    validate_document(parse_document(text, path), kind)
