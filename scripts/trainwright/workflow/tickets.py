"""Ticket folders (tickets/in-progress/NAME, tickets/done/NAME) and every transition between stages.

Tickets live in the project's main checkout. A ticket made in a git repository also gets a
worktree on branch codex/NAME (recorded in its bootstrap record); the edit lock governs that
worktree as well as the project.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainwright import pack
from trainwright.clock import now_iso
from trainwright.errors import StateFileError, TrainwrightError
from trainwright.state.atomic import atomic_write_text, locked
from trainwright.state.document import parse_document, read_document
from trainwright.state.names import check_name
from trainwright.state.schema import validate_document
from trainwright.workflow import git, matrix
from trainwright.workflow.stages import (
    IMPLEMENTATION,
    PLAN,
    STAGE_COUNT,
    check_skill,
    check_stage_number,
    stage,
    stages_for,
)
from trainwright.workflow.workflow_state import (
    BOOTSTRAP_KEYS,
    DECLARATION,
    EVIDENCE,
    FILE,
    GATE_STATUSES,
    GATES,
    REQUIREMENTS,
    REQUIREMENTS_KIND,
    SNAPSHOT,
    TRANSITIONS,
    Problem,
    Updates,
    WorkflowState,
    check_rendered,
    checklist,
    load,
    modify,
    problems,
    render_requirements,
    render_state,
)

IN_PROGRESS = "in-progress"
DONE = "done"
DEFAULT_SKILL = "llm-fine-tuning"
PLAN_READY = ("Plan-ready", "Refined")


class Refused(Exception):
    """A precondition said no (a gate not passed, an artifact missing): exit 1, nothing written."""


def _has_tickets(folder: Path) -> bool:
    return (folder / "tickets" / IN_PROGRESS).is_dir() or (folder / "tickets" / DONE).is_dir()


def find_root(start: Path) -> Path:
    """The project `start` belongs to: the outermost folder above it holding tickets (so a git
    repository nested inside a project does not hide the project's tickets), else the nearest
    folder with tickets/ or .git, else `start`."""
    start = start.resolve()
    chain = (start, *start.parents)
    ticketed = [folder for folder in chain if _has_tickets(folder)]
    if ticketed:
        return ticketed[-1]
    for folder in chain:
        if (folder / "tickets").is_dir() or (folder / ".git").exists():
            return folder
    return start


def home_of(root: Path) -> Path:
    """Tickets live in the main checkout; a linked worktree names it in its `.git` file."""
    dot_git = root / ".git"
    if not dot_git.is_file():
        return root
    text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
    if not text.startswith("gitdir:"):
        return root
    gitdir = (root / text.removeprefix("gitdir:").strip()).resolve()
    common = gitdir
    pointer = gitdir / "commondir"
    if pointer.is_file():
        common = (gitdir / pointer.read_text(encoding="utf-8").strip()).resolve()
    return common.parent if common.name == ".git" else root


def project_home(start: Path | None = None) -> Path:
    return home_of(find_root(start or Path.cwd()))


@dataclass
class Ticket:
    name: str
    folder: Path
    where: str  # IN_PROGRESS or DONE

    @property
    def state_file(self) -> Path:
        return self.folder / FILE


def tickets_dir(home: Path, where: str = IN_PROGRESS) -> Path:
    return home / "tickets" / where


def list_tickets(home: Path, where: str = IN_PROGRESS) -> list[Ticket]:
    folder = tickets_dir(home, where)
    if not folder.is_dir():
        return []
    return [
        Ticket(p.name, p, where)
        for p in sorted(folder.iterdir())
        if p.is_dir() and not p.name.startswith(".")
    ]


def get_ticket(home: Path, name: str) -> Ticket:
    check_name(name, "ticket name")
    for where in (IN_PROGRESS, DONE):
        folder = tickets_dir(home, where) / name
        if folder.is_dir():
            return Ticket(name, folder, where)
    known = [t.name for t in list_tickets(home)]
    listing = f" (active: {', '.join(known)})" if known else " (there are no active tickets)"
    raise TrainwrightError(
        f"no ticket {name!r} under {home / 'tickets'}{listing}; start one with "
        f"'trainwright ticket new {name}'"
    )


def active_ticket(home: Path, name: str) -> Ticket:
    ticket = get_ticket(home, name)
    if ticket.where == DONE:
        raise TrainwrightError(
            f"ticket {name!r} is archived in tickets/done; 'trainwright ticket reopen {name}' first"
        )
    if not ticket.state_file.exists():
        raise StateFileError(
            ticket.state_file,
            f"missing; 'trainwright ticket new {name}' writes it and keeps the other files",
        )
    return ticket


# --- artifacts -------------------------------------------------------------------------------


def _squash(text: str) -> str:
    return " ".join(text.split())


def _template_text(skill: str, number: int) -> str | None:
    st = stage(skill, number)
    if not st.template:
        return None
    try:
        return pack.read_text(f".claude/skills/{skill}/stages/{st.folder}/{st.template}")
    except TrainwrightError:
        return None


def artifact_problem(ticket: Ticket, skill: str, number: int) -> str | None:
    """Why Stage `number`'s artifact does not yet allow its gate to pass (None: it does)."""
    st = stage(skill, number)
    path = ticket.folder / st.artifact
    if not path.is_file():
        return f"{st.artifact} is missing from {ticket.folder}"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"{st.artifact} cannot be read ({exc})"
    if not text.strip():
        return f"{st.artifact} is empty"
    if st.artifact == REQUIREMENTS:
        try:
            status = validate_document(parse_document(text, path), REQUIREMENTS_KIND)
        except StateFileError as exc:
            return exc.one_line()
        status = status["sections"][""]["Status"]
        if number > 0 and status not in PLAN_READY:
            return f"{REQUIREMENTS} is still {status}; Stage {number} needs Plan-ready or Refined"
        return None
    template = _template_text(skill, number)
    if template is not None and _squash(template) == _squash(text):
        return f"{st.artifact} is still the blank template; fill it in"
    return None


def _plan_current(ticket: Ticket, state: WorkflowState) -> bool:
    return (
        state.gate(PLAN) == "Pass"
        and artifact_problem(ticket, state.skill, PLAN) is None
        and artifact_problem(ticket, state.skill, 2) is None
    )


# --- creating a ticket -----------------------------------------------------------------------


def new_ticket(
    home: Path,
    name: str,
    skill: str = DEFAULT_SKILL,
    base: str | None = None,
    worktree: Path | None = None,
    use_worktree: bool = True,
) -> dict[str, Any]:
    check_name(name, "ticket name")
    check_skill(skill)
    folder = tickets_dir(home) / name
    if (tickets_dir(home, DONE) / name).exists():
        raise TrainwrightError(
            f"ticket {name!r} is archived in tickets/done; 'trainwright ticket reopen {name}'"
        )
    if (folder / FILE).exists():
        raise TrainwrightError(
            f"ticket {name!r} already exists; 'trainwright ticket status {name}' shows where it is"
        )
    requirements = folder / REQUIREMENTS
    if requirements.exists():
        validate_document(read_document(requirements), REQUIREMENTS_KIND)
    created = now_iso(utc=True)
    record: dict[str, str | None] = dict.fromkeys(BOOTSTRAP_KEYS)
    record.update({"Project Root": str(home), "Created": created})
    action = None
    if git.is_repo(home) and use_worktree:
        chosen = git.resolve_base(home, base)
        branch = git.BRANCH_PREFIX + name
        path = (worktree or home.parent / f"{home.name}-worktrees" / name).resolve()
        action = git.ensure_worktree(home, path, branch, chosen.ref)
        record.update(
            {
                "Mode": "git",
                "Base Remote": chosen.remote,
                "Base Branch": chosen.branch,
                "Base Resolved From": chosen.resolved_from,
                "Finalization Target": chosen.finalization_target,
                "Remote Refs Refreshed": chosen.refreshed,
                "Worktree Path": str(path),
                "Ticket Branch": branch,
            }
        )
    elif git.is_repo(home):
        if base:
            raise TrainwrightError("--base needs a worktree; drop --no-worktree or --base")
        record["Mode"] = "git"
        record["Remote Refs Refreshed"] = "no (--no-worktree: no ticket branch made)"
    else:
        if base or worktree:
            raise TrainwrightError(
                f"{home} is not a git repository: --base and --worktree need one"
            )
        record["Mode"] = "non-git"
    text = render_state(skill, name, created, record)
    check_rendered(text, folder / FILE, "workflow-state")
    kept = []
    with locked(folder):
        if requirements.exists():
            kept.append(str(requirements))
        else:
            atomic_write_text(requirements, render_requirements(skill, name))
        atomic_write_text(folder / FILE, text)
    return {
        "ticket": name,
        "skill": skill,
        "folder": str(folder),
        "state_file": str(folder / FILE),
        "requirements": str(requirements),
        "kept": kept,
        "mode": record["Mode"],
        "base_remote": record["Base Remote"],
        "base_branch": record["Base Branch"],
        "base_resolved_from": record["Base Resolved From"],
        "finalization_target": record["Finalization Target"],
        "remote_refs_refreshed": record["Remote Refs Refreshed"],
        "worktree": record["Worktree Path"],
        "worktree_action": action,
        "branch": record["Ticket Branch"],
        "stage": 0,
        "permission": "Locked",
    }


# --- transitions -----------------------------------------------------------------------------


def _log(state: WorkflowState, text: str) -> tuple[str, Updates]:
    tid = state.next_id("T")
    entry = f"{now_iso(utc=True)} | {text}"
    return tid, {TRANSITIONS: {tid: entry}, SNAPSHOT: {"Last Transition ID": tid}}


def _merge(*parts: Updates) -> Updates:
    out: Updates = {}
    for part in parts:
        for section, fields in part.items():
            out.setdefault(section, {}).update(fields)
    return out


def _position(state: WorkflowState, number: int, unlocked: bool) -> Updates:
    return {
        SNAPSHOT: {
            "Current Stage": number,
            "Next Stage": number + 1 if number + 1 < STAGE_COUNT else None,
            "Code Edit Permission": "Unlocked" if unlocked else "Locked",
        }
    }


def _gate(state: WorkflowState, number: int, status: str, evidence: str | None = None) -> Updates:
    key = state.gate_keys.get(number, stage(state.skill, number).label)
    out: Updates = {GATES: {key: status}}
    if evidence is not None:
        out[EVIDENCE] = {key: evidence}
    return out


def _end_reentry(state: WorkflowState) -> Updates:
    return {SNAPSHOT: {"Active Re-Entry": False, "Re-Entry Classification": None}}


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def set_gate(
    ticket: Ticket, status: str, evidence: str | None, number: int | None = None
) -> WorkflowState:
    if status not in GATE_STATUSES:
        raise TrainwrightError(f"gate status {status!r} is not one of: {', '.join(GATE_STATUSES)}")
    evidence = _one_line(evidence)

    def compute(state: WorkflowState) -> Updates:
        n = state.stage if number is None else check_stage_number(number)
        if n != state.stage:
            raise TrainwrightError(
                f"only the current stage's gate can be set: {ticket.name} is at Stage "
                f"{state.stage}, not {n}"
            )
        if status in ("Pass", "Fail", "Blocked") and not evidence:
            raise TrainwrightError(f"a {status} gate needs --evidence saying why")
        if status == "Pass":
            problem = artifact_problem(ticket, state.skill, n)
            if problem:
                raise Refused(f"the Stage {n} gate cannot pass: {problem}")
        updates = _gate(state, n, status, evidence or None)
        trigger = state.declaration.get("Trigger Stage")
        if state.reentry_active and trigger == n:
            done = status != "Blocked" if state.reentry_class == "blocked" else status == "Pass"
            if done:
                updates = _merge(updates, _end_reentry(state))
        _, log = _log(state, f"gate | Stage {n} {status} | {evidence or '-'}")
        return _merge(updates, log)

    return modify(ticket.state_file, compute, folder_name=ticket.name)


def advance(ticket: Ticket, to: int) -> WorkflowState:
    check_stage_number(to)

    def compute(state: WorkflowState) -> Updates:
        cur = state.stage
        if to == cur:
            raise TrainwrightError(f"{ticket.name} is already at Stage {cur}")
        if to < cur:
            raise TrainwrightError(
                f"going back from Stage {cur} to {to} is a re-entry: 'trainwright ticket reenter "
                f"{ticket.name} --from {cur} --class CLASS --reason TEXT'"
            )
        if to > cur + 1:
            raise TrainwrightError(
                f"cannot skip Stage {cur + 1}: stages advance one at a time; the next is "
                f"'trainwright ticket advance {ticket.name} --to {cur + 1}'"
            )
        if state.gate(cur) != "Pass":
            raise Refused(
                f"the Stage {cur} gate is {state.gate(cur)}; mark it with evidence first: "
                f"'trainwright ticket gate {ticket.name} Pass --evidence TEXT'"
            )
        problem = artifact_problem(ticket, state.skill, cur)
        if problem:
            raise Refused(f"cannot leave Stage {cur}: {problem}")
        current = _plan_current(ticket, state)
        unlocked = to == IMPLEMENTATION and current
        updates = _merge(
            _position(state, to, unlocked),
            _gate(state, to, "In Progress"),
            checklist(state, current, to, unlocked),
        )
        edits = "edits Unlocked" if unlocked else "edits Locked"
        if to == IMPLEMENTATION and not unlocked:
            edits += " (upstream artifacts not current)"
        _, log = _log(state, f"advance | {cur} -> {to} | {edits}")
        return _merge(updates, log)

    return modify(ticket.state_file, compute, folder_name=ticket.name)


def reenter(ticket: Ticket, frm: int, cls: str, reason: str) -> WorkflowState:
    check_stage_number(frm)
    reason = _one_line(reason)

    def compute(state: WorkflowState) -> Updates:
        if frm != state.stage:
            raise TrainwrightError(
                f"{ticket.name} is at Stage {state.stage}, not {frm}: declare re-entry from "
                "the stage where the problem showed"
            )
        path = matrix.return_path(frm, cls)
        if not reason:
            raise TrainwrightError("a re-entry needs --reason saying what showed the problem")
        tid = state.next_id("T")
        land = path[0]
        if cls == "blocked":
            gates = _gate(state, frm, "Blocked", reason)
        else:
            gates = {}
            for n in path:
                status = "In Progress" if n == land else "Not Started"
                gates = _merge(gates, _gate(state, n, status, f"reset by {tid} ({cls})"))
        after = dataclasses.replace(state, gates=dict(state.gates))
        for key, value in gates.get(GATES, {}).items():
            after.gates[int(key.split()[1])] = str(value)
        current = _plan_current(ticket, after)
        unlocked = land == IMPLEMENTATION and current
        updates = _merge(
            _position(state, land, unlocked),
            gates,
            checklist(after, current, land, unlocked),
            {
                SNAPSHOT: {"Active Re-Entry": True, "Re-Entry Classification": cls},
                DECLARATION: {
                    "Trigger Stage": frm,
                    "Classification": cls,
                    "Return Path": matrix.path_text(path),
                    "Reason": reason,
                    "Declared In": tid,
                },
            },
        )
        lock_first = "edits Locked first, " if frm > IMPLEMENTATION or land != frm else ""
        edits = "Unlocked" if unlocked else "Locked"
        _, log = _log(
            state,
            f"reenter {cls} | from {frm} via {matrix.path_text(path)} | {lock_first}"
            f"now Stage {land}, edits {edits} | {reason}",
        )
        return _merge(updates, log)

    return modify(ticket.state_file, compute, folder_name=ticket.name)


def archive(home: Path, ticket: Ticket, user_verified: bool) -> Ticket:
    if not user_verified:
        raise TrainwrightError(
            "a ticket is archived only after the person verified the result: add --user-verified"
        )
    dest = tickets_dir(home, DONE) / ticket.name
    if dest.exists():
        raise TrainwrightError(f"{dest} already exists; move it aside first")

    def compute(state: WorkflowState) -> Updates:
        last = STAGE_COUNT - 1
        if state.stage != last:
            raise TrainwrightError(
                f"{ticket.name} is at Stage {state.stage}; archive from Stage {last} "
                f"({stage(state.skill, last).name})"
            )
        problem = artifact_problem(ticket, state.skill, last)
        if problem:
            raise Refused(f"cannot archive: {problem}")
        evidence = _one_line(f"verified by the person; {state.evidence.get(last) or ''}")
        _, log = _log(state, f"archive | {last} -> done | user verified")
        return _merge(_gate(state, last, "Pass", evidence.rstrip("; ")), _end_reentry(state), log)

    modify(ticket.state_file, compute, folder_name=ticket.name)
    with locked(home / "tickets"):
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(ticket.folder, dest)
    return Ticket(ticket.name, dest, DONE)


def reopen(home: Path, ticket: Ticket) -> Ticket:
    if ticket.where != DONE:
        raise TrainwrightError(f"ticket {ticket.name!r} is not archived; nothing to reopen")
    dest = tickets_dir(home) / ticket.name
    if dest.exists():
        raise TrainwrightError(f"{dest} already exists; move it aside first")
    _, state = load(ticket.state_file)
    found = problems(state, ticket.name)
    if found:
        raise StateFileError(ticket.state_file, f"{found[0].message}; repair: {found[0].repair}")
    with locked(home / "tickets"):
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(ticket.folder, dest)
    reopened = Ticket(ticket.name, dest, IN_PROGRESS)

    def compute(state: WorkflowState) -> Updates:
        last = STAGE_COUNT - 1
        _, log = _log(state, f"reopen | done -> {last} | classify the new work with reenter")
        return _merge(_position(state, last, False), _gate(state, last, "In Progress"), log)

    modify(reopened.state_file, compute, folder_name=ticket.name)
    return reopened


# --- status ----------------------------------------------------------------------------------


def _next_step(ticket: Ticket, state: WorkflowState) -> str:
    n, name = state.stage, ticket.name
    gate = state.gate(n)
    st = stage(state.skill, n)
    if ticket.where == DONE:
        return f"archived; 'trainwright ticket reopen {name}' to work on it again"
    if gate == "Pass":
        if n == STAGE_COUNT - 1:
            return (
                "ask the person to verify the handoff, then "
                f"'trainwright ticket archive {name} --user-verified'"
            )
        return f"'trainwright ticket advance {name} --to {n + 1}'"
    if gate == "Fail":
        allowed = matrix.allowed_classes(n)
        if allowed:
            return (
                f"classify the failure: 'trainwright ticket reenter {name} --from {n} "
                f"--class {'|'.join(allowed)} --reason TEXT'"
            )
        return f"fix Stage {n} and set its gate again"
    if gate == "Blocked":
        return f"clear the blocker, then 'trainwright ticket gate {name} \"In Progress\"'"
    done_when = "the bootstrap checklist is done" if n == 0 else f"{st.artifact} is filled in"
    return (
        f"work on Stage {n} (stages/{st.folder}/README.md in the {state.skill} skill); when "
        f"{done_when}: 'trainwright ticket gate {name} Pass --evidence TEXT'"
    )


def status(ticket: Ticket) -> dict[str, Any]:
    """Everything `ticket status` shows; a damaged file is reported, with its repair, not raised."""
    out: dict[str, Any] = {
        "ticket": ticket.name,
        "folder": str(ticket.folder),
        "where": ticket.where,
        "state_file": str(ticket.state_file),
    }
    try:
        _, state = load(ticket.state_file)
    except StateFileError as exc:
        out.update(
            ok=False,
            problems=[
                Problem(
                    exc.one_line(),
                    "fix that line by hand (the template in the skill's "
                    "shared/workflow-state-template.md shows the expected lines)",
                ).as_dict()
            ],
        )
        return out
    from trainwright.workflow import ticket_runs

    found = problems(state, ticket.name)
    stages = stages_for(state.skill)
    worktree = state.bootstrap.get("Worktree Path")
    out.update(
        ok=not found,
        skill=state.skill,
        stage=state.stage,
        stage_name=stages[state.stage].name,
        next_stage=state.next_stage,
        permission="Unlocked" if state.unlocked else "Locked",
        gates=[
            {
                "stage": s.number,
                "name": s.name,
                "status": state.gate(s.number),
                "evidence": state.evidence.get(s.number),
                "artifact": s.artifact,
            }
            for s in stages
        ],
        reentry={
            "active": state.reentry_active,
            "classification": state.reentry_class,
            "trigger_stage": state.declaration.get("Trigger Stage"),
            "return_path": state.declaration.get("Return Path"),
            "reason": state.declaration.get("Reason"),
        },
        last_transition={
            "id": state.last_transition,
            "text": state.transitions.get(state.last_transition or ""),
        },
        violations=len(state.violations),
        experiments=ticket_runs.linked(ticket.name, ticket.folder.parents[2], worktree),
        mode=state.bootstrap.get("Mode"),
        worktree=worktree,
        branch=state.bootstrap.get("Ticket Branch"),
        problems=[p.as_dict() for p in found],
        next=(
            "repair the problems above by hand, then run status again"
            if found
            else _next_step(ticket, state)
        ),
    )
    return out
