"""Stage 0 in a git repository: resolve the base branch, refresh remote refs, make the worktree."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from trainwright.errors import TrainwrightError

BRANCH_PREFIX = "codex/"


def _git(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )


def _out(root: Path, *args: str) -> str | None:
    proc = _git(root, *args)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else "no message"


def is_repo(root: Path) -> bool:
    if shutil.which("git") is None:
        return False
    return _out(root, "rev-parse", "--is-inside-work-tree") == "true"


@dataclass
class Base:
    remote: str | None
    branch: str
    resolved_from: str  # explicit | remote-default | current-branch
    ref: str  # what the ticket branch starts from
    refreshed: str  # "yes" or "no (reason)"

    @property
    def finalization_target(self) -> str:
        return f"{self.remote}/{self.branch}" if self.remote else self.branch


def _remote(root: Path) -> str | None:
    names = (_out(root, "remote") or "").split()
    if not names:
        return None
    return "origin" if "origin" in names else names[0]


def _refresh(root: Path, remote: str | None) -> str:
    if remote is None:
        return "no (no remote)"
    proc = _git(root, "fetch", "--prune", remote)
    if proc.returncode != 0:
        return f"no (git fetch {remote} failed: {_first_line(proc.stderr)})"
    return "yes"


def _remote_default(root: Path, remote: str) -> str | None:
    ref = _out(root, "symbolic-ref", "--quiet", f"refs/remotes/{remote}/HEAD")
    if ref:
        return ref.removeprefix(f"refs/remotes/{remote}/")
    listing = _out(root, "ls-remote", "--symref", remote, "HEAD") or ""
    for line in listing.splitlines():
        if line.startswith("ref: refs/heads/") and line.endswith("HEAD"):
            return line.split()[1].removeprefix("refs/heads/")
    return None


def _has_commit(root: Path, ref: str) -> bool:
    return _out(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}") is not None


def resolve_base(root: Path, explicit: str | None) -> Base:
    """The explicit branch, else the remote's default branch, else the current branch."""
    remote = _remote(root)
    refreshed = _refresh(root, remote)
    if explicit:
        branch = explicit.removeprefix(f"{remote}/") if remote else explicit
        how = "explicit"
    else:
        branch = _remote_default(root, remote) if remote else None
        how = "remote-default"
        if branch is None:
            branch, how = _out(root, "symbolic-ref", "--quiet", "--short", "HEAD"), "current-branch"
        if not branch:
            raise TrainwrightError(
                "cannot tell the base branch (detached HEAD, no remote default): give --base BRANCH"
            )
    if remote and _has_commit(root, f"refs/remotes/{remote}/{branch}"):
        return Base(remote, branch, how, f"{remote}/{branch}", refreshed)
    if _has_commit(root, f"refs/heads/{branch}"):
        return Base(remote, branch, how, branch, refreshed)
    if how == "current-branch":
        raise TrainwrightError(
            f"branch {branch!r} has no commit yet: commit once, or use --no-worktree"
        )
    where = f"locally or on {remote}" if remote else "locally"
    raise TrainwrightError(f"base branch {branch!r} was not found {where}")


def _worktrees(root: Path) -> dict[Path, str | None]:
    """Worktree path -> checked-out branch (None when detached)."""
    out: dict[Path, str | None] = {}
    current: Path | None = None
    for line in (_out(root, "worktree", "list", "--porcelain") or "").splitlines():
        if line.startswith("worktree "):
            current = Path(line[len("worktree ") :]).resolve()
            out[current] = None
        elif line.startswith("branch ") and current is not None:
            out[current] = line[len("branch ") :].removeprefix("refs/heads/")
    return out


def ensure_worktree(root: Path, path: Path, branch: str, base_ref: str) -> str:
    """Create (or reuse) a worktree at `path` on `branch`; say which of the two was reused."""
    path = path.resolve()
    existing = _worktrees(root)
    if path in existing:
        if existing[path] != branch:
            raise TrainwrightError(
                f"{path} is already a worktree on {existing[path] or 'a detached HEAD'}, "
                f"not {branch}; give --worktree another folder"
            )
        return "reused worktree and branch"
    if path.exists() and any(path.iterdir()):
        raise TrainwrightError(f"{path} exists and is not empty; give --worktree another folder")
    if _has_commit(root, f"refs/heads/{branch}"):
        args = ["worktree", "add", str(path), branch]
        how = "new worktree on the existing branch"
    else:
        args = ["worktree", "add", "--no-track", "-b", branch, str(path), base_ref]
        how = "new worktree and branch"
    proc = _git(root, *args)
    if proc.returncode != 0:
        raise TrainwrightError(f"git {' '.join(args[:2])} failed: {_first_line(proc.stderr)}")
    return how
