"""`trainwright ticket ...`: staged-workflow tickets, their gates, and the edit-lock hook."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from trainwright.errors import TrainwrightError
from trainwright.numeric import Int
from trainwright.output import emit, json_option, wants_json
from trainwright.workflow import matrix, tickets
from trainwright.workflow.stages import skills
from trainwright.workflow.tickets import Ticket
from trainwright.workflow.workflow_state import GATE_STATUSES, WorkflowState


def _home(ctx: click.Context) -> Path:
    """The project. This command's own changes to ticket NAME are told to the edit lock's open
    before/after checks (guard.own_writes), so an agent's `trainwright ticket` is not undone."""
    from trainwright.workflow import guard

    project = (ctx.obj or {}).get("ticket_project")
    home = tickets.project_home(Path(project) if project else None)
    name = ctx.params.get("name")
    if isinstance(name, str):
        ctx.with_resource(guard.own_writes(home, [name]))
    return home


@click.group("ticket")
@click.option(
    "-C",
    "--project",
    "project",
    type=click.Path(file_okay=False, path_type=Path),
    help="Project folder (default: the one holding the current folder; tickets live in the "
    "main checkout even when run from a ticket worktree).",
)
@click.pass_context
def ticket_group(ctx: click.Context, project: Path | None) -> None:
    """Staged-workflow tickets (skills llm-fine-tuning and deep-learning-experiment).

    A ticket is tickets/in-progress/NAME/ with requirements.md and workflow-state.md. It moves
    0 -> 8 one stage at a time, each only when its gate is Pass; source edits are unlocked only
    in Stage 4, and the PreToolUse hook (`trainwright ticket hook`) enforces that.
    """
    ctx.ensure_object(dict)
    ctx.obj["ticket_project"] = project


def _state_summary(state: WorkflowState) -> dict[str, Any]:
    return {
        "ticket": state.ticket,
        "stage": state.stage,
        "permission": "Unlocked" if state.unlocked else "Locked",
        "gate": state.gate(state.stage),
        "reentry_active": state.reentry_active,
        "return_path": state.declaration.get("Return Path") if state.reentry_active else None,
        "last_transition": state.last_transition,
        "transition": state.transitions.get(state.last_transition or ""),
    }


def _refused(exc: tickets.Refused, as_json: bool) -> int:
    """A precondition said no: exit 1, the reason on stderr (and as JSON with --json)."""
    if wants_json(as_json):
        emit({"ok": False, "refused": str(exc)}, as_json, str)
    click.echo(f"trainwright: refused: {exc}", err=True)
    return 1


def _transition(
    ctx: click.Context, name: str, as_json: bool, change: Callable[[Ticket], WorkflowState]
) -> int:
    """Run one state change on active ticket NAME; a refused precondition exits 1."""
    ticket = tickets.active_ticket(_home(ctx), name)
    try:
        state = change(ticket)
    except tickets.Refused as exc:
        return _refused(exc, as_json)
    emit(_state_summary(state), as_json, _moved)
    return 0


def _moved(d: dict[str, Any]) -> str:
    path = f", re-entry path {d['return_path']}" if d["return_path"] else ""
    return (
        f"ticket {d['ticket']}: {d['transition']}\n"
        f"  now Stage {d['stage']}, gate {d['gate']}, edits {d['permission']}{path}"
    )


@ticket_group.command("new")
@click.argument("name")
@click.option(
    "--skill",
    type=click.Choice(skills()),
    default=tickets.DEFAULT_SKILL,
    show_default=True,
    help="Which staged workflow the ticket follows.",
)
@click.option(
    "--base",
    help="Base branch for the ticket branch (default: the remote's default "
    "branch, else the current branch).",
)
@click.option(
    "--worktree",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the ticket worktree goes (default: ../PROJECT-worktrees/NAME).",
)
@click.option("--no-worktree", is_flag=True, help="In a git repository, make no branch/worktree.")
@json_option
@click.pass_context
def new_cmd(
    ctx: click.Context,
    name: str,
    skill: str,
    base: str | None,
    worktree: Path | None,
    no_worktree: bool,
    as_json: bool,
) -> None:
    """Start ticket NAME: requirements.md (Draft) and workflow-state.md (Stage 0, Locked).

    In a git repository it also refreshes the remote refs and creates branch codex/NAME in its
    own worktree, from --base, else the remote's default branch, else the current branch; all of
    it is recorded in the Stage 0 bootstrap record.
    """
    if no_worktree and worktree:
        raise TrainwrightError("--worktree and --no-worktree contradict each other")
    data = tickets.new_ticket(
        _home(ctx), name, skill, base=base, worktree=worktree, use_worktree=not no_worktree
    )

    def human(d: dict[str, Any]) -> str:
        lines = [f"ticket {d['ticket']} ({d['skill']}): {d['folder']}"]
        lines.append(f"  {d['state_file']}: Stage 0 Bootstrap, edits Locked")
        verb = "kept" if d["requirements"] in d["kept"] else "wrote"
        lines.append(f"  {verb} {d['requirements']} (Status Draft)")
        if d["worktree"]:
            lines.append(
                f"  branch {d['branch']} from {d['base_branch']} ({d['base_resolved_from']}), "
                f"worktree {d['worktree']} ({d['worktree_action']})"
            )
            lines.append(f"  remote refs refreshed: {d['remote_refs_refreshed']}")
        else:
            lines.append(f"  {d['mode']} mode: no worktree")
        lines.append(
            f"next: Stage 0 checklist, then 'trainwright ticket gate {d['ticket']} Pass "
            "--evidence TEXT'"
        )
        return "\n".join(lines)

    emit(data, as_json, human)


def _render_status(d: dict[str, Any]) -> str:
    lines = [f"ticket {d['ticket']} ({d.get('skill', '?')}, {d['where']}): {d['folder']}"]
    if "stage" in d:
        lines.append(
            f"  Stage {d['stage']} {d['stage_name']}, edits {d['permission']}"
            + (f", worktree {d['worktree']}" if d.get("worktree") else "")
        )
        for g in d["gates"]:
            mark = ">" if g["stage"] == d["stage"] else " "
            ev = f"  ({g['evidence']})" if g["evidence"] else ""
            lines.append(f"  {mark} {g['stage']} {g['name']:<36} {g['status']}{ev}")
        r = d["reentry"]
        if r["active"]:
            lines.append(
                f"  re-entry: {r['classification']} from Stage {r['trigger_stage']} via "
                f"{r['return_path']} ({r['reason']})"
            )
        last = d["last_transition"]
        if last["id"]:
            lines.append(f"  last transition {last['id']}: {last['text']}")
        if d["violations"]:
            lines.append(f"  process violations logged: {d['violations']}")
        for exp in d.get("experiments", []):
            runs = ", ".join(f"{r['run']} {r['state']}" for r in exp["runs"]) or "no runs yet"
            lines.append(f"  experiment {exp['experiment']}: {runs}")
    for p in d["problems"]:
        lines.append(f"  PROBLEM: {p['message']}")
        lines.append(f"    repair: {p['repair']}")
    if d.get("next"):
        lines.append(f"  next: {d['next']}")
    return "\n".join(lines)


@ticket_group.command("status")
@click.argument("name", required=False)
@json_option
@click.pass_context
def status_cmd(ctx: click.Context, name: str | None, as_json: bool) -> int:
    """Where ticket NAME stands (default: every active ticket): stage, gates, lock, re-entry,
    last transition, the next command. Exit 1 when a workflow-state.md is damaged or holds an
    impossible state; the output says how to repair it."""
    home = _home(ctx)
    if name:
        items = [tickets.status(tickets.get_ticket(home, name))]
    else:
        items = [tickets.status(t) for t in tickets.list_tickets(home)]
    ok = all(i["ok"] for i in items)
    data = {"project": str(home), "ok": ok, "tickets": items}

    def human(d: dict[str, Any]) -> str:
        if not d["tickets"]:
            return f"no active tickets in {d['project']}/tickets/in-progress"
        return "\n".join(_render_status(i) for i in d["tickets"])

    emit(data, as_json, human)
    return 0 if ok else 1


@ticket_group.command("gate")
@click.argument("name")
@click.argument("status", metavar="STATUS")
@click.option("--stage", type=Int(), help="The stage whose gate to set (must be the current one).")
@click.option(
    "--evidence",
    help="Why: what was checked, where the proof is (needed for Pass, Fail and Blocked).",
)
@json_option
@click.pass_context
def gate_cmd(
    ctx: click.Context,
    name: str,
    status: str,
    stage: int | None,
    evidence: str | None,
    as_json: bool,
) -> int:
    """Set the current stage's gate of ticket NAME: one of Pass, Fail, Blocked, "In Progress",
    "Not Started". Pass needs the stage's artifact in the ticket folder, present and filled in
    (exit 1 otherwise, nothing written)."""
    wanted = {s.lower().replace(" ", "").replace("-", ""): s for s in GATE_STATUSES}
    key = status.lower().replace(" ", "").replace("-", "")
    if key not in wanted:
        raise TrainwrightError(f"gate status {status!r} is not one of: {', '.join(GATE_STATUSES)}")
    return _transition(
        ctx, name, as_json, lambda t: tickets.set_gate(t, wanted[key], evidence, stage)
    )


@ticket_group.command("advance")
@click.argument("name")
@click.option("--to", "to", type=Int(), required=True, help="The next stage (current + 1).")
@json_option
@click.pass_context
def advance_cmd(ctx: click.Context, name: str, to: int, as_json: bool) -> int:
    """Move ticket NAME forward one stage. Refused (exit 1) unless the current gate is Pass and
    its artifact is present and filled in; entering Stage 4 with Stage 3 passed unlocks source
    edits, leaving it locks them. Logged as a transition T-NNN."""
    return _transition(ctx, name, as_json, lambda t: tickets.advance(t, to))


@ticket_group.command("reenter")
@click.argument("name")
@click.option(
    "--from",
    "frm",
    type=Int(),
    required=True,
    help="The current stage, where the problem showed.",
)
@click.option(
    "--class",
    "cls",
    type=click.Choice(list(matrix.classes())),
    required=True,
    help="What kind of problem it is; decides the return path (see the Re-Entry Matrix in "
    "workflow-state.md).",
)
@click.option("--reason", required=True, help="What showed the problem.")
@json_option
@click.pass_context
def reenter_cmd(
    ctx: click.Context, name: str, frm: int, cls: str, reason: str, as_json: bool
) -> int:
    """Declare a classified re-entry for ticket NAME: lock edits, record the declaration, and go
    to the first stage of the matrix's return path (its gates, and the later ones on the path,
    are reset so they must pass again)."""
    return _transition(ctx, name, as_json, lambda t: tickets.reenter(t, frm, cls, reason))


@ticket_group.command("archive")
@click.argument("name")
@click.option("--user-verified", is_flag=True, help="The person has verified the result.")
@json_option
@click.pass_context
def archive_cmd(ctx: click.Context, name: str, user_verified: bool, as_json: bool) -> int:
    """Move ticket NAME to tickets/done/ (from Stage 8, with its handoff summary, only after the
    person verified the result)."""
    home = _home(ctx)
    ticket = tickets.active_ticket(home, name)
    try:
        moved = tickets.archive(home, ticket, user_verified)
    except tickets.Refused as exc:
        return _refused(exc, as_json)
    emit(
        {"ticket": name, "where": moved.where, "folder": str(moved.folder)},
        as_json,
        lambda d: f"ticket {d['ticket']} archived: {d['folder']}",
    )
    return 0


@ticket_group.command("reopen")
@click.argument("name")
@json_option
@click.pass_context
def reopen_cmd(ctx: click.Context, name: str, as_json: bool) -> None:
    """Move archived ticket NAME back to tickets/in-progress/ at Stage 8; then classify the new
    work with `ticket reenter NAME --from 8 --class ...`."""
    home = _home(ctx)
    moved = tickets.reopen(home, tickets.get_ticket(home, name))
    emit(
        {"ticket": name, "where": moved.where, "folder": str(moved.folder), "stage": 8},
        as_json,
        lambda d: f"ticket {d['ticket']} reopened at Stage 8: {d['folder']}",
    )


@ticket_group.command("check")
@click.argument("paths", nargs=-1, required=True)
@json_option
@click.pass_context
def check_cmd(ctx: click.Context, paths: tuple[str, ...], as_json: bool) -> int:
    """Would the edit lock let an agent write PATHS now? Says source / non-source / protected and
    why; exit 1 when any would be blocked. Nothing is logged."""
    from trainwright.workflow.edit_lock import governors, judge_path
    from trainwright.workflow.lock_rules import load_rules

    home = _home(ctx)
    govs = governors(home)
    rules = load_rules(home)
    results = []
    for raw in paths:
        full = Path(raw).expanduser()
        full = full if full.is_absolute() else Path.cwd() / full
        if not govs:
            results.append(
                {
                    "path": str(full),
                    "class": None,
                    "allowed": True,
                    "reason": "no active ticket: the lock is off",
                    "tickets": [],
                }
            )
        else:
            results.append(judge_path(full, rules, home, govs).as_dict())
    data = {"project": str(home), "rules": rules.origin, "results": results}

    def human(d: dict[str, Any]) -> str:
        return "\n".join(
            f"{'allow' if r['allowed'] else 'BLOCK'} {r['path']} [{r['class'] or '-'}]: "
            f"{r['reason']}"
            for r in d["results"]
        )

    emit(data, as_json, human)
    return 0 if all(r["allowed"] for r in results) else 1


@ticket_group.command("hook")
@click.option(
    "--agent",
    type=click.Choice(["claude", "codex"]),
    default="claude",
    show_default=True,
    help="Which agent calls: codex also gets the deny decision as JSON on stdout.",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Project folder (default: $CLAUDE_PROJECT_DIR, else the tool call's cwd).",
)
@json_option
def hook_cmd(agent: str, root: Path | None, as_json: bool) -> int:
    """PreToolUse hook: read the tool call JSON on stdin; exit 0 to allow, 2 to block (reason on
    stderr). Registered in .claude/settings.json and .codex/hooks.json via
    .claude/hooks/edit-lock.sh. Blocks every source write while no active ticket governing it is
    at Stage 4 Unlocked, and fails closed on any error while a ticket is active. --json prints
    {"allowed", "reason"} on stdout (for trying a call by hand)."""
    from trainwright.workflow.hook import run

    code, out, err = run(sys.stdin.buffer.read().decode("utf-8", "replace"), agent, root)
    if wants_json(as_json) and not out:
        emit({"allowed": code == 0, "reason": err or None}, True, str)
    elif out:
        click.echo(out)
    if err:
        click.echo(err, err=True)
    return code
