"""The edit lock as the agents run it: the registered hook commands, as real subprocesses, fed the
documented PreToolUse JSON on stdin."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, run_cli
from test_workflow_tickets import hand_edit, make, walk_to
from trainwright.workflow.workflow_state import load

VENV_BIN = Path(sys.executable).parent
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
SETTINGS = json.loads((REPO / ".claude" / "settings.json").read_text())
CODEX = json.loads((REPO / ".codex" / "hooks.json").read_text())
SKILL = "llm-fine-tuning"


def registered_command(config: dict, tool: str) -> str:
    """The command the agent would run for `tool`, found the way the agent matches it."""
    hits = [
        hook["command"]
        for entry in config["hooks"]["PreToolUse"]
        if re.fullmatch(entry["matcher"], tool)
        for hook in entry["hooks"]
    ]
    assert len(hits) == 1, (tool, hits)
    return hits[0]


def event(tool: str, cwd: Path, **tool_input: object) -> dict:
    return {
        "session_id": "abc123",
        "transcript_path": "/tmp/transcript.jsonl",
        "cwd": str(cwd),
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": tool,
        "tool_input": tool_input,
    }


def run_hook(
    project: Path,
    payload: dict | str,
    *,
    path: str | None = None,
    extra_env: dict[str, str] | None = None,
    agent: str = "claude",
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    tool = payload["tool_name"] if isinstance(payload, dict) else "Edit"
    config = SETTINGS if agent == "claude" else CODEX
    env = {"PATH": path or f"{VENV_BIN}:{SYSTEM_PATH}", "HOME": str(project.parent)}
    if agent == "claude":
        env["CLAUDE_PROJECT_DIR"] = str(project)
    env.update(extra_env or {})
    return subprocess.run(
        ["sh", "-c", registered_command(config, tool)],
        input=payload if isinstance(payload, str) else json.dumps(payload),
        env=env,
        cwd=cwd or project,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_blocked(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith("trainwright edit lock: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for frag in fragments:
        assert frag in proc.stderr, (frag, proc.stderr)


def assert_allowed(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr == ""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "src" / "train.py").write_text("print('train')\n")
    (root / "configs" / "sft.yaml").write_text("lr: 1e-4\n")
    (root / "nb.ipynb").write_text("{}\n")
    hooks = root / ".claude" / "hooks"
    hooks.mkdir(parents=True)
    shutil.copy2(REPO / ".claude" / "hooks" / "edit-lock.sh", hooks / "edit-lock.sh")
    return root


def file_events(root: Path, target: str) -> list[dict]:
    return [
        event("Edit", root, file_path=target, old_string="a", new_string="b"),
        event("Write", root, file_path=target, content="x = 1\n"),
        event("MultiEdit", root, file_path=target, edits=[{"old_string": "a", "new_string": "b"}]),
        event("NotebookEdit", root, notebook_path=target, new_source="x", cell_id="c1"),
    ]


def test_registered_matchers_cover_the_write_tools() -> None:
    for tool in ("Edit", "Write", "MultiEdit", "NotebookEdit", "Bash"):
        assert "edit-lock.sh" in registered_command(SETTINGS, tool)
    for tool in ("Read", "Grep", "Glob", "WebFetch"):
        assert not any(re.fullmatch(e["matcher"], tool) for e in SETTINGS["hooks"]["PreToolUse"]), (
            tool
        )
    for tool in ("Bash", "shell", "exec_command", "apply_patch"):
        assert "edit-lock.sh" in registered_command(CODEX, tool)
    assert all(h["timeout"] >= 5 for e in SETTINGS["hooks"]["PreToolUse"] for h in e["hooks"])
    assert os.access(REPO / ".claude" / "hooks" / "edit-lock.sh", os.X_OK)


def test_the_bash_tools_are_bracketed_by_a_registered_post_hook() -> None:
    plugin = json.loads((REPO / ".claude-plugin" / "hooks.json").read_text())
    for config in (SETTINGS, CODEX, plugin):
        post = config["hooks"]["PostToolUse"]
        hits = [h for e in post if re.fullmatch(e["matcher"], "Bash") for h in e["hooks"]]
        assert len(hits) == 1 and "edit-lock.sh" in hits[0]["command"], post
        assert hits[0]["timeout"] >= 30
    assert any(re.fullmatch(e["matcher"], "shell") for e in CODEX["hooks"]["PostToolUse"])


def test_no_active_ticket_means_no_lock(project: Path) -> None:
    for ev in file_events(project, str(project / "src" / "train.py")):
        assert_allowed(run_hook(project, ev))
    assert_allowed(run_hook(project, event("Bash", project, command="sed -i s/a/b/ src/train.py")))
    assert_allowed(run_hook(project, "not json at all"))


@pytest.mark.parametrize("tool", ["Edit", "Write", "MultiEdit", "NotebookEdit"])
def test_each_file_tool_is_blocked_on_source_before_stage_4(project: Path, tool: str) -> None:
    ticket = make(project, "t1", SKILL)
    walk_to(ticket, SKILL, 1)
    target = str(project / ("nb.ipynb" if tool == "NotebookEdit" else "src/train.py"))
    ev = next(e for e in file_events(project, target) if e["tool_name"] == tool)
    proc = run_hook(project, ev)
    assert_blocked(
        proc,
        f"{tool} blocked",
        "ticket 't1' is at Stage 1 (Investigation) with source edits Locked",
        "trainwright ticket advance t1 --to 4",
        "Logged as V-001 in t1",
    )
    state = load(ticket.state_file)[1]
    assert list(state.violations) == ["V-001"]
    assert tool in state.violations["V-001"] and target in state.violations["V-001"]
    assert "Stage 1, edits Locked" in state.violations["V-001"]


def test_non_source_and_ticket_paths_stay_writable(project: Path) -> None:
    ticket = make(project, "t1", SKILL)
    for target in (
        ticket.folder / "investigation-notes.md",
        ticket.folder / "probes" / "count_tokens.py",
        project / "README.md",
        project / "docs" / "training.md",
        project / "outputs" / "metrics.json",
        project / "logs" / "run.log",
    ):
        assert_allowed(run_hook(project, event("Write", project, file_path=str(target))))
    assert load(ticket.state_file)[1].violations == {}


def test_relative_paths_resolve_against_the_session_cwd(project: Path) -> None:
    make(project, "t1", SKILL)
    assert_blocked(run_hook(project, event("Edit", project, file_path="src/train.py")))
    sub = project / "src"
    assert_blocked(run_hook(project, event("Write", sub, file_path="train.py"), cwd=sub))
    assert_blocked(run_hook(project, event("Write", sub, file_path="../configs/sft.yaml")))
    assert_allowed(run_hook(project, event("Write", sub, file_path="../notes.txt")))


def test_a_session_opened_in_a_subfolder_still_finds_the_tickets(project: Path) -> None:
    make(project, "t1", SKILL)
    sub = project / "src"
    (sub / ".claude").symlink_to(project / ".claude")
    assert_blocked(run_hook(sub, event("Edit", sub, file_path="train.py")), "t1")


def test_paths_outside_the_project_are_not_the_locks_business(
    project: Path, tmp_path: Path
) -> None:
    make(project, "t1", SKILL)
    assert_allowed(run_hook(project, event("Write", project, file_path=str(tmp_path / "x.py"))))
    assert_allowed(run_hook(project, event("Write", project, file_path="../elsewhere/x.py")))


def test_symlinks_into_the_source_tree_are_followed(project: Path, tmp_path: Path) -> None:
    ticket = make(project, "t1", SKILL)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "link.py").symlink_to(project / "src" / "train.py")
    (ticket.folder / "code").symlink_to(project / "src")
    (ticket.folder / "alias.md").symlink_to(project / "src" / "train.py")
    proc = run_hook(project, event("Write", project, file_path=str(outside / "link.py")))
    assert_blocked(proc, "is a link to", "src/train.py is a source file")
    for target in (ticket.folder / "code" / "train.py", ticket.folder / "alias.md"):
        assert_blocked(run_hook(project, event("Edit", project, file_path=str(target))))
    proc = run_hook(project, event("Bash", project, command=f"echo x > {outside / 'link.py'}"))
    assert_blocked(proc)


DISGUISED = [
    "echo 'import os' > src/train.py",
    "printf 'x' >> configs/sft.yaml",
    "python t.py | tee src/train.py",
    "sed -i 's/print/log/' src/train.py",
    "cp /tmp/other.py src/train.py",
    "cp /tmp/other.py src/",
    "mv src/train.py src/old_train.py",
    "python -c \"open('src/train.py', 'w').write('')\"",
    "python3 - <<'EOF'\nfrom pathlib import Path\nPath('src/train.py').write_text('')\nEOF",
    "cat > src/new_model.py <<'EOF'\nimport torch\nEOF",
    "cd src && perl -pi -e 's/a/b/' train.py",
    "bash -c 'rm src/train.py'",
    "echo x > $TARGET",
    "git checkout -- src/train.py",
]


@pytest.mark.parametrize("command", DISGUISED)
def test_shell_writes_in_disguise_are_blocked(project: Path, command: str) -> None:
    make(project, "t1", SKILL)
    proc = run_hook(project, event("Bash", project, command=command, description="x"))
    assert_blocked(proc, "Bash blocked", "t1")


@pytest.mark.parametrize(
    "command",
    [
        "python src/train.py --config configs/sft.yaml > logs/run.log 2>&1",
        "cat src/train.py; grep -n lr configs/sft.yaml",
        "git status && git diff",
        "echo finding >> tickets/in-progress/t1/investigation-notes.md",
        "trainwright ticket gate t1 Pass --evidence 'checked'",
        "python -c 'import torch; print(torch.__version__)'",
    ],
)
def test_shell_commands_that_write_no_source_run(project: Path, command: str) -> None:
    make(project, "t1", SKILL)
    assert_allowed(run_hook(project, event("Bash", project, command=command)))


def test_stage_4_unlocked_allows_source_but_not_the_state_file(project: Path) -> None:
    ticket = make(project, "t1", SKILL)
    walk_to(ticket, SKILL, 4)
    for ev in file_events(project, str(project / "src" / "train.py"))[:3]:
        assert_allowed(run_hook(project, ev))
    assert_allowed(run_hook(project, event("Bash", project, command="sed -i s/a/b/ src/train.py")))
    for protected in (
        ticket.state_file,
        project / ".claude" / "settings.json",
        project / ".claude" / "hooks" / "edit-lock.sh",
        project / "tickets" / "edit-lock.yaml",
    ):
        proc = run_hook(project, event("Write", project, file_path=str(protected)))
        assert_blocked(proc, "part of the edit lock itself")


def test_after_stage_4_the_block_names_the_reentry(project: Path) -> None:
    ticket = make(project, "t1", SKILL)
    walk_to(ticket, SKILL, 5)
    proc = run_hook(project, event("Edit", project, file_path="src/train.py"))
    assert_blocked(
        proc, "Stage 5 (Training & Validation)", "trainwright ticket reenter t1 --from 5"
    )


def test_one_unlocked_ticket_is_enough_in_a_shared_tree(project: Path) -> None:
    walk_to(make(project, "a", SKILL), SKILL, 4)
    make(project, "b", SKILL)
    assert_allowed(run_hook(project, event("Edit", project, file_path="src/train.py")))


def test_a_corrupt_state_file_fails_closed_with_what_to_fix(project: Path) -> None:
    ticket = make(project, "t1", SKILL)
    walk_to(ticket, SKILL, 4)
    hand_edit(ticket, "- **Current Stage**: 4", "- **Current Stage**: four")
    proc = run_hook(project, event("Edit", project, file_path="src/train.py"))
    assert_blocked(proc, "cannot be trusted", "workflow-state.md:", "'Current Stage'", "repair")
    assert_allowed(run_hook(project, event("Write", project, file_path="README.md")))


def test_an_impossible_state_fails_closed(project: Path) -> None:
    ticket = make(project, "t1", SKILL)
    walk_to(ticket, SKILL, 2)
    hand_edit(ticket, "- **Code Edit Permission**: Locked", "- **Code Edit Permission**: Unlocked")
    proc = run_hook(project, event("Edit", project, file_path="src/train.py"))
    assert_blocked(proc, "Unlocked at Stage 2", "only Stage 4 can be Unlocked", "repair")


def test_a_ticket_folder_without_state_file_fails_closed(project: Path) -> None:
    (project / "tickets" / "in-progress" / "handmade").mkdir(parents=True)
    proc = run_hook(project, event("Edit", project, file_path="src/train.py"))
    assert_blocked(proc, "handmade", "workflow-state.md", "file not found")


def test_bad_input_on_stdin_fails_closed_while_a_ticket_is_active(project: Path) -> None:
    make(project, "t1", SKILL)
    assert_blocked(run_hook(project, "not json"), "blocked to be safe", "not JSON")
    assert_blocked(run_hook(project, json.dumps({"tool_name": "Edit"})), "blocked to be safe")
    assert_blocked(run_hook(project, event("Edit", project)), "without a 'file_path'")


def test_a_broken_lock_rule_file_fails_closed(project: Path) -> None:
    make(project, "t1", SKILL)
    (project / "tickets" / "edit-lock.yaml").write_text("source: [unclosed\n")
    proc = run_hook(project, event("Write", project, file_path="README.md"))
    assert_blocked(proc, "blocked to be safe", "edit-lock.yaml")


def test_the_project_rule_can_move_paths_between_classes(project: Path) -> None:
    make(project, "t1", SKILL)
    (project / "tickets" / "edit-lock.yaml").write_text(
        "add_non_source: ['scratch/**']\nadd_source: ['*.md']\n"
    )
    assert_allowed(run_hook(project, event("Write", project, file_path="scratch/probe.py")))
    assert_blocked(run_hook(project, event("Write", project, file_path="README.md")))
    proc = run_cli("ticket", "check", "scratch/a.py", "README.md", "--json", cwd=project)
    assert proc.returncode == 1
    results = json.loads(proc.stdout)["results"]
    assert [r["allowed"] for r in results] == [True, False]
    assert results[0]["class"] == "non-source" and results[1]["class"] == "source"


def test_missing_trainwright_fails_closed_only_with_a_ticket(project: Path) -> None:
    ev = event("Edit", project, file_path="src/train.py")
    assert_allowed(run_hook(project, ev, path=SYSTEM_PATH))
    make(project, "t1", SKILL)
    proc = run_hook(project, ev, path=SYSTEM_PATH)
    assert_blocked(proc, "trainwright command was not found", "TRAINWRIGHT_BIN")
    proc = run_hook(
        project, ev, path=SYSTEM_PATH, extra_env={"TRAINWRIGHT_BIN": str(VENV_BIN / "trainwright")}
    )
    assert_blocked(proc, "Stage 0")


def test_trainwright_in_the_project_venv_is_found(project: Path) -> None:
    make(project, "t1", SKILL)
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "trainwright").symlink_to(VENV_BIN / "trainwright")
    proc = run_hook(project, event("Edit", project, file_path="src/train.py"), path=SYSTEM_PATH)
    assert_blocked(proc, "Stage 0 (Bootstrap)")


def test_a_crashing_trainwright_fails_closed(project: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-trainwright"
    broken.write_text("#!/bin/sh\necho 'Traceback (most recent call last): ...' >&2\nexit 1\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    make(project, "t1", SKILL)
    proc = run_hook(
        project,
        event("Write", project, file_path="README.md"),
        extra_env={"TRAINWRIGHT_BIN": str(broken)},
    )
    assert proc.returncode == 2
    assert "blocked to be safe" in proc.stderr and "exit code 1" in proc.stderr


def test_codex_gets_the_deny_decision_as_json(project: Path) -> None:
    ticket = make(project, "t1", SKILL)
    ev = event("shell", project, command=["bash", "-lc", "echo x > src/train.py"])
    proc = run_hook(project, ev, agent="codex")
    assert proc.returncode == 2
    decision = json.loads(proc.stdout)
    assert decision["decision"] == "block"
    out = decision["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny" and "t1" in out["permissionDecisionReason"]
    patch = "*** Begin Patch\n*** Update File: src/train.py\n@@\n-a\n+b\n*** End Patch\n"
    proc = run_hook(project, event("apply_patch", project, input=patch), agent="codex")
    assert proc.returncode == 2 and "src/train.py" in proc.stderr
    walk_to(ticket, SKILL, 4)
    assert_allowed(run_hook(project, ev, agent="codex"))


def test_codex_from_a_subfolder_finds_the_project(project: Path, tmp_path: Path) -> None:
    make(project, "t1", SKILL)
    sub = project / "src"
    ev = event("Bash", sub, command="sed -i s/a/b/ train.py")
    assert_blocked(run_hook(project, ev, agent="codex", cwd=sub), "src/train.py")
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    assert_blocked(run_hook(project, ev, agent="codex", cwd=sub), "src/train.py")
    elsewhere = tmp_path / "no-pack-here"
    elsewhere.mkdir()
    assert_allowed(
        run_hook(
            project, event("Bash", elsewhere, command="echo x > a.py"), agent="codex", cwd=elsewhere
        )
    )


def test_the_hook_works_in_a_project_after_trainwright_init(tmp_path: Path) -> None:
    target = tmp_path / "user-project"
    assert run_cli("init", str(target)).returncode == 0
    assert os.access(target / ".claude" / "hooks" / "edit-lock.sh", os.X_OK)
    (target / "train.py").write_text("x = 1\n")
    ev = event("Edit", target, file_path=str(target / "train.py"))
    assert_allowed(run_hook(target, ev))
    assert run_cli("ticket", "new", "first", cwd=target).returncode == 0
    assert_blocked(run_hook(target, ev), "ticket 'first' is at Stage 0")
