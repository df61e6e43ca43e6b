"""The Bash side of the lock: which files a shell command writes, including writes in disguise."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainwright.workflow.lock_rules import load_rules
from trainwright.workflow.shell import code_writes, patch_paths, shell_writes

CWD = Path("/proj")
UNKNOWN = None

WRITES = {
    "redirect": ("echo hi > src/a.py", ["src/a.py"]),
    "append": ("echo hi >> src/a.py", ["src/a.py"]),
    "clobber": ("echo hi >| src/a.py", ["src/a.py"]),
    "both streams": ("make &> src/a.py", ["src/a.py"]),
    "fd number glued": ("echo x 2>src/err.py", ["src/err.py"]),
    "number argument": ("echo 2 > src/two.py", ["src/two.py"]),
    "heredoc to file": ("cat > src/a.py <<'EOF'\nimport os\nx = 1 > 2\nEOF", ["src/a.py"]),
    "heredoc then redirect": ("cat <<EOF > src/a.py\nhello\nEOF", ["src/a.py"]),
    "tee": ("python t.py | tee -a logs/run.log src/a.py", ["logs/run.log", "src/a.py"]),
    "sed -i": ("sed -i 's/a/b/' src/a.py src/b.py", ["src/a.py", "src/b.py"]),
    "sed -i.bak with -e": ("sed -i.bak -e 's/a/b/' src/a.py", ["src/a.py"]),
    "sed --in-place": ("sed --in-place=.orig s/a/b/ src/a.py", ["src/a.py"]),
    "perl -pi -e": ("perl -pi -e 's/a/b/' src/a.py", ["src/a.py"]),
    "awk inplace": ("awk -i inplace '{print}' src/a.py", ["src/a.py"]),
    "cp into dir": ("cp /tmp/x.py src/", ["src/x.py"]),
    "cp onto file": ("cp -f /tmp/x.py src/a.py", ["src/a.py"]),
    "cp -t": ("cp -t src /tmp/x.py /tmp/y.py", ["src/x.py", "src/y.py"]),
    "mv moves both ends": ("mv src/a.py src/b.py", ["src/b.py", "src/a.py"]),
    "install": ("install -m 644 /tmp/x.py src/a.py", ["src/a.py"]),
    "ln": ("ln -sf /tmp/x.py src/a.py", ["src/a.py"]),
    "rm": ("rm -f src/a.py", ["src/a.py"]),
    "touch and truncate": ("touch src/n.py && truncate -s 0 src/a.py", ["src/n.py", "src/a.py"]),
    "dd": ("dd if=/dev/zero of=src/a.py bs=1 count=0", ["src/a.py"]),
    "python -c open write": (
        "python -c \"open('src/a.py', 'w').write('x')\"",
        ["src/a.py"],
    ),
    "python3 -c pathlib": (
        "python3 -c \"from pathlib import Path; Path('src/a.py').write_text('x')\"",
        ["src/a.py"],
    ),
    "python heredoc": (
        "python - <<'PY'\nwith open('src/a.py', 'a') as f:\n    f.write('x')\nPY",
        ["src/a.py"],
    ),
    "python heredoc no dash": ("python3 <<PY\nimport os\nos.remove('src/a.py')\nPY", ["src/a.py"]),
    "shutil via uv run": (
        "uv run python -c \"import shutil; shutil.copy('/tmp/x', 'src/a.py')\"",
        ["/tmp/x", "src/a.py"],  # every literal path counts: over-inclusive on purpose
    ),
    "node": ("node -e \"require('fs').writeFileSync('src/a.js', '')\"", ["src/a.js"]),
    "bash -c": ("bash -c 'echo x >> src/a.py'", ["src/a.py"]),
    "sh heredoc": ("sh <<'EOF'\nsed -i s/a/b/ src/a.py\nEOF", ["src/a.py"]),
    "eval": ('eval "echo x > src/a.py"', ["src/a.py"]),
    "command substitution": ("echo $(echo x > src/a.py)", ["src/a.py"]),
    "backticks": ("echo `cp /tmp/x src/a.py`", ["src/a.py"]),
    "process substitution": ("echo x > >(tee src/a.py)", ["src/a.py"]),
    "cd then relative": ("cd src && sed -i s/a/b/ a.py", ["src/a.py"]),
    "wrappers": ("FOO=1 sudo -u bob timeout 5 tee src/a.py < /dev/null", ["src/a.py"]),
    "env wrapper": ("env -i A=1 nohup tee src/a.py", ["src/a.py"]),
    "git checkout paths": ("git checkout -- src/a.py", ["src/a.py"]),
    "git mv": ("git mv src/a.py src/b.py", ["src/a.py", "src/b.py"]),
    "curl -o": ("curl -sSL -o src/a.py https://example.invalid/a.py", ["src/a.py"]),
    "apply_patch heredoc": (
        "apply_patch <<'EOF'\n*** Begin Patch\n*** Update File: src/a.py\n@@\n-a\n+b\n"
        "*** Add File: src/new.py\n+x\n*** End Patch\nEOF",
        ["src/a.py", "src/new.py"],
    ),
    "newline separated": ("ls\nsed -i s/a/b/ src/a.py", ["src/a.py"]),
    "find -fprint": ("find . -name x -fprint src/list.py", ["src/list.py"]),
}

UNKNOWN_WRITES = {
    "variable target": "echo x > $OUT",
    "find -exec sed -i": "find . -name '*.py' -exec sed -i s/a/b/ {} +",
    "xargs rm": "ls | xargs rm",
    "git checkout branch": "git checkout main",
    "git stash": "git stash",
    "patch": "patch -p1 < fix.diff",
    "tar extract": "tar -xzf a.tgz",
    "python writes unnamed file": "python -c \"import sys; open(sys.argv[1], 'w')\" x",
    "unparseable": "echo 'unbalanced",
    "sed -i with no files": "sed -i s/a/b/",
    "relative write after cd to a variable": "cd $WORK && echo x > a.py",
}

READ_ONLY = [
    "ls -la; pwd",
    "cat src/a.py | grep foo",
    "echo 'a > b'",
    "python train.py --config configs/a.yaml 2>&1",
    "sed -n 's/a/b/p' src/a.py",
    "git status && git diff && git log --oneline",
    "git stash list",
    "python -c 'print(1)'",
    "grep -rn 'open(' src/",
    "diff <(cat a) <(cat b)",
    "echo ok >&2",
    "python t.py > /dev/null 2>&1",
    "trainwright ticket status",
    "ls | xargs -n1 grep foo",
    "echo ok # > src/comment.py",
]


def _rel(path: str | None) -> str | None:
    """Paths under CWD relative to it; others (outside the project) as they are."""
    if path is None or not path.startswith(f"{CWD}/"):
        return path
    return str(Path(path).relative_to(CWD))


@pytest.mark.parametrize("label", list(WRITES))
def test_writes_are_found(label: str) -> None:
    command, expected = WRITES[label]
    found = [_rel(w.path) for w in shell_writes(command, CWD)]
    assert found == expected, (command, found)


@pytest.mark.parametrize("label", list(UNKNOWN_WRITES))
def test_writes_the_lock_cannot_place_are_reported_as_unknown(label: str) -> None:
    writes = shell_writes(UNKNOWN_WRITES[label], CWD)
    assert writes and UNKNOWN in [w.path for w in writes], writes


@pytest.mark.parametrize("command", READ_ONLY)
def test_commands_that_write_nothing(command: str) -> None:
    assert shell_writes(command, CWD) == []


def test_relative_targets_resolve_against_the_cwd_and_cd() -> None:
    (w,) = shell_writes("cd ../other && echo x > a.py", CWD / "sub")
    assert w.path == "/proj/other/a.py"
    (w,) = shell_writes("echo x > ~/notes.txt", CWD)
    assert w.path == str(Path("~/notes.txt").expanduser())


def test_globs_expand_to_the_files_they_match(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    for name in ("a.py", "b.py", "c.txt"):
        (tmp_path / "src" / name).write_text("x")
    found = sorted(w.path for w in shell_writes("sed -i s/x/y/ src/*.py", tmp_path))
    assert found == [str(tmp_path / "src/a.py"), str(tmp_path / "src/b.py")]


def test_codex_apply_patch_paths() -> None:
    patch = (
        "*** Begin Patch\n*** Update File: a.py\n*** Move to: b.py\n*** Delete File: c.py\n"
        "*** End Patch\n"
    )
    assert patch_paths(patch) == ["a.py", "b.py", "c.py"]


def test_code_scanner_ignores_reads_and_modes() -> None:
    assert code_writes("print(open('src/a.py').read())") is None
    assert code_writes("open('src/a.py', 'rb')") is None
    assert code_writes("open('out/x.json', 'w')") == ["out/x.json"]
    assert code_writes("open(p, mode='a')") == [None]


def test_unknown_write_classes_against_the_default_rule() -> None:
    rules = load_rules(Path("/nonexistent-project"))
    assert rules.classify("src/train.py")[0] == "source"
    assert rules.classify("configs/sft.yaml")[0] == "source"
    assert rules.classify("templates/chat.jinja")[0] == "source"
    assert rules.classify("logs/run.log")[0] == "non-source"
    assert rules.classify("notes/todo.txt")[0] == "other"
    assert rules.classify("outputs/metrics.json")[0] == "non-source"
    assert rules.classify("tickets/in-progress/t/notes.py")[0] == "non-source"
    assert rules.classify("tickets/in-progress/t/workflow-state.md")[0] == "protected"
    assert rules.classify("src/pkg/__pycache__/m.py")[0] == "non-source"
    assert rules.classify("README.md")[0] == "other"
    assert rules.classify(".claude/settings.json")[0] == "protected"
