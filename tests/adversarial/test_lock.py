"""Ways around the edit lock (issue 13, section 4), one case each, with ticket t1 at Stage 0.

Each case is one agent tool call in a fresh `trainwright init` project with committed source.
The harness runs the PreToolUse call (`trainwright ticket hook`, the tool call JSON on stdin):
- ``refused``: the pre-check blocks it (exit 2), so the command never runs;
- ``correct``: the pre-check lets it through, so ``held`` runs the real command and then the
  registered PostToolUse hook, which must report it (exit 2) and put everything back.
Either way ``held`` then asserts the source files and the lock's own files are as before, the
lock still blocks a source write, and a violation is logged.
"""

from __future__ import annotations

import base64
import json
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import Case, Result, ids, run_case

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from lock_bracket import call_hook, digests, event, git, hook_env, locked_project  # noqa: E402

LOCK_FILES = [
    "tickets/in-progress/t1/workflow-state.md",
    "tickets/edit-lock.yaml",
    ".claude/settings.json",
    ".claude/settings.local.json",
    ".claude/hooks/edit-lock.sh",
    ".codex/hooks.json",
]
MAY_CHANGE = ("tickets/*", ".trainwright/*")
BLACK = """#!/usr/bin/env python3
import pathlib, sys
for arg in sys.argv[1:]:
    for p in pathlib.Path(arg).rglob("*.py"):
        p.write_text(p.read_text().replace("x=1", "x = 1"))
"""
WRITE_A = (
    "import pathlib\n"
    "(pathlib.Path(__file__).resolve().parents[1] / 'src' / 'a.py').write_text('hacked\\n')\n"
)


def ext(project: Path) -> Path:
    return project.parent / "ext"


def _prepare(project: Path, extra: Callable[[Path], None] | None) -> None:
    locked_project(project)
    out = ext(project)
    (out / "bin").mkdir(parents=True)
    (out / "py").mkdir()
    (out / "x").mkdir()
    (out / "bin" / "black").write_text(BLACK)
    (out / "bin" / "rsync").write_text('#!/bin/sh\nfor a; do last=$a; done\ncp -r "$@"\n')
    for tool in ("black", "rsync"):
        (out / "bin" / tool).chmod(0o755)
    (out / "py" / "black.py").write_text(BLACK.split("\n", 1)[1])
    (out / "x" / "a.py").write_text("hacked\n")
    (out / "p.diff").write_text(
        "--- a/src/b.py\n+++ b/src/b.py\n@@ -1,2 +1,2 @@\n def f():\n-    return 2\n+    return 3\n"
    )
    with tarfile.open(out / "evil.tar", "w") as tar:
        tar.add(out / "x" / "a.py", arcname="src/a.py")
    with zipfile.ZipFile(out / "evil.zip", "w") as zf:
        zf.write(out / "x" / "a.py", "src/a.py")
    tools = project / "tools"
    tools.mkdir()
    (tools / "rewrite.py").write_text(WRITE_A)
    (tools / "w.sh").write_text("echo hacked > src/a.py\n")
    (tools / "settings.py").write_text(
        "open('.claude/settings.local.json', 'w').write('{\"disableAllHooks\": true}')\n"
    )
    (tools / "rule.py").write_text(
        "open('tickets/edit-lock.yaml', 'w').write(\"add_non_source: ['src/**']\\n\")\n"
    )
    (tools / "stealth.py").write_text(
        "import os\ns = os.stat('src/b.py')\n"
        "open('src/b.py', 'w').write('def f():\\n    return 9\\n')\n"
        "os.utime('src/b.py', ns=(s.st_atime_ns, s.st_mtime_ns))\n"
    )
    (tools / "rmt.py").write_text("import shutil\nshutil.rmtree('tickets')\n")
    (tools / "chmodt.py").write_text(
        "import glob, os\nfor p in glob.glob('tickets/*/*/*.md'):\n    os.chmod(p, 0)\n"
    )
    (tools / "delete.py").write_text("import os\nos.remove('src/b.py')\n")
    (tools / "upper.py").write_text("open('src/NEW.PY', 'w').write('x = 2\\n')\n")
    (tools / "hooks.py").write_text(
        "import json\np = '.claude/settings.json'\nd = json.load(open(p))\nd['hooks'] = {}\n"
        "json.dump(d, open(p, 'w'))\n"
    )
    if extra:
        extra(project)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "tools")
    (project.parent / "expected.json").write_text(json.dumps(_state(project)))


def _state(project: Path) -> dict[str, str | None]:
    rels = sorted(
        p.relative_to(project).as_posix()
        for folder in ("src", "configs", "tools")
        for p in (project / folder).rglob("*")
        if p.is_file() or p.is_symlink()
    )
    return digests(project, rels + LOCK_FILES)


def _env(project: Path) -> dict[str, str]:
    out = ext(project)
    env = hook_env(project)
    env["PATH"] = f"{out / 'bin'}:{env['PATH']}"
    env["PYTHONPATH"] = str(out / "py")
    return env


def _violations(project: Path) -> int:
    state = project / "tickets" / "in-progress" / "t1" / "workflow-state.md"
    return state.read_text().count("- **V-")


def _stdin(tool: str, value: str, ident: str) -> str:
    ev = event(Path("/"), "PreToolUse", value, f"toolu_{ident}", tool=tool)
    ev.pop("cwd")  # the hook then takes the folder it runs in: the project root
    return json.dumps(ev)


def held(command: str, tool: str, ident: str) -> Callable[[Result], None]:
    def check(result: Result) -> None:
        project = result.project
        if result.returncode == 0:
            assert tool == "Bash", "a file tool write was allowed"
            subprocess.run(
                ["bash", "-c", command],
                cwd=project,
                env=_env(project),
                capture_output=True,
                timeout=60,
            )
            ev = json.loads(_stdin(tool, command, ident))
            ev.update(hook_event_name="PostToolUse", cwd=str(project), tool_response={})
            post = call_hook(project, ev)
            assert post.returncode == 2, (post.stdout, post.stderr)
            assert post.stderr.startswith("trainwright edit lock: Bash ran, but"), post.stderr
        else:
            assert "trainwright edit lock" in result.err, result.err
        expected = json.loads((project.parent / "expected.json").read_text())
        now = _state(project)
        changed = {
            k: (expected.get(k), now.get(k))
            for k in set(expected) | set(now)
            if expected.get(k) != now.get(k)
        }
        # The violation log is the one change the state file may show.
        changed.pop("tickets/in-progress/t1/workflow-state.md", None)
        assert not changed, changed
        assert _violations(project) >= 1
        state = project / "tickets" / "in-progress" / "t1" / "workflow-state.md"
        assert "- **Code Edit Permission**: Locked" in state.read_text()
        assert stat.S_IMODE(state.stat().st_mode) & 0o600 == 0o600
        probe = event(project, "PreToolUse", str(project / "src" / "a.py"), "w", tool="Write")
        assert call_hook(project, probe).returncode == 2, "the lock is off after the case"

    return check


def lock_case(
    ident: str,
    expect: str,
    command: str,
    tool: str = "Bash",
    extra: Callable[[Path], None] | None = None,
) -> Case:
    return Case(
        f"lock-{ident}",
        "workflow",
        "lock-escape",
        expect,
        ["ticket", "hook"],
        setup=lambda project: _prepare(project, extra),
        check=held(command, tool, ident),
        may_change=MAY_CHANGE,
        stdin=_stdin(tool, command, ident),
    )


def _symlink_out(project: Path) -> None:
    (project.parent / "outside-link.py").symlink_to(project / "src" / "a.py")


def _nested(project: Path) -> None:
    inner = project / "src" / "vendored"
    inner.mkdir()
    (inner / "lib.py").write_text("v = 1\n")
    git(inner, "init", "-q")
    git(inner, "add", "-A")
    git(inner, "commit", "-qm", "inner")
    (project / "tools" / "nested.py").write_text(
        "open('src/vendored/lib.py', 'w').write('hacked')\n"
    )


def _makefile(project: Path) -> None:
    (project / "Makefile").write_text("fmt:\n\tpython3 tools/rewrite.py\n")


def _npm(project: Path) -> None:
    (project / "package.json").write_text(
        json.dumps(
            {"name": "p", "version": "1.0.0", "scripts": {"fmt": "python3 tools/rewrite.py"}}
        )
    )


B64 = base64.b64encode(b"echo hacked > src/a.py\n").decode()

CASES = [
    # Removing or disabling the lock itself.
    lock_case("mv-ticket-away", "refused", "mv tickets/in-progress/t1 ../t1-moved"),
    lock_case("rm-rf-tickets", "refused", "rm -rf tickets"),
    lock_case("mv-tickets", "refused", "mv tickets x"),
    lock_case("chmod-state-file", "refused", "chmod 000 tickets/in-progress/t1/workflow-state.md"),
    lock_case("chmod-ticket-dir-find", "refused", "find tickets -name t1 -exec chmod 000 {} +"),
    lock_case("rm-hook-script", "refused", "rm .claude/hooks/edit-lock.sh"),
    lock_case("empty-codex-hooks", "refused", "cp /dev/null .codex/hooks.json"),
    lock_case("rm-lock-record", "refused", "rm -rf .trainwright"),
    lock_case(
        "rule-file-echo", "refused", "echo \"add_non_source: ['src/**']\" > tickets/edit-lock.yaml"
    ),
    lock_case("rule-file-script", "correct", "python3 tools/rule.py"),
    lock_case("settings-local-script", "correct", "python3 tools/settings.py"),
    lock_case("settings-hooks-emptied", "correct", "python3 tools/hooks.py"),
    lock_case(
        "rmtree-tickets-script",
        "refused",
        "python3 -c \"import shutil; shutil.rmtree('tick' + 'ets')\"",
    ),
    lock_case("rmtree-tickets-file", "correct", "python3 tools/rmt.py"),
    lock_case("chmod-state-script", "correct", "python3 tools/chmodt.py"),
    lock_case("delete-source-script", "correct", "python3 tools/delete.py"),
    # Rewriting source through tools.
    lock_case("black-src", "correct", "black src/"),
    lock_case("python-m-black", "correct", "python3 -m black src"),
    lock_case(
        "ruff-fix", "correct", f"{Path(sys.executable).parent}/ruff check --fix --select I src"
    ),
    lock_case("script-rewrites", "correct", "python3 tools/rewrite.py"),
    lock_case("script-from-subfolder", "correct", "cd src && python3 ../tools/rewrite.py"),
    lock_case("sh-script", "correct", "sh tools/w.sh"),
    lock_case("cp-r-dot-into-src", "correct", "cp -r ../ext/x/. src/"),
    lock_case("base64-to-sh", "correct", f"echo {B64} | base64 -d | sh"),
    lock_case("make-target", "correct", "make -s fmt", extra=_makefile),
    lock_case("npm-script", "correct", "npm run -s fmt", extra=_npm),
    lock_case("rsync-into-src", "correct", "rsync -a ../ext/x/ src/"),
    lock_case("tar-x-hidden-flag", "correct", "tar -C . -x -f ../ext/evil.tar"),
    lock_case("tar-x", "refused", "tar xf ../ext/evil.tar"),
    lock_case("unzip", "refused", "unzip -o ../ext/evil.zip"),
    lock_case("git-apply", "refused", "git apply ../ext/p.diff"),
    lock_case("patch", "refused", "patch -p1 < ../ext/p.diff"),
    lock_case("sed-i-xargs", "refused", "ls src/*.py | xargs sed -i s/x/y/"),
    lock_case("sed-i-find-exec", "refused", "find src -name '*.py' -exec sed -i s/x/y/ {} +"),
    lock_case("perl-pi", "refused", "perl -pi -e s/x/y/ src/a.py"),
    lock_case("perl-pi-subst", "refused", "perl -pi -e s/x/y/ $(find src -name '*.py')"),
    lock_case("dd-of", "refused", "dd if=/dev/zero of=src/a.py bs=1 count=3"),
    lock_case("install", "refused", "install -m 644 ../ext/x/a.py src/a.py"),
    lock_case("bash-s-heredoc", "refused", "bash -s <<'EOF'\necho hacked > src/a.py\nEOF"),
    lock_case(
        "env-var-path",
        "refused",
        "T=src/a.py python3 -c \"import os; open(os.environ['T'], 'w').write('x')\"",
    ),
    lock_case(
        "remove-built-name", "refused", "python3 -c \"import os; os.remove('src/' + 'b.py')\""
    ),
    lock_case("mv-src-away", "correct", "mv src ../stolen-src"),
    lock_case("symlink-then-write", "correct", "ln -s src/a.py notes.txt && echo x > notes.txt"),
    lock_case(
        "symlink-outside-write", "refused", "echo x > ../outside-link.py", extra=_symlink_out
    ),
    lock_case("hard-link-write", "correct", "ln src/a.py ../h.py && echo x > ../h.py"),
    lock_case("mtime-kept", "correct", "python3 tools/stealth.py"),
    lock_case("upper-case-new-file", "correct", "python3 tools/upper.py"),
    lock_case("nested-repo-script", "correct", "python3 tools/nested.py", extra=_nested),
    lock_case("git-stash", "refused", "git stash"),
    # The file tools.
    lock_case("write-upper-ext", "refused", "src/A.PY", tool="Write"),
    lock_case("write-ticket-folder", "refused", "tickets/in-progress/t1", tool="Write"),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case, tmp_path: Path) -> None:
    if "npm" in case.id and shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    run_case(case, tmp_path)


def test_every_issue_escape_is_in_the_table() -> None:
    commands = " ".join(str(c.stdin) for c in CASES)
    for escape in (
        "mv tickets/in-progress/t1",
        "rm -rf tickets",
        "mv tickets x",
        "chmod 000",
        "black src/",
        "ruff check --fix",
        "tools/rewrite.py",
        "cp -r ../ext/x/. src/",
        "base64 -d | sh",
        "src/A.PY",
        "tools/nested.py",
        "ln src/a.py",
        "git apply",
        "patch -p1",
        "xargs sed -i",
        "-exec sed",
        "make",
        "npm run",
        "perl -pi",
        "dd ",
        "rsync",
        "tar ",
        "unzip",
        "-m black",
    ):
        assert escape in commands, escape
    assert len(CASES) >= 30
