"""Grimoire files through the CLI: templates valid, bad files refused with file:line, untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_cli
from trainwright.state.grimoire import ALL_KINDS, PROJECT_KINDS, Grimoire
from trainwright.state.schema import known_kinds, validate_file
from trainwright.workflow.workflow_state import TICKET_KINDS


@pytest.fixture()
def grim(tmp_path: Path) -> Grimoire:
    g = Grimoire(tmp_path / "grimoire")
    g.ensure_base()
    g.new_project("mystyle")
    return g


def test_every_kind_has_a_schema_and_a_valid_template(grim: Grimoire) -> None:
    assert sorted(known_kinds()) == sorted(ALL_KINDS + TICKET_KINDS)
    for kind in ALL_KINDS:
        validate_file(grim.path_for(kind, "mystyle"), kind)


def test_new_project_keeps_existing_files(grim: Grimoire) -> None:
    path = grim.path_for("intent", "mystyle")
    path.write_text(path.read_text().replace("- **Type**:", "- **Type**: style"))
    result = grim.new_project("mystyle")
    assert result["created"] == [] and len(result["kept"]) == len(PROJECT_KINDS)
    assert "- **Type**: style" in path.read_text()


def test_cli_set_and_show_round_trip(grim: Grimoire) -> None:
    g = str(grim.root)
    proc = run_cli(
        "--grimoire",
        g,
        "grimoire",
        "set",
        "intent",
        "--project",
        "mystyle",
        "Type=style",
        "Trigger word=mrstyle",
        "Base model=sdxl",
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("--grimoire", g, "grimoire", "show", "intent", "--project", "mystyle", "--json")
    data = json.loads(proc.stdout)
    assert data["sections"][""]["Type"] == "style"
    assert data["sections"][""]["Trigger word"] == "mrstyle"


BAD_FILES = {
    "bad YAML in a typed key": (
        "dataset-report",
        lambda t: t.replace("- **Images**:", "- **Images**: [1, 2"),
        "Images",
        4,
    ),
    "wrong type": (
        "dataset-report",
        lambda t: t.replace("- **Images**:", "- **Images**: thirty"),
        "whole number",
        4,
    ),
    "missing heading": (
        "dataset-report",
        lambda t: t.replace("## Gate 1 Decision", "## Gate one"),
        "Gate 1 Decision",
        None,
    ),
    "truncated file": (
        "dataset-report",
        lambda t: t[: t.index("## Quality Issues")],
        "missing",
        None,
    ),
    "enum value": (
        "status",
        lambda t: t.replace("- **Status**: ACTIVE", "- **Status**: DONE"),
        "allowed",
        3,
    ),
    "no title": (
        "intent",
        lambda t: t.replace("# Training Intent: mystyle", "Intent"),
        "title",
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_corrupt_state_file_gives_one_line_error_and_stays_untouched(
    grim: Grimoire, case: str
) -> None:
    kind, mutate, fragment, line = BAD_FILES[case]
    path = grim.path_for(kind, "mystyle")
    path.write_text(mutate(path.read_text()))
    before = path.read_bytes()
    for args in (["show", kind], ["set", kind, "Reason=x", "--section", "Gate 1 Decision"]):
        proc = run_cli("--grimoire", str(grim.root), "grimoire", *args, "--project", "mystyle")
        expected = f"{path}:{line}:" if line else str(path)
        assert_one_line_error(proc, expected, fragment)
        assert path.read_bytes() == before
    proc = run_cli("--grimoire", str(grim.root), "grimoire", "validate", "--json")
    assert proc.returncode == 1
    assert '"ok": false' in proc.stdout


def test_non_utf8_byte_names_the_line(grim: Grimoire) -> None:
    path = grim.path_for("eye", None)
    data = path.read_bytes().replace(b"- **Palette**:", b"- **Palette**: caf\xe9")
    path.write_bytes(data)
    line = data[: data.index(b"\xe9")].count(b"\n") + 1
    proc = run_cli("--grimoire", str(grim.root), "grimoire", "set", "eye", "Palette=ok")
    assert_one_line_error(proc, f"{path}:{line}:", "UTF-8")
    assert path.read_bytes() == data


@pytest.mark.parametrize("name", ["../x", "/abs/path", "", "a\x01b", ".hidden", "a/b", " "])
def test_bad_project_names_are_refused(tmp_path: Path, name: str) -> None:
    proc = run_cli("--grimoire", str(tmp_path / "g"), "grimoire", "new", name)
    assert_one_line_error(proc)
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "g" / "training").exists() or not any(
        (tmp_path / "g" / "training").iterdir()
    )


def test_missing_file_and_unknown_kind(tmp_path: Path) -> None:
    proc = run_cli("--grimoire", str(tmp_path), "grimoire", "show", "eye")
    assert_one_line_error(proc, "file not found")
    proc = run_cli("--grimoire", str(tmp_path), "grimoire", "show", "notes.txt")
    assert_one_line_error(proc, "not a known state file")
    proc = run_cli("--grimoire", str(tmp_path), "grimoire", "set", "eye", "novalue")
    assert_one_line_error(proc, "KEY=VALUE")
