"""Stage 0 in real git repositories: base-branch resolution, remote refresh, worktree + branch."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_cli
from test_workflow_hook import assert_allowed, assert_blocked, event, run_hook
from test_workflow_tickets import walk_to
from trainwright.workflow import tickets
from trainwright.workflow.workflow_state import load


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def commit(repo: Path, name: str, text: str = "x\n") -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"add {name}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(key, "Test")
    for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(key, "test@example.invalid")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture()
def cloned(tmp_path: Path) -> dict[str, Path]:
    """A bare "remote" whose default branch is trunk, and a clone sitting on branch feature."""
    seed = tmp_path / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "trunk")
    commit(seed, "train.py")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(remote))
    proj = tmp_path / "proj"
    git(tmp_path, "clone", "-q", str(remote), str(proj))
    git(proj, "checkout", "-q", "-b", "feature")
    commit(proj, "feature.py")
    # Forget what the clone knows of the remote's HEAD: resolution must ask the remote.
    git(proj, "remote", "set-head", "origin", "--delete")
    # The remote moves on after the clone: only a refresh sees this commit.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(remote), str(other))
    newer = commit(other, "newer.py")
    git(other, "push", "-q", "origin", "trunk")
    return {"proj": proj, "remote": remote, "newer": Path(newer)}


def test_remote_default_branch_after_refresh(cloned: dict[str, Path]) -> None:
    proj = cloned["proj"]
    proc = run_cli("ticket", "new", "sft", "--json", cwd=proj)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    worktree = proj.parent / "proj-worktrees" / "sft"
    assert data["mode"] == "git"
    assert (data["base_remote"], data["base_branch"]) == ("origin", "trunk")
    assert data["base_resolved_from"] == "remote-default"
    assert data["finalization_target"] == "origin/trunk"
    assert data["remote_refs_refreshed"] == "yes"
    assert data["worktree"] == str(worktree) and data["branch"] == "codex/sft"
    assert git(worktree, "rev-parse", "--abbrev-ref", "HEAD") == "codex/sft"
    assert git(worktree, "rev-parse", "HEAD") == str(cloned["newer"])
    assert (worktree / "newer.py").exists() and not (worktree / "feature.py").exists()
    record = load(proj / "tickets/in-progress/sft/workflow-state.md")[1].bootstrap
    assert record["Worktree Path"] == str(worktree) and record["Ticket Branch"] == "codex/sft"
    assert record["Base Resolved From"] == "remote-default" and record["Mode"] == "git"
    # The main checkout is untouched.
    assert git(proj, "rev-parse", "--abbrev-ref", "HEAD") == "feature"


def test_explicit_base_wins(cloned: dict[str, Path]) -> None:
    proj = cloned["proj"]
    data = tickets.new_ticket(proj, "x", base="feature")
    assert (data["base_branch"], data["base_resolved_from"]) == ("feature", "explicit")
    assert data["finalization_target"] == "origin/feature"
    assert git(Path(data["worktree"]), "rev-parse", "HEAD") == git(proj, "rev-parse", "feature")


def test_current_branch_without_a_remote(tmp_path: Path) -> None:
    repo = tmp_path / "solo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "dev")
    commit(repo, "a.py")
    data = tickets.new_ticket(repo, "y", skill="deep-learning-experiment")
    assert (data["base_branch"], data["base_resolved_from"]) == ("dev", "current-branch")
    assert data["base_remote"] is None and data["remote_refs_refreshed"] == "no (no remote)"
    assert data["finalization_target"] == "dev"


def test_existing_ticket_branch_is_reused(cloned: dict[str, Path]) -> None:
    proj = cloned["proj"]
    git(proj, "branch", "codex/again", "feature")
    data = tickets.new_ticket(proj, "again")
    assert data["worktree_action"] == "new worktree on the existing branch"
    assert git(Path(data["worktree"]), "rev-parse", "HEAD") == git(proj, "rev-parse", "feature")


def test_failed_refresh_is_recorded_not_hidden(cloned: dict[str, Path]) -> None:
    proj = cloned["proj"]
    git(proj, "fetch", "-q", "origin")
    cloned["remote"].rename(cloned["remote"].with_suffix(".gone"))
    data = tickets.new_ticket(proj, "offline", base="trunk")
    assert data["remote_refs_refreshed"].startswith("no (git fetch origin failed")
    assert data["base_branch"] == "trunk"


def test_no_worktree_in_git_mode(cloned: dict[str, Path]) -> None:
    data = tickets.new_ticket(cloned["proj"], "plain", use_worktree=False)
    assert data["mode"] == "git" and data["worktree"] is None and data["branch"] is None
    assert "codex/plain" not in git(cloned["proj"], "branch", "--list")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--base", "nope"], "base branch 'nope' was not found locally or on origin"),
        (["--worktree", "{occupied}"], "exists and is not empty"),
        (["--no-worktree", "--base", "trunk"], "--base needs a worktree"),
    ],
)
def test_bad_git_input_creates_nothing(
    cloned: dict[str, Path], tmp_path: Path, args: list[str], fragment: str
) -> None:
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "file").write_text("mine")
    args = [a.replace("{occupied}", str(occupied)) for a in args]
    proj = cloned["proj"]
    proc = run_cli("ticket", "new", "z", *args, cwd=proj)
    assert_one_line_error(proc, fragment)
    assert not (proj / "tickets" / "in-progress" / "z").exists()
    assert "codex/z" not in git(proj, "branch", "--list")
    assert (occupied / "file").read_text() == "mine"


def test_repository_without_commits(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    proc = run_cli("ticket", "new", "first", cwd=repo)
    assert_one_line_error(proc, "no commit yet", "--no-worktree")
    assert run_cli("ticket", "new", "first", "--no-worktree", cwd=repo).returncode == 0


def test_lock_in_the_worktree_and_the_main_checkout(cloned: dict[str, Path]) -> None:
    proj = cloned["proj"]
    (proj / ".claude" / "hooks").mkdir(parents=True)
    hook = Path(__file__).parents[1] / ".claude" / "hooks" / "edit-lock.sh"
    (proj / ".claude" / "hooks" / "edit-lock.sh").write_text(hook.read_text())
    # The pack is committed, as it must be for the worktree to carry the hook.
    commit(proj, ".claude/hooks/edit-lock.sh", hook.read_text())
    data = tickets.new_ticket(proj, "wt", base="feature")
    worktree = Path(data["worktree"])
    ticket = tickets.get_ticket(proj, "wt")
    in_tree = event("Edit", worktree, file_path="train.py")
    in_main = event("Edit", proj, file_path=str(proj / "train.py"))
    # A session opened in the worktree finds the ticket in the main checkout.
    assert_blocked(run_hook(worktree, in_tree), "ticket 'wt' is at Stage 0")
    assert_blocked(run_hook(proj, in_main), "work in their own worktrees", str(worktree))
    status = run_cli("ticket", "status", "wt", "--json", cwd=worktree)
    assert json.loads(status.stdout)["tickets"][0]["folder"] == str(ticket.folder)
    walk_to(ticket, "llm-fine-tuning", 4)
    assert_allowed(run_hook(worktree, in_tree))
    assert_allowed(run_hook(proj, event("Edit", proj, file_path=str(worktree / "train.py"))))
    assert_blocked(run_hook(proj, in_main), "work in their own worktrees")
