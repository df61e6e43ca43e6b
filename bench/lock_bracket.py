"""Time the edit lock's before/after check (PreToolUse + PostToolUse) on a 10,000-file project.

Makes a `trainwright init` project with N source files in a git repository and a ticket at
Stage 0, then times the real hook script for: a read-only command (no bracket), the first
bracketed call (every file hashed and kept), a later one (stat only), and one whose command
changed 50 files (hashed, put back). Usage: python bench/lock_bracket.py [--files 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOOK = 'sh "$CLAUDE_PROJECT_DIR/.claude/hooks/edit-lock.sh" claude'


def hook(project: Path, name: str, command: str, ident: str) -> float:
    payload = {
        "session_id": "bench",
        "cwd": str(project),
        "hook_event_name": name,
        "tool_name": "Bash",
        "tool_use_id": ident,
        "tool_input": {"command": command},
    }
    env = {
        **os.environ,
        "CLAUDE_PROJECT_DIR": str(project),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    start = time.perf_counter()
    subprocess.run(
        ["sh", "-c", HOOK],
        input=json.dumps(payload),
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    n = parser.parse_args().files
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "proj"
        subprocess.run(
            [sys.executable, "-m", "trainwright", "init", str(project)],
            check=True,
            capture_output=True,
        )
        for i in range(n):
            folder = project / "pkg" / f"m{i // 100:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"f{i % 100:03d}.py").write_text(f"V = {i}\n")
        git = ["git", "-C", str(project), "-c", "user.name=b", "-c", "user.email=b@b"]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", "b"], check=True)
        subprocess.run(
            [sys.executable, "-m", "trainwright", "ticket", "new", "t1", "--no-worktree"],
            cwd=project,
            check=True,
            capture_output=True,
        )
        rows = [("read-only command (no bracket), Pre", hook(project, "PreToolUse", "ls", "a"))]
        for label, ident in (("first bracket", "b"), ("later bracket", "c")):
            pre = hook(project, "PreToolUse", "python3 x.py", ident)
            post = hook(project, "PostToolUse", "python3 x.py", ident)
            rows += [(f"{label}, Pre", pre), (f"{label}, Post", post)]
        pre = hook(project, "PreToolUse", "python3 y.py", "d")
        for p in sorted((project / "pkg").rglob("f00*.py"))[:50]:
            p.write_text("changed\n")
        post = hook(project, "PostToolUse", "python3 y.py", "d")
        rows += [("50 files changed, Pre", pre), ("50 files changed, Post (put back)", post)]
    print(f"| {n} source files | seconds |\n|---|---|")
    for label, secs in rows:
        print(f"| {label} | {secs:.2f} |")


if __name__ == "__main__":
    main()
