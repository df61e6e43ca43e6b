"""The edit lock holds by what happens (issue 13, section 4): each Bash call while a ticket is
active is bracketed by the registered PreToolUse and PostToolUse hooks, run as Claude Code runs
them, with the real command in between, in a real `trainwright init` project and git repository.
The table of escape commands is tests/adversarial/test_lock.py; here are the rest."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from helpers import run_cli
from lock_bracket import (
    bracket,
    call_hook,
    event,
    git,
    locked_project,
    source_state,
    violations,
)
from test_workflow_tickets import walk_to
from trainwright.workflow import fsprobe, guard
from trainwright.workflow.edit_lock import governors, judge_path
from trainwright.workflow.lock_rules import load_rules
from trainwright.workflow.tickets import find_root, get_ticket

SKILL = "llm-fine-tuning"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    assert run_cli("init", str(root)).returncode == 0
    return locked_project(root)


def state_file(project: Path) -> Path:
    return project / "tickets" / "in-progress" / "t1" / "workflow-state.md"


def write_blocked(project: Path, target: str) -> bool:
    proc = call_hook(project, event(project, "PreToolUse", target, "toolu_w", tool="Write"))
    return proc.returncode == 2


def test_a_script_that_rewrites_source_is_put_back_and_the_attempt_kept(project: Path) -> None:
    (project / "tools").mkdir()
    (project / "tools" / "rewrite.txt").write_text(
        "import pathlib\n"
        "pathlib.Path('src/a.py').write_text('hacked\\n')\n"
        "pathlib.Path('src/new.py').write_text('new\\n')\n"
        "pathlib.Path('src/b.py').unlink()\n"
    )
    before = source_state(project)
    result = bracket(project, "python3 tools/rewrite.txt")
    assert not result.blocked_before and result.ran.returncode == 0
    assert result.reverted_after, result.describe()
    assert source_state(project) == before
    err = result.post.stderr
    assert err.startswith("trainwright edit lock: Bash ran, but it changed 3 locked source")
    for frag in ("src/a.py (changed)", "src/b.py (deleted)", "src/new.py (created)"):
        assert frag in err
    assert "Stage 0" in err and "trainwright ticket advance t1 --to 4" in err
    assert violations(project) == ["V-001"]
    kept = list((state_file(project).parent / "lock-reverted").glob("*/src"))
    assert len(kept) == 1
    assert (kept[0] / "a.py").read_text() == "hacked\n"
    assert (kept[0] / "new.py").read_text() == "new\n"
    assert str(kept[0].parent) in err


def test_removing_the_ticket_behind_the_lock_is_undone(project: Path) -> None:
    (project / "tools").mkdir()
    (project / "tools" / "rm.txt").write_text("import shutil\nshutil.rmtree('tickets')\n")
    notes = state_file(project).parent / "investigation-notes.md"
    notes.write_text("finding 1\n")
    result = bracket(project, "python3 tools/rm.txt")
    assert result.reverted_after, result.describe()
    assert state_file(project).is_file() and notes.read_text() == "finding 1\n"
    assert "edit lock's own state" in result.post.stderr
    # The lock is still on: a source write is blocked afterwards.
    assert write_blocked(project, str(project / "src" / "a.py"))
    assert violations(project)[-2:] == ["V-001", "V-002"]


def test_moving_the_ticket_away_is_blocked_and_source_stays_locked(project: Path) -> None:
    for command in ("mv tickets/in-progress/t1 /tmp/t1-moved", "mv tickets x", "rm -rf tickets"):
        result = bracket(project, command)
        assert result.blocked_before, (command, result.describe())
        assert "lock's own state" in result.pre.stderr
    assert state_file(project).is_file()
    assert write_blocked(project, str(project / "src" / "a.py"))


def test_chmod_of_the_state_file_or_ticket_folder_is_undone(project: Path) -> None:
    mode = stat.S_IMODE(state_file(project).stat().st_mode)
    assert bracket(project, f"chmod 000 {state_file(project)}").blocked_before
    folder = state_file(project).parent
    folder_mode = stat.S_IMODE(folder.stat().st_mode)
    command = "python3 -c 'import os, glob; os.chmod(glob.glob(\"tickets/*/*\")[0], 0)'"
    result = bracket(project, command)
    assert result.reverted_after, result.describe()
    assert stat.S_IMODE(folder.stat().st_mode) == folder_mode
    assert stat.S_IMODE(state_file(project).stat().st_mode) == mode


def test_settings_rewritten_by_a_script_are_restored(project: Path) -> None:
    settings = project / ".claude" / "settings.json"
    original = settings.read_bytes()
    (project / "tools").mkdir()
    (project / "tools" / "s.txt").write_text(
        "import pathlib\npathlib.Path('.claude/settings.json').write_text('{}')\n"
        "pathlib.Path('.claude/settings.local.json').write_text('{\"disableAllHooks\": true}')\n"
    )
    result = bracket(project, "python3 tools/s.txt")
    assert result.reverted_after, result.describe()
    assert settings.read_bytes() == original
    assert not (project / ".claude" / "settings.local.json").exists()


def test_trainwright_init_and_ticket_may_update_the_lock_state(project: Path) -> None:
    settings = project / ".claude" / "settings.json"
    data = json.loads(settings.read_text())
    data["hooks"].pop("PostToolUse")
    settings.write_text(json.dumps(data))  # the person, by hand, between tool calls
    result = bracket(project, "trainwright init . && trainwright ticket gate t1 Pass --evidence ok")
    assert result.ran.returncode == 0, result.ran.stderr
    assert result.post.returncode == 0, result.describe()
    assert "PostToolUse" in json.loads(settings.read_text())["hooks"]
    assert "- **Stage 0 Bootstrap**: Pass" in state_file(project).read_text()
    result = bracket(project, "trainwright ticket advance t1 --to 1")
    assert result.post.returncode == 0, result.describe()
    assert "- **Current Stage**: 1" in state_file(project).read_text()


def test_a_tampered_state_file_is_not_taken_in_by_a_later_ticket_command(project: Path) -> None:
    (project / "tools").mkdir()
    (project / "tools" / "t.txt").write_text(
        "import pathlib\np = pathlib.Path('tickets/in-progress/t1/workflow-state.md')\n"
        "p.write_text(p.read_text().replace('Locked', 'Unlocked'))\n"
    )
    original = state_file(project).read_text()
    result = bracket(project, "python3 tools/t.txt; trainwright ticket status t1 >/dev/null")
    assert result.reverted_after, result.describe()
    text = state_file(project).read_text()
    assert "- **Code Edit Permission**: Locked" in text

    def fixed(doc: str) -> list[str]:
        head = doc.split("## Process Violation Log")[0]
        return [line for line in head.splitlines() if "Last Updated" not in line]

    assert fixed(text) == fixed(original)


def test_investigation_stays_usable(project: Path) -> None:
    (project / "tests").mkdir()
    (project / "tests" / "test_a.py").write_text("def test_one():\n    assert 1\n")
    (project / ".gitignore").write_text("build/\n.pytest_cache/\n__pycache__/\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "tests")
    before = source_state(project)
    commands = [
        f"{os.environ.get('PYTHON', 'python3')} -m pytest -q -p no:cacheprovider tests",
        "python3 -c \"import pathlib; print(len(pathlib.Path('src/a.py').read_text()))\"",
        "mkdir -p build/lib && cp src/a.py build/lib/a.py",
        "mkdir -p .venv/lib/site && cp src/b.py .venv/lib/site/b.py",
        "echo 'lead' >> tickets/in-progress/t1/investigation-notes.md",
        "grep -rn x src | head -3 && git status --short && git log --oneline | head -1",
    ]
    for command in commands:
        result = bracket(project, command)
        assert not result.blocked_before, (command, result.describe())
        assert result.ran.returncode == 0, (command, result.ran.stdout, result.ran.stderr)
        assert not result.reverted_after, (command, result.describe())
    assert source_state(project) == before
    assert (project / "build" / "lib" / "a.py").is_file()
    assert violations(project) == []


def test_experiment_files_are_ticket_artifacts(project: Path) -> None:
    exp = project / "experiments" / "sweep"
    (exp / "r1").mkdir(parents=True)
    (exp / "runs_plan.md").write_text("# plan\n")
    command = (
        'python3 -c "import pathlib; P = pathlib.Path; '
        "P('experiments/sweep/r1/finetune.yaml').write_text('lr: 1\\n'); "
        "P('experiments/sweep/r1/finetune.slurm').write_text('#!/bin/sh\\n'); "
        "P('experiments/sweep/runs_status.yaml').write_text('r1: planned\\n')\""
    )
    result = bracket(project, command)
    assert not result.blocked_before and not result.reverted_after, result.describe()
    assert (exp / "r1" / "finetune.slurm").read_text() == "#!/bin/sh\n"
    assert (exp / "runs_status.yaml").is_file()


def test_read_only_commands_skip_the_bracket(project: Path) -> None:
    open_dir = project / ".trainwright" / "edit-lock" / "open"
    for command in ("ls -la src", "cat src/a.py | grep x", "git status && git diff", "git log -1"):
        proc = call_hook(project, event(project, "PreToolUse", command, "toolu_ro"))
        assert proc.returncode == 0, proc.stderr
        assert not open_dir.exists() or not list(open_dir.iterdir()), command
    proc = call_hook(project, event(project, "PreToolUse", "python3 x.py", "toolu_rw"))
    assert proc.returncode == 0 and len(list(open_dir.glob("*.json"))) == 1


def test_upper_case_extension_is_source(project: Path) -> None:
    assert write_blocked(project, str(project / "src" / "A.PY"))
    assert write_blocked(project, "configs/X.YAML")
    (project / "tools").mkdir()
    (project / "tools" / "u.txt").write_text("open('src/NEW.PY', 'w').write('x')\n")
    result = bracket(project, "python3 tools/u.txt")
    assert result.reverted_after and not (project / "src" / "NEW.PY").exists()


def test_case_folding_follows_the_filesystem(project: Path, monkeypatch) -> None:
    assert fsprobe.case_insensitive(project) is False  # Linux ext4/overlay/tmpfs: probed
    home = project.resolve()
    rules, govs = load_rules(home), governors(home)
    assert judge_path(home / "src" / "A.PY", rules, home, govs).path_class == "source"
    # DATA/ is another folder than data/ on a case-sensitive filesystem ...
    assert judge_path(home / "DATA" / "x.py", rules, home, govs).path_class == "source"
    assert judge_path(home / "data" / "x.py", rules, home, govs).allowed
    # ... and the same folder where the filesystem folds case (as on macOS).
    monkeypatch.setitem(fsprobe._known, os.stat(home).st_dev, True)
    assert judge_path(home / "DATA" / "x.py", rules, home, govs).allowed
    verdict = judge_path(Path(str(home).upper()) / "SRC" / "A.PY", rules, home, govs)
    assert not verdict.allowed and verdict.path_class == "source"
    assert not judge_path(home / "TICKETS", rules, home, govs).allowed


def test_a_nested_repository_does_not_hide_the_tickets(project: Path) -> None:
    inner = project / "src" / "vendored"
    inner.mkdir()
    (inner / "lib.py").write_text("v = 1\n")
    git(inner, "init", "-q")
    git(inner, "add", "-A")
    git(inner, "commit", "-qm", "inner")
    assert find_root(inner) == project.resolve()
    # Codex runs its hook in the session's folder, here inside the nested repository.
    codex = json.loads((Path(__file__).parents[1] / ".codex" / "hooks.json").read_text())
    pre = codex["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_PROJECT_DIR"}
    env["PATH"] = f"{Path(os.sys.executable).parent}:{env['PATH']}"
    ev = event(inner, "PreToolUse", "sed -i s/1/2/ lib.py", "call_n")
    proc = subprocess.run(
        ["sh", "-c", pre],
        input=json.dumps(ev),
        env=env,
        cwd=inner,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "ticket 't1'" in proc.stderr, proc.stderr
    # Claude Code's project folder is the project; the session's cwd is the nested repo.
    ev = event(inner, "PreToolUse", str(inner / "lib.py"), "toolu_n", "Write")
    proc = call_hook(project, ev)
    assert proc.returncode == 2 and "ticket 't1'" in proc.stderr, proc.stderr
    before = (inner / "lib.py").read_text()
    (project / "tools").mkdir()
    (project / "tools" / "n.txt").write_text(
        "open('src/vendored/lib.py', 'w').write('hacked')\n"
        "open('src/vendored/extra.py', 'w').write('x')\n"
    )
    result = bracket(project, "python3 tools/n.txt")
    assert result.reverted_after, result.describe()
    assert (inner / "lib.py").read_text() == before and not (inner / "extra.py").exists()


def test_stage_4_unlocked_keeps_source_changes_but_guards_the_lock(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    assert run_cli("init", str(root)).returncode == 0
    project = locked_project(root)
    walk_to(get_ticket(project, "t1"), SKILL, 4)
    result = bracket(project, "python3 -c \"open('src/a.py', 'w').write('new')\"")
    assert result.post.returncode == 0, result.describe()
    assert (project / "src" / "a.py").read_text() == "new"
    (project / "tools").mkdir()
    (project / "tools" / "rm.txt").write_text("import shutil\nshutil.rmtree('tickets')\n")
    result = bracket(project, "python3 tools/rm.txt")
    assert result.reverted_after and state_file(project).is_file(), result.describe()


def test_codex_gets_the_post_decision_as_json(project: Path) -> None:
    (project / "tools").mkdir()
    (project / "tools" / "c.txt").write_text("open('src/a.py', 'w').write('x')\n")
    ev = event(project, "PreToolUse", "python3 tools/c.txt", "call_1")
    codex = json.loads((Path(__file__).parents[1] / ".codex" / "hooks.json").read_text())
    command = codex["hooks"]["PostToolUse"][0]["hooks"][0]["command"]
    pre = codex["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_PROJECT_DIR"}
    env["PATH"] = f"{Path(os.sys.executable).parent}:{env['PATH']}"

    def codex_hook(cmd: str, payload: dict) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-c", cmd],
            input=json.dumps(payload),
            env=env,
            cwd=project,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert codex_hook(pre, ev).returncode == 0
    subprocess.run(["python3", "tools/c.txt"], cwd=project, check=True)
    proc = codex_hook(command, {**ev, "hook_event_name": "PostToolUse"})
    assert proc.returncode == 2, proc.stderr
    decision = json.loads(proc.stdout)
    assert decision["decision"] == "block" and "src/a.py" in decision["reason"]
    assert decision["hookSpecificOutput"]["hookEventName"] == "PostToolUse"
    assert (project / "src" / "a.py").read_text().startswith("import sys")


@pytest.mark.slow
def test_a_source_set_of_10000_files_is_bracketed(tmp_path: Path) -> None:
    root = tmp_path / "big"
    assert run_cli("init", str(root)).returncode == 0
    for i in range(100):
        folder = root / "pkg" / f"m{i:03d}"
        folder.mkdir(parents=True)
        for j in range(100):
            (folder / f"f{j:03d}.py").write_text(f"V = {i * 100 + j}\n")
    project = locked_project(root)
    home = project.resolve()
    rules = load_rules(home)
    found = guard.source_files(home, rules, set())
    assert sum(1 for p in found if p.parts[len(home.parts)] in ("pkg", "src")) == 10_002
    target = project / "pkg" / "m042" / "f017.py"
    result = bracket(project, f"python3 -c \"import os; os.remove('{target}')\"")
    assert result.blocked_before or result.reverted_after
    assert target.read_text() == "V = 4217\n"
    (project / "tools").mkdir()
    (project / "tools" / "w.txt").write_text(
        "import pathlib\nfor p in list(pathlib.Path('pkg').rglob('f00*.py'))[:50]:\n"
        "    p.write_text('changed')\n"
    )
    result = bracket(project, "python3 tools/w.txt")
    assert result.reverted_after, result.describe()
    assert "50 locked source file(s)" in result.post.stderr
    assert (project / "pkg" / "m000" / "f001.py").read_text() == "V = 1\n"
