"""The adversarial suite's one format: a table of cases, each run the way a person runs the tool.

A case builds what it needs inside a fresh project folder (made by `trainwright init`), then runs
`trainwright ARGS` as a subprocess whose working folder is the project root, with every flag at its
default. The expected class says what must happen:

- ``clear-error``: exit 2, one line `trainwright: error: ...` on stderr, no traceback;
- ``refused``: exit 1 or 2, a reason on stdout or stderr, no traceback (a NO-GO, a lock refusal);
- ``correct``: exit 0 (or the case's own ``exit``), and the case's ``check`` holds.

For every class, no file that existed before the command (and that the case does not list in
``may_change``) is removed, truncated or rewritten, and the command finishes within ``timeout``
seconds (a hang fails the case). ``check`` may assert more.

Each ``test_*.py`` file in this folder defines ``CASES`` and runs them with ``run_case``;
``bench/reliability.py`` collects every ``CASES`` list to tabulate cases per room and outcome.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOMS = (
    "cli",
    "state",
    "dataset",
    "hardware",
    "backends",
    "run",
    "cluster",
    "evaluate",
    "workflow",
    "retro",
    "cloud",
)
CATEGORIES = (
    "bad-file",
    "hostile-name",
    "corrupt-state",
    "concurrent-state",
    "interrupted-write",
    "path-escape",
    "resource-exhaustion",
    "lying-tool",
    "silent-nonsense",
    "data-loss",
    "hang",
    "lock-escape",
)
CLASSES = ("clear-error", "refused", "correct")

Setup = Callable[[Path], Sequence[str] | None]
Check = Callable[["Result"], None]


@dataclass(frozen=True)
class Case:
    id: str
    room: str
    category: str
    expect: str
    args: Sequence[str] = ()
    setup: Setup | None = None  # may return the args instead (when they name made paths)
    check: Check | None = None
    may_change: Sequence[str] = ()  # glob patterns, relative to the project root
    exit: int | None = None  # for "correct": another expected exit code than 0
    timeout: float = 60.0
    stdin: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.room in ROOMS, self.room
        assert self.category in CATEGORIES, self.category
        assert self.expect in CLASSES, self.expect


@dataclass
class Result:
    case: Case
    project: Path
    proc: subprocess.CompletedProcess[str] | None  # None: it hung
    before: dict[str, str]
    after: dict[str, str]

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    @property
    def out(self) -> str:
        return "" if self.proc is None else self.proc.stdout

    @property
    def err(self) -> str:
        return "" if self.proc is None else self.proc.stderr


def _digest(path: Path) -> str:
    try:
        if path.is_symlink():
            return "link:" + os.readlink(path)
        if not path.is_file():
            return "special"
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    except OSError as exc:
        return f"unreadable:{exc.errno}"


def snapshot(root: Path) -> dict[str, str]:
    """Every file (and link) under root, by relative path, with a digest of its bytes."""
    files: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = Path(dirpath, name)
            files[str(full.relative_to(root))] = _digest(full)
    return files


_TEMPLATE: Path | None = None


def _template(base: Path) -> Path:
    """One `trainwright init` project per test session, copied for each case."""
    global _TEMPLATE
    if _TEMPLATE is None or not _TEMPLATE.is_dir():
        tpl = base / "adversarial-template"
        tpl.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "trainwright", "init", "."],
            cwd=tpl,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        _TEMPLATE = tpl
    return _TEMPLATE


def new_project(tmp: Path) -> Path:
    """A fresh project folder made by `trainwright init`, at tmp/project."""
    project = tmp / "project"
    shutil.copytree(_template(tmp.parent), project, symlinks=True)
    return project


def cli(project: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """Run `trainwright ARGS` from the project root (for a case's setup steps)."""
    return subprocess.run(
        [sys.executable, "-m", "trainwright", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(rel, p) for p in patterns)


def execute(case: Case, tmp: Path) -> Result:
    """Set the case up in a fresh project, run it, and return what happened (asserts nothing)."""
    project = new_project(tmp)
    args = list(case.args)
    if case.setup is not None:
        made = case.setup(project)
        if made is not None:
            args = list(made)
    before = snapshot(project)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "trainwright", *args],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=case.timeout,
            input=case.stdin,
            stdin=None if case.stdin is not None else subprocess.DEVNULL,
            env={**os.environ, **case.env},
        )
    except subprocess.TimeoutExpired:
        proc = None
    return Result(case, project, proc, before, snapshot(project))


def outcome(result: Result) -> str:
    """The class the run actually fell in: one of CLASSES, or 'hang', 'traceback', 'lost-data',
    'wrong-exit', 'check-failed'."""
    case, proc = result.case, result.proc
    if proc is None:
        return "hang"
    if "Traceback (most recent call last)" in proc.stderr + proc.stdout:
        return "traceback"
    lost = [
        rel
        for rel, digest in result.before.items()
        if result.after.get(rel) != digest and not _matches(rel, case.may_change)
    ]
    if lost:
        return "lost-data"
    rc = proc.returncode
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    clear = rc == 2 and len(err_lines) == 1 and err_lines[0].startswith("trainwright: error: ")
    said = bool(proc.stderr.strip() or proc.stdout.strip())
    if case.expect == "refused" and rc in (1, 2) and said:
        got = "refused"
    elif clear:
        got = "clear-error"
    elif rc in (1, 2) and said:
        got = "refused"
    elif rc == (case.exit if case.exit is not None else 0):
        got = "correct"
    else:
        return "wrong-exit"
    if got == case.expect and case.check is not None:
        try:
            case.check(result)
        except AssertionError:
            return "check-failed"
    return got


def run_case(case: Case, tmp: Path) -> None:
    """Run one case and assert it fell in its expected class (for the pytest tables)."""
    result = execute(case, tmp)
    got = outcome(result)
    if got == "check-failed" and case.check is not None:
        case.check(result)  # re-raise with the check's own message
    lost = sorted(
        rel
        for rel, digest in result.before.items()
        if result.after.get(rel) != digest and not _matches(rel, case.may_change)
    )
    assert got == case.expect, (
        f"{case.id}: expected {case.expect}, got {got} (exit {result.returncode})\n"
        f"lost or changed: {lost}\nstdout: {result.out[-2000:]}\nstderr: {result.err[-2000:]}"
    )


def ids(cases: Sequence[Case]) -> list[str]:
    seen = [c.id for c in cases]
    assert len(seen) == len(set(seen)), "duplicate case ids"
    return seen
