"""The source-edit lock: may this write happen now? Used by the PreToolUse hook and `ticket check`.

Who governs a path: the active tickets whose workspace (their git worktree, or the project when
they have none) holds it, the most specific workspace first. A path elsewhere in the project,
outside every ticket's worktree, is governed by all active tickets, and none of them unlocks it.
A path outside the project and every worktree is not this lock's business.

A source path is writable only while a governing ticket is at Stage 4 with edits Unlocked; a
protected path (the lock's own files) not at all while a ticket governs it; anything else always.
A governing ticket whose workflow-state.md cannot be read, or holds an impossible state, blocks
every source write it governs until it is repaired (fail closed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from trainwright.errors import StateFileError
from trainwright.workflow.fsprobe import case_insensitive, fold
from trainwright.workflow.lock_rules import NON_SOURCE, OTHER, PROTECTED, SOURCE, Rules
from trainwright.workflow.stages import IMPLEMENTATION, PLAN, stage
from trainwright.workflow.tickets import Ticket, list_tickets
from trainwright.workflow.workflow_state import WorkflowState, load, problems


@dataclass
class Governor:
    ticket: Ticket
    workspace: Path
    state: WorkflowState | None = None
    error: str | None = None
    repair: str | None = None

    @property
    def unlocked(self) -> bool:
        return self.error is None and self.state is not None and self.state.unlocked


def governors(home: Path) -> list[Governor]:
    """Every active ticket of the project, loaded; a damaged one carries its error."""
    out = []
    for ticket in list_tickets(home):
        gov = Governor(ticket, home.resolve())
        try:
            _, state = load(ticket.state_file)
        except StateFileError as exc:
            gov.error = exc.one_line()
            gov.repair = f"fix that line; 'trainwright ticket status {ticket.name}' explains"
            out.append(gov)
            continue
        gov.state = state
        worktree = state.bootstrap.get("Worktree Path")
        if worktree:
            gov.workspace = Path(os.path.realpath(worktree))
        found = problems(state, ticket.name)
        if found:
            gov.error = f"{ticket.state_file}: {found[0].message}"
            gov.repair = found[0].repair
        out.append(gov)
    return out


def _within(path: Path, folder: Path) -> bool:
    if path == folder or folder in path.parents:
        return True
    if not case_insensitive(folder):
        return False
    a, b = [fold(p, True) for p in path.parts], [fold(p, True) for p in folder.parts]
    return a[: len(b)] == b


def _relative(path: Path, folder: Path) -> str:
    return "/".join(path.parts[len(folder.parts) :])


LOCK_STATE = (
    "tickets",
    "tickets/in-progress",
    "tickets/done",
    "tickets/edit-lock.yaml",
    ".claude",
    ".claude/hooks",
    ".claude/settings.json",
    ".claude/settings.local.json",
    ".codex",
    ".codex/hooks.json",
    ".codex/config.toml",
    ".trainwright",
    ".trainwright/edit-lock",
)
EXPERIMENT_MARK = "runs_plan.md"


def lock_state(home: Path) -> list[Path]:
    """The existing paths that hold the lock: moving, deleting or chmod-ing one (or a folder
    above it) would switch the lock off."""
    found = [home / rel for rel in LOCK_STATE if (home / rel).exists()]
    for ticket in list_tickets(home):
        found += [ticket.folder, ticket.state_file]
    return found


def _holds_lock_state(path: Path, home: Path) -> str | None:
    """The lock-state path that `path` is, or holds (as a folder above it)."""
    for item in lock_state(home):
        if _within(item, path):
            return item.relative_to(home).as_posix()
    return None


def _git_ignored(workspace: Path, rel: str) -> bool:
    """Whether git ignores `rel` in `workspace` (builds go to ignored folders); False outside
    git or on any doubt."""
    if not (workspace / ".git").exists() or shutil.which("git") is None:
        return False
    try:
        proc = subprocess.run(
            ["git", "-C", str(workspace), "check-ignore", "-q", "--", rel],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def experiment_folder(path: Path, workspace: Path) -> Path | None:
    """The experiment folder (one with runs_plan.md) holding `path`, if any: its runs plan,
    run configs and job scripts are ticket artifacts, not source."""
    for folder in path.parents:
        if not _within(folder, workspace):
            return None
        if (folder / EXPERIMENT_MARK).is_file():
            return folder
    return None


@dataclass
class Verdict:
    allowed: bool
    path: str | None  # None: a write the lock could not place
    path_class: str  # source, non-source, protected, other, outside, unknown
    reason: str
    tickets: list[str] = field(default_factory=list)
    blocking: list[Governor] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "class": self.path_class,
            "allowed": self.allowed,
            "reason": self.reason,
            "tickets": self.tickets,
        }


def _owners(path: Path, home: Path, govs: list[Governor]) -> tuple[list[Governor], Path | None]:
    holding = [g for g in govs if _within(path, g.workspace)]
    if holding:
        deepest = max(len(g.workspace.parts) for g in holding)
        chosen = [g for g in holding if len(g.workspace.parts) == deepest]
        return chosen, chosen[0].workspace
    if _within(path, home):
        return govs, None
    return [], None


def _locked_reason(gov: Governor) -> str:
    state = gov.state
    assert state is not None
    name, n = gov.ticket.name, state.stage
    here = (
        f"ticket '{name}' is at Stage {n} ({stage(state.skill, n).name}) with source edits Locked"
    )
    if n < PLAN or (n == PLAN and state.gate(PLAN) != "Pass"):
        how = (
            f"edits unlock only on entering Stage {IMPLEMENTATION} after the Stage {PLAN} plan "
            f"passes; finish the stages in order ('trainwright ticket status {name}' says what is "
            f"next), then 'trainwright ticket advance {name} --to {IMPLEMENTATION}'"
        )
    elif n == PLAN:
        how = f"unlock with 'trainwright ticket advance {name} --to {IMPLEMENTATION}'"
    elif n == IMPLEMENTATION:
        how = (
            f"the Stage {PLAN} plan or requirements are not current; see "
            f"'trainwright ticket status {name}'"
        )
    else:
        how = (
            f"to change code after Stage {IMPLEMENTATION}, classify the problem and return: "
            f"'trainwright ticket reenter {name} --from {n} --class local-fix --reason TEXT' "
            f"(or another class)"
        )
    return f"{here}; {how}. Notes and probes belong in {gov.ticket.folder}/"


def judge_path(path: Path, rules: Rules, home: Path, govs: list[Governor]) -> Verdict:
    """The verdict for one absolute path (checked both as written and with links resolved)."""
    lexical = Path(os.path.normpath(path))
    real = Path(os.path.realpath(lexical))
    verdicts = [_judge_one(p, rules, home, govs) for p in dict.fromkeys((lexical, real))]
    blocked = [v for v in verdicts if not v.allowed]
    if blocked:
        if real != lexical and blocked[0].path == str(real):
            blocked[0].reason = f"{lexical} is a link to {real}: {blocked[0].reason}"
        return blocked[0]
    return verdicts[0]


def _judge_one(path: Path, rules: Rules, home: Path, govs: list[Governor]) -> Verdict:
    owners, workspace = _owners(path, home, govs)
    names = [g.ticket.name for g in owners]
    if not owners:
        return Verdict(True, str(path), "outside", "outside the project and every ticket worktree")
    base = workspace or home
    rel = _relative(path, base)
    kind, pattern = rules.classify(rel, case_insensitive(base))
    held = _holds_lock_state(path, home) if _within(path, home) else None
    if held is not None and kind != PROTECTED:
        return Verdict(
            False,
            str(path),
            PROTECTED,
            f"{rel or '.'} {'is' if held == rel else 'holds'} the edit lock's own state "
            f"({held}): moving, deleting or "
            "changing the permissions of it would switch the lock off, so agent tools may not "
            "while a ticket is active. Ticket changes go through 'trainwright ticket "
            "new|gate|advance|reenter|archive ...'; a person may do it by hand",
            names,
            owners,
        )
    if kind == SOURCE and experiment_folder(path, base) is not None:
        folder = experiment_folder(path, base)
        return Verdict(
            True,
            str(path),
            NON_SOURCE,
            f"{rel} is an experiment file ({EXPERIMENT_MARK} in {folder}): a ticket artifact",
            names,
        )
    if kind == PROTECTED:
        return Verdict(
            False,
            str(path),
            kind,
            f"{rel} is part of the edit lock itself (protected by '{pattern}'): agent tools may "
            "not write it while a ticket is active. Ticket state changes go through "
            "'trainwright ticket gate|advance|reenter ...'; a person may edit it by hand",
            names,
            owners,
        )
    if kind in (NON_SOURCE, OTHER):
        why = f"matches '{pattern}'" if pattern else "is not a source file type"
        return Verdict(True, str(path), kind, f"{rel} {why}", names)
    broken = [g for g in owners if g.error]
    if broken:
        g = broken[0]
        return Verdict(
            False,
            str(path),
            SOURCE,
            f"{rel} is a source file and the workflow state of ticket '{g.ticket.name}' cannot "
            f"be trusted, so the lock stays shut: {g.error}; repair: {g.repair}",
            names,
            broken,
        )
    if workspace is not None and any(g.unlocked for g in owners):
        return Verdict(True, str(path), SOURCE, f"{rel} is source; edits are Unlocked", names)
    if _git_ignored(base, rel):
        return Verdict(
            True, str(path), NON_SOURCE, f"{rel} is ignored by git (a build output)", names
        )
    if workspace is None:
        places = ", ".join(f"'{g.ticket.name}' in {g.workspace}" for g in owners)
        return Verdict(
            False,
            str(path),
            SOURCE,
            f"{rel} is a source file in the main checkout, but the active tickets work in their "
            f"own worktrees ({places}); make the change there, at Stage {IMPLEMENTATION}",
            names,
            owners,
        )
    return Verdict(
        False,
        str(path),
        SOURCE,
        f"{rel} is a source file, and " + "; and ".join(_locked_reason(g) for g in owners),
        names,
        owners,
    )


def judge_unknown(cwd: Path, via: str, home: Path, govs: list[Governor]) -> Verdict:
    """A write whose target the lock cannot read: judged as a source write where it runs."""
    owners, workspace = _owners(Path(os.path.realpath(cwd)), home, govs)
    names = [g.ticket.name for g in owners]
    if not owners:
        return Verdict(True, None, "unknown", f"{via}: runs outside the project")
    if (
        workspace is not None
        and not any(g.error for g in owners)
        and any(g.unlocked for g in owners)
    ):
        return Verdict(True, None, "unknown", f"{via}: edits are Unlocked", names)
    detail = "; and ".join(
        _locked_reason(g) if g.error is None and g.state is not None else f"{g.error}"
        for g in owners
    )
    return Verdict(
        False,
        None,
        "unknown",
        f"the lock cannot tell which files '{via}' writes, and it runs in {cwd}, where {detail}. "
        "Name the target file in the command, or ask the person to run it",
        names,
        owners,
    )
