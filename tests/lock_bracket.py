"""Drive the edit lock the way Claude Code does around one Bash call: the registered PreToolUse
hook (JSON on stdin to the real hook script), then the real command if it was allowed, then the
registered PostToolUse hook."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from helpers import REPO, run_cli

VENV_BIN = Path(sys.executable).parent
SETTINGS = json.loads((REPO / ".claude" / "settings.json").read_text())


def registered(event_name: str, tool: str = "Bash") -> str:
    hits = [
        hook["command"]
        for entry in SETTINGS["hooks"].get(event_name, [])
        if re.fullmatch(entry["matcher"], tool)
        for hook in entry["hooks"]
    ]
    assert len(hits) == 1, (event_name, tool, hits)
    return hits[0]


def event(project: Path, event_name: str, command: str, ident: str, tool: str = "Bash") -> dict:
    data: dict = {"command": command, "description": "x"}
    if tool != "Bash":
        data = {"file_path": command, "content": "x = 1\n"}
    return {
        "session_id": "s1",
        "transcript_path": "/tmp/transcript.jsonl",
        "cwd": str(project),
        "permission_mode": "default",
        "hook_event_name": event_name,
        "tool_name": tool,
        "tool_use_id": ident,
        "tool_input": data,
        **({"tool_response": {"stdout": "", "stderr": ""}} if event_name == "PostToolUse" else {}),
    }


def hook_env(project: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env["CLAUDE_PROJECT_DIR"] = str(project)
    env.update(extra or {})
    return env


def call_hook(
    project: Path, payload: dict, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", registered(payload["hook_event_name"], payload["tool_name"])],
        input=json.dumps(payload),
        env=hook_env(project, extra_env),
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )


@dataclass
class Bracket:
    pre: subprocess.CompletedProcess[str]
    ran: subprocess.CompletedProcess[str] | None
    post: subprocess.CompletedProcess[str] | None

    @property
    def blocked_before(self) -> bool:
        return self.pre.returncode == 2

    @property
    def reverted_after(self) -> bool:
        return self.post is not None and self.post.returncode == 2

    def describe(self) -> str:
        parts = [f"pre={self.pre.returncode} {self.pre.stderr.strip()[:400]}"]
        if self.ran is not None:
            parts.append(f"ran={self.ran.returncode} {self.ran.stderr.strip()[:300]}")
        if self.post is not None:
            parts.append(f"post={self.post.returncode} {self.post.stderr.strip()[:600]}")
        return " | ".join(parts)


def bracket(
    project: Path, command: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Bracket:
    """Pre hook, the real command (when allowed), Post hook: as the agent runs one Bash call."""
    ident = "toolu_" + uuid.uuid4().hex[:12]
    pre = call_hook(project, event(cwd or project, "PreToolUse", command, ident))
    assert "Traceback" not in pre.stderr, pre.stderr
    if pre.returncode != 0:
        return Bracket(pre, None, None)
    ran = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd or project,
        env=hook_env(project, env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    post = call_hook(project, event(cwd or project, "PostToolUse", command, ident))
    assert "Traceback" not in post.stderr, post.stderr
    return Bracket(pre, ran, post)


def digests(root: Path, rels: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for rel in rels:
        path = root / rel
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            out[rel] = f"{mode:o}:" + hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            out[rel] = None
    return out


def source_state(project: Path) -> dict[str, str | None]:
    """Every .py/.yaml/.PY file under src/ and configs/ (with mode), by relative path."""
    rels = sorted(
        p.relative_to(project).as_posix()
        for folder in ("src", "configs")
        if (project / folder).exists()
        for p in (project / folder).rglob("*")
        if p.is_file() or p.is_symlink()
    )
    return digests(project, rels)


def git(project: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(project), *args],
        check=True,
        capture_output=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@e",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@e",
        },
    )


def locked_project(project: Path, use_git: bool = True) -> Path:
    """A project (already made by `trainwright init`) with source, committed, and ticket t1 at
    Stage 0 with edits Locked."""
    (project / "src").mkdir(parents=True, exist_ok=True)
    (project / "configs").mkdir(exist_ok=True)
    (project / "src" / "a.py").write_text("import sys\nimport os\nx=1\n")
    (project / "src" / "b.py").write_text("def f():\n    return 2\n")
    (project / "configs" / "sft.yaml").write_text("lr: 1e-4\n")
    if use_git:
        git(project, "init", "-q")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "start")
    proc = run_cli("ticket", "new", "t1", "--no-worktree", cwd=project)
    assert proc.returncode == 0, proc.stderr
    return project


def violations(project: Path, ticket: str = "t1") -> list[str]:
    text = (project / "tickets" / "in-progress" / ticket / "workflow-state.md").read_text()
    return re.findall(r"\*\*(V-\d{3})\*\*", text)
