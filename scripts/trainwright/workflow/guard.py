"""The bracket around a shell call while a ticket is active: record before, compare after, put back.

Reading a shell line for writes cannot be complete (`black src/`, a script, `base64 -d | sh`), so
the hook also watches what happens. Before a Bash call (PreToolUse) it records the source set of
every locked workspace (the files edit_lock.yaml classes as source: in git, tracked and untracked
files that are not ignored; nested repositories included) and the lock's own state (ticket folders
and workflow-state.md, tickets/edit-lock.yaml, the hook and settings files). After the call
(PostToolUse) it compares. Changed source is put back, created source moved aside, deleted source
restored; the attempted versions are kept in the ticket folder under `lock-reverted/`.

Speed: a stat of every file; content is hashed (and kept in a content store under
`.trainwright/edit-lock/objects/`) only for files whose stat differs from the last call's.
`trainwright ticket` and `trainwright init` write the lock's state themselves: they tell the open
brackets through `own_writes`, so their changes are not undone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwright.clock import file_stamp
from trainwright.state.atomic import atomic_write_text
from trainwright.state.content_hash import file_sha256
from trainwright.workflow.edit_lock import EXPERIMENT_MARK, Governor, judge_path
from trainwright.workflow.fsprobe import case_insensitive
from trainwright.workflow.lock_rules import SOURCE, Rules
from trainwright.workflow.tickets import list_tickets

STORE = Path(".trainwright") / "edit-lock"
STALE_S = 12 * 3600
MAX_KEPT = 64 * 1024 * 1024  # larger files are watched but not kept for restoring
GIT_TIMEOUT = 20
SETTINGS = (
    "tickets/edit-lock.yaml",
    ".claude/settings.json",
    ".claude/settings.local.json",
    ".codex/hooks.json",
    ".codex/config.toml",
)
HOOKS_DIR = ".claude/hooks"
REVERTED = "lock-reverted"
Record = dict[str, Any]


def store(home: Path) -> Path:
    return home / STORE


def bracket_key(event: dict[str, Any]) -> str:
    """The same key for a tool call's PreToolUse and PostToolUse."""
    ident = event.get("tool_use_id")
    if not isinstance(ident, str) or not ident:
        ident = json.dumps([event.get("session_id"), event.get("tool_input")], sort_keys=True)
    return hashlib.sha256(ident.encode()).hexdigest()[:24]


# --- files and their content ------------------------------------------------------------------


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode]


class Content:
    """Digests with a stat cache, and a content store to put files back from."""

    def __init__(self, home: Path) -> None:
        self.root = store(home)
        self.objects = self.root / "objects"
        self.cache_file = self.root / "stat-cache.json"
        try:
            self.cache: dict[str, list[Any]] = json.loads(self.cache_file.read_text("utf-8"))
        except (OSError, ValueError):
            self.cache = {}
        self.seen: dict[str, list[Any]] = {}

    def entry(self, path: Path, keep: bool = True) -> list[Any] | None:
        """[mode, digest] of a regular file (None: missing or not a file); content kept."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        key = _stat_key(st)
        cached = self.cache.get(str(path))
        if cached and cached[:5] == key and (not keep or self._has(cached[5])):
            digest = cached[5]
        else:
            digest = self._digest(path, st.st_size, keep)
        self.seen[str(path)] = [*key, digest]
        return [stat.S_IMODE(st.st_mode), digest]

    def _has(self, digest: str | None) -> bool:
        return digest is not None and (self.objects / digest[:2] / digest).exists()

    def _digest(self, path: Path, size: int, keep: bool) -> str | None:
        try:
            if size > MAX_KEPT or not keep:
                return "big-" + file_sha256(path)[0]
            data = path.read_bytes()
        except OSError:
            return None
        digest = hashlib.sha256(data).hexdigest()
        target = self.objects / digest[:2] / digest
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{digest}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return digest

    def bytes_of(self, digest: str | None) -> bytes | None:
        if digest is None or digest.startswith("big-"):
            return None
        try:
            return (self.objects / digest[:2] / digest).read_bytes()
        except OSError:
            return None

    def save(self) -> None:
        merged = {**self.cache, **self.seen} if len(self.cache) < 200_000 else dict(self.seen)
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.cache_file, json.dumps(merged))


# --- the source set ---------------------------------------------------------------------------


def _git_files(folder: Path) -> list[str] | None:
    if not (folder / ".git").exists() or shutil.which("git") is None:
        return None
    try:
        proc = subprocess.run(
            [
                "git",
                "-C",
                str(folder),
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return [p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def _walk(folder: Path, rules: Rules, fold: bool, skip: set[Path]) -> Iterator[str]:
    for top, dirs, files in os.walk(folder):
        rel_top = os.path.relpath(top, folder)
        rel_top = "" if rel_top == "." else rel_top.replace(os.sep, "/") + "/"
        dirs[:] = [
            d
            for d in dirs
            if d != ".git"
            and Path(top, d) not in skip
            and not rules.skips_folder(rel_top + d, fold)
            and not os.path.islink(os.path.join(top, d))
        ]
        for name in files:
            yield rel_top + name


def source_files(workspace: Path, rules: Rules, skip: set[Path]) -> list[Path]:
    """Every file of `workspace` the rules class as source (experiment folders left out)."""
    fold = case_insensitive(workspace)
    rels: list[str] = []
    pending = [("", workspace)]
    while pending:
        prefix, folder = pending.pop()
        listed = _git_files(folder)
        if listed is None:
            rels += [prefix + r for r in _walk(folder, rules, fold, skip)]
            continue
        for rel in listed:
            full = folder / rel
            if rel.endswith("/") or (full.is_dir() and not full.is_symlink()):
                if full not in skip and not rules.skips_folder(prefix + rel.rstrip("/"), fold):
                    pending.append((prefix + rel.rstrip("/") + "/", full))
            else:
                rels.append(prefix + rel)
    experiments = {
        rel[: -len(EXPERIMENT_MARK)] for rel in rels if rel.split("/")[-1] == EXPERIMENT_MARK
    }
    out = []
    for rel in rels:
        if any(rel.startswith(e) for e in experiments):
            continue
        if rules.classify(rel, fold)[0] == SOURCE:
            out.append(workspace / rel)
    return out


def locked_workspaces(home: Path, rules: Rules, govs: list[Governor]) -> list[Path]:
    """The workspaces (project, ticket worktrees) where writing source is locked now."""
    spaces = dict.fromkeys([home.resolve(), *(g.workspace for g in govs)])
    return [
        ws
        for ws in spaces
        if ws.is_dir()
        and not judge_path(ws / "__trainwright_probe__.py", rules, home, govs).allowed
    ]


# --- the lock's own state ---------------------------------------------------------------------


def _ticket_record(content: Content, folder: Path) -> Record:
    files = {}
    for top, _dirs, names in os.walk(folder):
        if REVERTED in Path(top).relative_to(folder).parts:
            continue
        for name in names:
            full = Path(top, name)
            got = content.entry(full)
            if got is not None:
                files[full.relative_to(folder).as_posix()] = got
    try:
        mode = stat.S_IMODE(os.stat(folder).st_mode)
    except OSError:
        mode = None
    return {"folder": str(folder), "mode": mode, "files": files}


def _settings_paths(home: Path) -> list[Path]:
    paths = [home / rel for rel in SETTINGS]
    hooks = home / HOOKS_DIR
    if hooks.is_dir():
        paths += sorted(p for p in hooks.iterdir() if p.is_file())
    return paths


def lock_record(home: Path, content: Content) -> Record:
    dirs = {}
    for rel in ("tickets", "tickets/in-progress", HOOKS_DIR):
        try:
            dirs[rel] = stat.S_IMODE(os.stat(home / rel).st_mode)
        except OSError:
            dirs[rel] = None
    return {
        "settings": {str(p): content.entry(p) for p in _settings_paths(home)},
        "tickets": {t.name: _ticket_record(content, t.folder) for t in list_tickets(home)},
        "dirs": dirs,
    }


# --- the bracket ------------------------------------------------------------------------------


def open_bracket(event: dict[str, Any], home: Path, rules: Rules, govs: list[Governor]) -> None:
    """PreToolUse: record the source set of the locked workspaces and the lock's state."""
    root = store(home)
    (root / "open").mkdir(parents=True, exist_ok=True)
    if not (root / ".gitignore").exists():
        (root / ".gitignore").write_text("*\n", encoding="utf-8")
    _drop_stale(root / "open")
    content = Content(home)
    spaces = locked_workspaces(home, rules, govs)
    others = {g.workspace for g in govs}
    source: dict[str, list[Any] | None] = {}
    for ws in spaces:
        for path in source_files(ws, rules, others - {ws}):
            source[str(path)] = content.entry(path)
    record = {
        "home": str(home),
        "created": time.time(),
        "command": _command(event),
        "workspaces": [str(ws) for ws in spaces],
        "source": source,
        "lock": lock_record(home, content),
    }
    content.save()
    atomic_write_text(root / "open" / f"{bracket_key(event)}.json", json.dumps(record))


def _command(event: dict[str, Any]) -> str:
    data = event.get("tool_input")
    text = data.get("command") if isinstance(data, dict) else None
    return " ".join(str(text).split())[:200] if text is not None else ""


def _drop_stale(folder: Path) -> None:
    cutoff = time.time() - STALE_S
    for item in folder.glob("*.json"):
        with contextlib.suppress(OSError):
            if item.stat().st_mtime < cutoff:
                item.unlink()


def has_open(home: Path) -> bool:
    folder = store(home) / "open"
    return folder.is_dir() and any(folder.glob("*.json"))


@dataclass
class Change:
    path: Path
    what: str  # changed, created, deleted, mode
    restored: bool = True
    kept: Path | None = None


@dataclass
class Closed:
    command: str
    workspaces: list[Path]
    lock_changes: list[Change] = field(default_factory=list)
    source_changes: list[Change] = field(default_factory=list)


class Restorer:
    """Puts files back from the content store; keeps what it replaces under one aside folder."""

    def __init__(self, content: Content, aside: Path, home: Path) -> None:
        self.content = content
        self.aside = aside
        self.home = home

    def _aside_path(self, path: Path) -> Path:
        try:
            rel = path.relative_to(self.home)
        except ValueError:
            rel = Path("outside-project", *path.parts[1:])
        target = self.aside / rel
        n = 1
        while target.exists() or target.is_symlink():
            target = target.with_name(f"{rel.name}.{n}")
            n += 1
        return target

    def keep_aside(self, path: Path) -> Path | None:
        if not (path.exists() or path.is_symlink()):
            return None
        target = self._aside_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, target)
        except OSError:
            shutil.move(str(path), str(target))
        return target

    def put_back(self, path: Path, entry: list[Any]) -> bool:
        data = self.content.bytes_of(entry[1])
        if data is None:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tw-restore")
        tmp.write_bytes(data)
        os.chmod(tmp, entry[0])
        os.replace(tmp, path)
        return True

    def settle(self, path: Path, before: list[Any] | None, now: list[Any] | None) -> Change | None:
        """Make `path` what it was before; None when it already is."""
        if before == now:
            return None
        if before is None:
            return Change(path, "created", True, self.keep_aside(path))
        if now is not None and now[1] == before[1]:
            with contextlib.suppress(OSError):
                os.chmod(path, before[0])
            return Change(path, "mode")
        what = "deleted" if now is None and not path.exists() else "changed"
        kept = self.keep_aside(path) if what == "changed" or path.exists() else None
        return Change(path, what, self.put_back(path, before), kept)


def _aside_folder(home: Path, ws: Path | None, govs: list[Governor], record: Record) -> Path:
    """The ticket folder that keeps the replaced versions (a governing ticket's, if any)."""
    for gov in govs:
        if ws is None or gov.workspace == ws:
            return gov.ticket.folder
    folders = sorted(t["folder"] for t in record["lock"]["tickets"].values())
    return Path(folders[0]) if folders else store(home)


def close_bracket(event: dict[str, Any], home: Path, rules: Rules) -> Closed | None:
    """PostToolUse: undo what the call did to the lock's state, then to locked source.

    Returns None when no bracket was open for this call (a read-only command, or none active)."""
    from trainwright.workflow.edit_lock import governors

    path = store(home) / "open" / f"{bracket_key(event)}.json"
    try:
        record = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    path.unlink(missing_ok=True)
    content = Content(home)
    closed = Closed(record.get("command", ""), [Path(w) for w in record["workspaces"]])
    stamp = file_stamp() + "-" + bracket_key(event)[:6]
    lazy: dict[str, Restorer] = {}

    def restorer() -> Restorer:
        if "lock" not in lazy:
            folder = _aside_folder(home, None, [], record)
            lazy["lock"] = Restorer(content, folder / REVERTED / stamp, home)
        return lazy["lock"]

    closed.lock_changes = _restore_lock(home, record["lock"], content, restorer)
    govs = governors(home)
    still = set(map(str, locked_workspaces(home, rules, govs)))
    others = {g.workspace for g in govs}
    before: dict[str, list[Any] | None] = record["source"]
    for ws in closed.workspaces:
        if str(ws) not in still:
            continue
        fixer = Restorer(content, _aside_folder(home, ws, govs, record) / REVERTED / stamp, home)
        now_files = {str(p) for p in source_files(ws, rules, others - {ws})}
        for name in sorted(now_files | {p for p in before if Path(p).is_relative_to(ws)}):
            was = before.get(name)
            got = content.entry(Path(name))
            if got == was:
                continue
            change = fixer.settle(Path(name), was, got)
            if change is not None:
                closed.source_changes.append(change)
    for change in closed.source_changes + closed.lock_changes:
        content.seen.pop(str(change.path), None)
    content.save()
    return closed


def _restore_lock(home: Path, before: Record, content: Content, restorer: Any) -> list[Change]:
    changes: list[Change] = []
    for rel, mode in before["dirs"].items():
        p = home / rel
        if mode is not None and p.is_dir():
            with contextlib.suppress(OSError):
                if stat.S_IMODE(os.stat(p).st_mode) != mode:
                    os.chmod(p, mode)
                    changes.append(Change(p, "mode"))
    for name, was in before["settings"].items():
        p = Path(name)
        change = _settle_lazy(restorer, p, was, content.entry(p))
        if change:
            changes.append(change)
    hooks = home / HOOKS_DIR
    if hooks.is_dir():
        for p in sorted(hooks.iterdir()):
            if str(p) not in before["settings"] and (p.is_file() or p.is_symlink()):
                changes.append(Change(p, "created", True, restorer().keep_aside(p)))
    for _name, ticket in before["tickets"].items():
        folder = Path(ticket["folder"])
        if folder.is_dir() and ticket["mode"] is not None:
            with contextlib.suppress(OSError):
                if stat.S_IMODE(os.stat(folder).st_mode) != ticket["mode"]:
                    os.chmod(folder, ticket["mode"])
                    changes.append(Change(folder, "mode"))
        state = folder / "workflow-state.md"
        was_state = ticket["files"].get("workflow-state.md")
        if not state.exists() and was_state is not None:
            # The ticket was moved or deleted: bring back every file it had.
            folder.mkdir(parents=True, exist_ok=True)
            for rel, entry in ticket["files"].items():
                target = folder / rel
                if not target.exists():
                    ok = restorer().put_back(target, entry)
                    changes.append(Change(target, "deleted", ok))
            continue
        change = _settle_lazy(restorer, state, was_state, content.entry(state))
        if change:
            changes.append(change)
    return changes


def _settle_lazy(
    restorer: Any, path: Path, was: list[Any] | None, now: list[Any] | None
) -> Change | None:
    if was == now:
        return None
    return restorer().settle(path, was, now)


# --- trainwright's own writes -----------------------------------------------------------------


@contextlib.contextmanager
def own_writes(home: Path, names: list[str] | None, settings: bool = False) -> Iterator[None]:
    """Around a trainwright command that writes the lock's state: its changes to ticket `names`
    (and the settings, with `settings`) are taken into every open bracket, so the bracket's check
    does not undo them. A change made by something else before the command is not taken in."""
    if not has_open(home):
        yield
        return
    content = Content(home)
    start = lock_record(home, content)
    yield
    content = Content(home)
    end = lock_record(home, content)
    for item in (store(home) / "open").glob("*.json"):
        try:
            record = json.loads(item.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        lock = record["lock"]
        changed = False
        for name in names or []:
            had = lock["tickets"].get(name)
            if had is None or _state_of(had) == _state_of(start["tickets"].get(name)):
                if name in end["tickets"]:
                    lock["tickets"][name] = end["tickets"][name]
                else:
                    lock["tickets"].pop(name, None)
                changed = True
        if names:
            for rel in ("tickets", "tickets/in-progress"):
                lock["dirs"][rel] = end["dirs"][rel]
        if settings:
            for key, value in end["settings"].items():
                if lock["settings"].get(key) == start["settings"].get(key):
                    lock["settings"][key] = value
                    changed = True
            lock["dirs"][HOOKS_DIR] = end["dirs"][HOOKS_DIR]
        if changed:
            atomic_write_text(item, json.dumps(record))
    content.save()


def _state_of(ticket: Record | None) -> Any:
    if ticket is None:
        return None
    return ticket["folder"], ticket["files"].get("workflow-state.md")
