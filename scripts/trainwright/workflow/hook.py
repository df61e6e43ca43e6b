"""The edit-lock hook (Claude Code and Codex): read the tool call on stdin, allow or block it.

PreToolUse: exit 0 allows; exit 2 blocks with the reason on stderr (both agents show it to the
model); for Codex the deny decision is also printed as JSON on stdout. A shell call that is
allowed while a ticket is active (and is not recognisably read-only) is bracketed: the state of
the locked source set and of the lock itself is recorded (guard.py).
PostToolUse: the bracket is compared; what the call changed that it may not is put back, logged,
and the reason reaches the model (exit 2, stderr; Codex also gets the JSON decision).
Any failure inside the hook while a ticket is active blocks too (fail closed): a crashing hook
that exited 1 would let the write through.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwright.clock import now_iso
from trainwright.errors import TrainwrightError
from trainwright.workflow import guard
from trainwright.workflow.edit_lock import Governor, Verdict, governors, judge_path, judge_unknown
from trainwright.workflow.lock_rules import load_rules
from trainwright.workflow.shell import patch_paths, read_only, shell_writes
from trainwright.workflow.tickets import list_tickets, project_home
from trainwright.workflow.workflow_state import VIOLATIONS, Updates, WorkflowState, modify

FILE_TOOLS = {"Edit": "file_path", "Write": "file_path", "MultiEdit": "file_path"}
NOTEBOOK_TOOLS = {"NotebookEdit": "notebook_path"}
SHELL_TOOLS = {"Bash", "shell", "local_shell", "exec_command", "container.exec", "unified_exec"}
PATCH_TOOLS = {"apply_patch", "ApplyPatch"}
PATH_KEYS = ("file_path", "notebook_path", "path")
LOG_LOCK_TIMEOUT = 2.0
PREFIX = "trainwright edit lock"


@dataclass
class Write:
    path: str | None
    cwd: Path
    via: str


@dataclass
class Outcome:
    allowed: bool
    message: str = ""
    verdicts: list[Verdict] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)


def _command_text(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        if len(value) >= 3 and os.path.basename(value[0]) in ("bash", "sh", "zsh"):
            if value[1].startswith("-") and "c" in value[1]:
                return value[2]
        return shlex.join(value)
    if isinstance(value, str):
        return value
    raise TrainwrightError("the tool call's 'command' is neither text nor a list of words")


def writes_of(event: dict[str, Any], cwd: Path) -> tuple[str, list[Write]]:
    """The tool's name and every write it would make; raise on a call the hook cannot read."""
    tool = event.get("tool_name")
    data = event.get("tool_input")
    if not isinstance(tool, str) or not isinstance(data, dict):
        raise TrainwrightError("the hook input has no tool_name / tool_input object")
    key = FILE_TOOLS.get(tool) or NOTEBOOK_TOOLS.get(tool)
    if key:
        path = data.get(key)
        if not isinstance(path, str) or not path:
            raise TrainwrightError(f"{tool} call without a '{key}'")
        return tool, [Write(path, cwd, tool)]
    if tool in SHELL_TOOLS or (tool not in PATCH_TOOLS and "command" in data):
        text = _command_text(data.get("command"))
        workdir = data.get("workdir") or data.get("cwd")
        here = Path(workdir) if isinstance(workdir, str) and os.path.isabs(workdir) else cwd
        return tool, [Write(w.path, w.cwd, w.via) for w in shell_writes(text, here)]
    patches = [v for v in data.values() if isinstance(v, str) and "*** Begin Patch" in v]
    if tool in PATCH_TOOLS or patches:
        paths = [p for patch in patches for p in patch_paths(patch)]
        if not paths:
            return tool, [Write(None, cwd, tool)]
        return tool, [Write(p, cwd, tool) for p in paths]
    paths = [data[k] for k in PATH_KEYS if isinstance(data.get(k), str) and data[k]]
    return tool, [Write(p, cwd, tool) for p in paths]


def _violation(
    gov: Governor, tool: str, what: str, home: Path, result: str = "blocked"
) -> str | None:
    """Append a V-NNN line to the ticket's Process Violation Log; None when it cannot."""
    if gov.error is not None:
        return None
    recorded: list[str] = []

    def compute(state: WorkflowState) -> Updates:
        vid = state.next_id("V")
        recorded.append(vid)
        edits = "Unlocked" if state.unlocked else "Locked"
        when = now_iso(utc=True)
        line = f"{when} | {tool} | {what} | Stage {state.stage}, edits {edits} | {result}"
        return {VIOLATIONS: {vid: " ".join(line.split())}}

    try:
        with guard.own_writes(home, [gov.ticket.name]):
            modify(gov.ticket.state_file, compute, timeout=LOG_LOCK_TIMEOUT)
    except TrainwrightError:
        return None
    return recorded[0] if recorded else None


def evaluate(event: dict[str, Any], home: Path, log: bool = True) -> Outcome:
    govs = governors(home)
    if not govs:
        return Outcome(True)
    rules = load_rules(home)
    raw_cwd = event.get("cwd")
    cwd = Path(raw_cwd) if isinstance(raw_cwd, str) and os.path.isabs(raw_cwd) else home
    tool, writes = writes_of(event, cwd)
    verdicts = []
    for w in writes:
        if w.path is None:
            verdicts.append(judge_unknown(w.cwd, w.via, home, govs))
        else:
            full = Path(os.path.expanduser(w.path))
            if not full.is_absolute():
                full = w.cwd / full
            verdicts.append(judge_path(full, rules, home, govs))
    blocked = [v for v in verdicts if not v.allowed]
    if not blocked:
        if log and _brackets(event):
            guard.open_bracket(event, home, rules, govs)
        return Outcome(True, verdicts=verdicts)
    first = blocked[0]
    logged = []
    if log:
        what = first.path or f"command: {_excerpt(event)}"
        for gov in {id(g): g for v in blocked for g in v.blocking}.values():
            vid = _violation(gov, tool, what, home)
            if vid:
                logged.append(f"{vid} in {gov.ticket.name}")
    more = f" (and {len(blocked) - 1} more blocked write(s))" if len(blocked) > 1 else ""
    note = f" Logged as {', '.join(logged)}." if logged else ""
    message = f"{PREFIX}: {tool} blocked: {first.reason}.{more}{note}"
    return Outcome(False, message, verdicts, logged)


def _brackets(event: dict[str, Any]) -> bool:
    """A shell call that is not recognisably read-only gets the before/after check."""
    tool, data = event.get("tool_name"), event.get("tool_input")
    if not isinstance(data, dict) or tool in FILE_TOOLS or tool in NOTEBOOK_TOOLS:
        return False
    if tool not in SHELL_TOOLS and "command" not in data:
        return False
    return not read_only(_command_text(data.get("command")))


def _names(changes: list[guard.Change], home: Path, limit: int = 6) -> str:
    def rel(p: Path) -> str:
        try:
            return p.relative_to(home).as_posix()
        except ValueError:
            return str(p)

    shown = [
        f"{rel(c.path)} ({c.what}{'' if c.restored else ', NOT restored: not kept'})"
        for c in changes[:limit]
    ]
    more = f" and {len(changes) - limit} more" if len(changes) > limit else ""
    return ", ".join(shown) + more


def after(event: dict[str, Any], home: Path) -> Outcome:
    """PostToolUse: compare the bracket, put back what the call may not change, say why."""
    closed = guard.close_bracket(event, home, load_rules(home))
    if closed is None or not (closed.lock_changes or closed.source_changes):
        return Outcome(True)
    tool = str(event.get("tool_name"))
    govs = governors(home)
    parts, logged = [], []
    kept = {
        next(p for p in c.kept.parents if p.parent.name == guard.REVERTED)
        for c in closed.lock_changes + closed.source_changes
        if c.kept
    }
    if closed.lock_changes:
        parts.append(
            f"it changed the edit lock's own state, which is restored: "
            f"{_names(closed.lock_changes, home)}. Ticket state changes go through "
            "'trainwright ticket new|gate|advance|reenter|archive ...'; a person may edit these "
            "files by hand"
        )
        for gov in govs[:1]:
            what = f"lock state changed by: {closed.command}"
            vid = _violation(gov, tool, what, home, "restored")
            if vid:
                logged.append(f"{vid} in {gov.ticket.name}")
    if closed.source_changes:
        first = closed.source_changes[0].path
        verdict = judge_path(first, load_rules(home), home, govs)
        parts.append(
            f"it changed {len(closed.source_changes)} locked source file(s), put back as they "
            f"were: {_names(closed.source_changes, home)}. Why: {verdict.reason}"
        )
        for gov in {id(g): g for g in verdict.blocking}.values():
            vid = _violation(gov, tool, f"source changed by: {closed.command}", home, "reverted")
            if vid:
                logged.append(f"{vid} in {gov.ticket.name}")
    where = (
        f" The attempted versions are kept in {', '.join(sorted(map(str, kept)))}." if kept else ""
    )
    note = f" Logged as {', '.join(logged)}." if logged else ""
    message = f"{PREFIX}: {tool} ran, but " + "; and ".join(parts) + "." + where + note
    return Outcome(False, message)


def _excerpt(event: dict[str, Any]) -> str:
    data = event.get("tool_input") or {}
    text = data.get("command") if isinstance(data, dict) else None
    text = " ".join(str(text).split()) if text is not None else str(event.get("tool_name"))
    return text if len(text) <= 120 else text[:117] + "..."


def _has_tickets(start: Path) -> bool:
    try:
        return bool(list_tickets(project_home(start)))
    except Exception:  # noqa: BLE001 - cannot even look: assume the lock is in force
        return True


def run(stdin_text: str, agent: str, root: Path | None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) for one hook call. Never raises."""
    start = root or _env_root() or Path.cwd()
    post = False
    try:
        try:
            event = json.loads(stdin_text)
        except ValueError:
            raise TrainwrightError("the hook input on stdin is not JSON") from None
        if not isinstance(event, dict):
            raise TrainwrightError("the hook input on stdin is not a JSON object")
        if root is None and _env_root() is None and isinstance(event.get("cwd"), str):
            start = Path(event["cwd"])
        post = event.get("hook_event_name") == "PostToolUse"
        home = project_home(start)
        outcome = after(event, home) if post else evaluate(event, home)
    except Exception as exc:  # noqa: BLE001 - fail closed on anything, say what it was
        if not _has_tickets(start):
            return 0, "", ""
        detail = exc.one_line() if isinstance(exc, TrainwrightError) else repr(exc)
        outcome = Outcome(
            False,
            f"{PREFIX}: blocked to be safe: the hook could not decide ({detail}). A ticket is "
            "active, so writes stay blocked until this is fixed; 'trainwright ticket status' "
            "shows the tickets' state",
        )
    if outcome.allowed:
        return 0, "", ""
    stdout = ""
    if agent == "codex":
        specific: dict[str, str] = {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": outcome.message,
        }
        if post:
            specific = {"hookEventName": "PostToolUse", "additionalContext": outcome.message}
        stdout = json.dumps(
            {"decision": "block", "reason": outcome.message, "hookSpecificOutput": specific}
        )
    return 2, stdout, outcome.message


def _env_root() -> Path | None:
    value = os.environ.get("CLAUDE_PROJECT_DIR")
    return Path(value) if value else None
