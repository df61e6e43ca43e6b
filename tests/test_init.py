"""`trainwright init` installs the pack, keeps the user's edits, and the wheel carries the pack."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import REPO, assert_one_line_error, run_cli
from trainwright import approvals, pack

EXPECTED = [
    "CLAUDE.md",
    "AGENTS.md",
    "grimoire/eye.md",
    "grimoire/studio.md",
    "grimoire/templates/training/intent.md",
]


def test_init_installs_every_pack_file(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    proc = run_cli("init", str(target), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    files = list(pack.iter_files())
    assert sorted(report["installed"]) == files
    for rel in files:
        assert (target / rel).read_bytes() == (pack.pack_root() / rel).read_bytes()
    for rel in EXPECTED:
        assert rel in files
    assert any(f.startswith(".claude/skills/") for f in files)
    # The result is a working grimoire.
    proc = run_cli("--grimoire", str(target / "grimoire"), "grimoire", "validate")
    assert proc.returncode == 0, proc.stdout


def test_reinit_keeps_user_changes_and_force_backs_them_up(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    assert run_cli("init", str(target)).returncode == 0
    eye = target / "grimoire" / "eye.md"
    mine = eye.read_text() + "\nMy own notes.\n"
    eye.write_text(mine)
    proc = run_cli("init", str(target), "--json")
    report = json.loads(proc.stdout)
    assert report["kept"] == ["grimoire/eye.md"]
    assert report["installed"] == [] and report["overwritten"] == []
    assert eye.read_text() == mine
    assert "kept because you changed them" in run_cli("init", str(target)).stdout

    proc = run_cli("init", str(target), "--force", "--json")
    report = json.loads(proc.stdout)
    assert report["overwritten"] == ["grimoire/eye.md"]
    backup = Path(report["backup_dir"]) / "grimoire" / "eye.md"
    assert backup.read_text() == mine
    assert eye.read_bytes() == (pack.pack_root() / "grimoire/eye.md").read_bytes()


def test_untouched_files_are_updated_when_the_pack_changes(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    assert run_cli("init", str(target)).returncode == 0
    agents = target / "AGENTS.md"
    # Simulate an older pack version: file and manifest agree on an old content.
    agents.write_text("old pack text\n")
    manifest = target / ".trainwright" / "pack.json"
    data = json.loads(manifest.read_text())
    data["files"]["AGENTS.md"] = hashlib.sha256(agents.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(data))
    report = json.loads(run_cli("init", str(target), "--json").stdout)
    assert report["updated"] == ["AGENTS.md"]
    assert agents.read_bytes() == (pack.pack_root() / "AGENTS.md").read_bytes()


def test_existing_unknown_file_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    target.mkdir()
    (target / "CLAUDE.md").write_text("my project's own CLAUDE.md\n")
    report = json.loads(run_cli("init", str(target), "--json").stdout)
    assert "CLAUDE.md" in report["kept"]
    assert (target / "CLAUDE.md").read_text() == "my project's own CLAUDE.md\n"


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    proc = run_cli("init", str(target), "--dry-run")
    assert proc.returncode == 0 and "would install" in proc.stdout
    assert not target.exists()


def test_init_into_a_file_or_damaged_manifest(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("x")
    assert_one_line_error(run_cli("init", str(f)), "is a file")
    target = tmp_path / "proj"
    assert run_cli("init", str(target)).returncode == 0
    manifest = target / ".trainwright" / "pack.json"
    manifest.write_text("{not json")
    assert_one_line_error(run_cli("init", str(target)), "manifest is damaged")
    assert manifest.read_text() == "{not json"


@pytest.mark.slow
def test_wheel_carries_the_pack_and_init_works_from_it(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    wheel = next(out.glob("trainwright-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in pack.iter_files():
        assert f"trainwright/_pack/{rel}" in names, rel
    assert "trainwright/state/schemas/intent.schema.json" in names
    # Install the wheel alone into a folder and run init from it (deps come from this venv).
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    target = tmp_path / "user-project"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); from trainwright.cli import main; "
            "import trainwright.pack as p; print(p.pack_root(), file=sys.stderr); "
            "main(['init', sys.argv[2]])",
            str(site),
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert str(site) in proc.stderr  # the pack came from the wheel, not the checkout
    assert (target / "CLAUDE.md").is_file()
    assert (target / "grimoire" / "templates" / "training" / "status.md").is_file()


def test_users_own_settings_get_the_lock_hooks_merged_in(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    settings = target / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    mine = {
        "permissions": {"allow": ["Bash(ls:*)"]},
        "hooks": {"PostToolUse": [{"matcher": "Edit", "hooks": []}]},
    }
    settings.write_text(json.dumps(mine))
    report = json.loads(run_cli("init", str(target), "--json").stdout)
    assert ".claude/settings.json" in report["merged"]
    merged = json.loads(settings.read_text())
    pack_hooks = json.loads((pack.pack_root() / ".claude/settings.json").read_text())["hooks"]
    # The user's own rules stay; the pack's approvals (permissions.ask) are added beside them.
    assert merged["permissions"]["allow"] == mine["permissions"]["allow"]
    assert merged["permissions"]["ask"] == approvals.claude_ask_rules()
    assert mine["hooks"]["PostToolUse"][0] in merged["hooks"]["PostToolUse"]
    for event in ("PreToolUse", "PostToolUse"):
        for group in pack_hooks[event]:
            assert group in merged["hooks"][event]
    backup = Path(report["backup_dir"]) / ".claude" / "settings.json"
    assert json.loads(backup.read_text()) == mine
    # A second init finds the hooks already there and changes nothing.
    again = json.loads(run_cli("init", str(target), "--json").stdout)
    assert ".claude/settings.json" in again["unchanged"] and again["merged"] == []
    assert json.loads(settings.read_text()) == merged


def test_unparseable_settings_are_kept_not_merged(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    settings = target / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text("{ not json")
    report = json.loads(run_cli("init", str(target), "--json").stdout)
    assert ".claude/settings.json" in report["kept"]
    assert settings.read_text() == "{ not json"


def _skill_folders(root: Path) -> dict[str, str]:
    found = {}
    for base in (".claude/skills", ".codex/skills"):
        for p in (root / base).glob("*/SKILL.md"):
            found[p.parent.name] = f"../../{base}/{p.parent.name}"
    return found


def test_skills_are_linked_for_codex(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    report = json.loads(run_cli("init", str(target), "--json").stdout)
    skills = _skill_folders(pack.pack_root())
    assert report["linked"] == [f".agents/skills/{s}" for s in sorted(skills)]
    for name, rel in skills.items():
        link = target / ".agents" / "skills" / name
        assert link.is_symlink() and os.readlink(link) == rel
        assert (link / "SKILL.md").is_file()
    assert json.loads(run_cli("init", str(target), "--json").stdout)["linked"] == []


def test_the_repository_links_every_skill_for_codex() -> None:
    for name, rel in _skill_folders(REPO).items():
        link = REPO / ".agents" / "skills" / name
        assert link.is_symlink() and os.readlink(link) == rel, name
