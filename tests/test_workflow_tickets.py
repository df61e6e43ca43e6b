"""Tickets through their stages: gates, artifacts, the forward path, archive, reopen, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_cli
from trainwright.errors import TrainwrightError
from trainwright.state.document import parse_document
from trainwright.state.schema import validate_document
from trainwright.workflow import tickets
from trainwright.workflow.render import skill_copy
from trainwright.workflow.stages import skills, stages_for
from trainwright.workflow.tickets import Refused, Ticket
from trainwright.workflow.workflow_state import load, render_requirements, render_state

ARTIFACT_TEXT = "Filled in for the test: evidence, paths and decisions.\n"


def fill_artifact(ticket: Ticket, skill: str, number: int) -> None:
    st = stages_for(skill)[number]
    path = ticket.folder / st.artifact
    if st.artifact == "requirements.md":
        text = path.read_text()
        if number > 0:
            text = text.replace("- **Status**: Draft", "- **Status**: Plan-ready")
        path.write_text(text)
    else:
        path.write_text(ARTIFACT_TEXT)


def pass_and_advance(ticket: Ticket, skill: str, number: int) -> None:
    fill_artifact(ticket, skill, number)
    tickets.set_gate(ticket, "Pass", f"stage {number} done")
    tickets.advance(ticket, number + 1)


def walk_to(ticket: Ticket, skill: str, target: int) -> None:
    """Drive the ticket along the forward path with the real library calls."""
    _, state = load(ticket.state_file)
    for n in range(state.stage, target):
        pass_and_advance(ticket, skill, n)


def make(home: Path, name: str = "t1", skill: str = "llm-fine-tuning") -> Ticket:
    tickets.new_ticket(home, name, skill)
    return tickets.get_ticket(home, name)


def state_of(ticket: Ticket):
    return load(ticket.state_file)[1]


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("skill", skills())
def test_new_ticket_in_a_plain_folder(home: Path, skill: str) -> None:
    proc = run_cli("ticket", "new", "sft-1", "--skill", skill, "--json", cwd=home)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    folder = home / "tickets" / "in-progress" / "sft-1"
    assert data["folder"] == str(folder)
    assert data["mode"] == "non-git" and data["worktree"] is None
    req = validate_document(
        parse_document((folder / "requirements.md").read_text()), "requirements"
    )
    assert req["sections"][""]["Status"] == "Draft"
    state = state_of(tickets.get_ticket(home, "sft-1"))
    assert (state.stage, state.unlocked, state.skill) == (0, False, skill)
    assert state.gates[0] == "In Progress"
    assert all(state.gates[n] == "Not Started" for n in range(1, 9))
    assert state.bootstrap["Mode"] == "non-git"
    assert list(state.transitions) == ["T-001"] and "bootstrap" in state.transitions["T-001"]


def test_new_keeps_an_existing_requirements_file(home: Path) -> None:
    folder = home / "tickets" / "in-progress" / "t1"
    folder.mkdir(parents=True)
    mine = render_requirements("llm-fine-tuning", "t1") + "\nMy own notes on the task.\n"
    (folder / "requirements.md").write_text(mine)
    data = tickets.new_ticket(home, "t1")
    assert data["kept"] == [str(folder / "requirements.md")]
    assert (folder / "requirements.md").read_text() == mine


def test_the_whole_forward_path_archive_and_reopen(home: Path) -> None:
    ticket = make(home)
    for n in range(8):
        pass_and_advance(ticket, "llm-fine-tuning", n)
        state = state_of(ticket)
        assert state.stage == n + 1
        assert state.unlocked == (n + 1 == 4), n
    fill_artifact(ticket, "llm-fine-tuning", 8)
    proc = run_cli("ticket", "archive", "t1", cwd=home)
    assert_one_line_error(proc, "--user-verified")
    proc = run_cli("ticket", "archive", "t1", "--user-verified", "--json", cwd=home)
    assert proc.returncode == 0, proc.stderr
    done = home / "tickets" / "done" / "t1"
    assert json.loads(proc.stdout)["folder"] == str(done)
    assert not ticket.folder.exists() and (done / "workflow-state.md").exists()
    archived = load(done / "workflow-state.md")[1]
    assert archived.gates[8] == "Pass" and "verified" in archived.evidence[8]
    assert "archive" in archived.transitions[archived.last_transition]

    proc = run_cli("ticket", "reopen", "t1", cwd=home)
    assert proc.returncode == 0, proc.stderr
    state = state_of(tickets.get_ticket(home, "t1"))
    assert (state.stage, state.gates[8], state.unlocked) == (8, "In Progress", False)
    assert "reopen" in state.transitions[state.last_transition]


def test_pre_edit_checklist_follows_the_stage(home: Path) -> None:
    ticket = make(home)
    walk_to(ticket, "llm-fine-tuning", 4)
    values = load(ticket.state_file)[0].values()["Pre-Edit Checklist"]
    assert set(values.values()) == {"Pass"}
    pass_and_advance(ticket, "llm-fine-tuning", 4)
    values = load(ticket.state_file)[0].values()["Pre-Edit Checklist"]
    assert values["Stage Is 4"] == "Fail" and values["Edits Unlocked"] == "Fail"
    assert values["Result"] == "Fail"


def test_entering_stage_4_with_draft_requirements_stays_locked(home: Path) -> None:
    ticket = make(home)
    walk_to(ticket, "llm-fine-tuning", 3)
    req = ticket.folder / "requirements.md"
    req.write_text(req.read_text().replace("Plan-ready", "Draft"))
    pass_and_advance(ticket, "llm-fine-tuning", 3)
    state = state_of(ticket)
    assert state.stage == 4 and not state.unlocked
    assert "not current" in state.transitions[state.last_transition]


def test_advance_refuses_without_pass_or_artifact_and_writes_nothing(home: Path) -> None:
    ticket = make(home)
    walk_to(ticket, "llm-fine-tuning", 1)
    before = ticket.state_file.read_bytes()
    proc = run_cli("ticket", "advance", "t1", "--to", "2", cwd=home)
    assert proc.returncode == 1 and "gate is In Progress" in proc.stderr
    proc = run_cli("ticket", "gate", "t1", "Pass", "--evidence", "x", "--json", cwd=home)
    assert proc.returncode == 1 and "investigation-notes.md is missing" in proc.stderr
    assert json.loads(proc.stdout)["ok"] is False
    (ticket.folder / "investigation-notes.md").write_text("  \n\n")
    proc = run_cli("ticket", "gate", "t1", "Pass", "--evidence", "x", cwd=home)
    assert proc.returncode == 1 and "is empty" in proc.stderr
    template = Path(
        ".claude/skills/llm-fine-tuning/stages/01-investigation/investigation-notes-template.md"
    )
    (ticket.folder / "investigation-notes.md").write_text((Path.cwd() / template).read_text())
    proc = run_cli("ticket", "gate", "t1", "Pass", "--evidence", "x", cwd=home)
    assert proc.returncode == 1 and "blank template" in proc.stderr
    assert ticket.state_file.read_bytes() == before


def test_artifact_gone_after_pass_blocks_advance(home: Path) -> None:
    ticket = make(home)
    walk_to(ticket, "llm-fine-tuning", 1)
    fill_artifact(ticket, "llm-fine-tuning", 1)
    tickets.set_gate(ticket, "Pass", "notes")
    (ticket.folder / "investigation-notes.md").unlink()
    with pytest.raises(Refused, match="investigation-notes.md is missing"):
        tickets.advance(ticket, 2)


def test_requirements_gate_needs_plan_ready(home: Path) -> None:
    ticket = make(home)
    walk_to(ticket, "llm-fine-tuning", 2)
    with pytest.raises(Refused, match="still Draft"):
        tickets.set_gate(ticket, "Pass", "criteria")
    fill_artifact(ticket, "llm-fine-tuning", 2)
    tickets.set_gate(ticket, "Pass", "criteria")


def test_deep_learning_plan_artifact_is_the_experiment_plan(home: Path) -> None:
    ticket = make(home, "dl", "deep-learning-experiment")
    walk_to(ticket, "deep-learning-experiment", 3)
    (ticket.folder / "implementation-plan.md").write_text(ARTIFACT_TEXT)
    with pytest.raises(Refused, match="experiment-plan.md is missing"):
        tickets.set_gate(ticket, "Pass", "plan")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["advance", "t1", "--to", "9"], ["stage 9 is out of range", "0 to 8"]),
        (["advance", "t1", "--to", "-1"], ["out of range"]),
        (["advance", "t1", "--to", "2"], ["cannot skip Stage 1"]),
        (["advance", "t1", "--to", "0"], ["already at Stage 0"]),
        (["advance", "nope", "--to", "1"], ["no ticket 'nope'", "active: t1"]),
        (["status", "nope"], ["no ticket 'nope'"]),
        (["advance", "../t1", "--to", "1"], ["looks like a path"]),
        (["gate", "t1", "Great", "--evidence", "x"], ["not one of"]),
        (["gate", "t1", "Pass"], ["needs --evidence"]),
        (["gate", "t1", "Pass", "--stage", "3", "--evidence", "x"], ["only the current stage"]),
        (["reenter", "t1", "--from", "0", "--class", "unclear", "--reason", "x"], ["Stage 0"]),
        (["reenter", "t1", "--from", "4", "--class", "local-fix", "--reason", "x"], ["not 4"]),
        (["reenter", "t1", "--from", "12", "--class", "unclear", "--reason", "x"], ["range"]),
        (["new", "t1"], ["already exists"]),
        (["new", "bad name"], ["not allowed"]),
        (["new", "x", "--skill", "nope"], ["Invalid value"]),
        (["new", "x", "--base", "main"], ["not a git repository"]),
        (["archive", "t1", "--user-verified"], ["archive from Stage 8"]),
        (["reopen", "t1"], ["not archived"]),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    home: Path, args: list[str], fragments: list[str]
) -> None:
    ticket = make(home)
    before = ticket.state_file.read_bytes()
    files = sorted(p.name for p in ticket.folder.iterdir())
    proc = run_cli("ticket", *args, cwd=home)
    assert_one_line_error(proc, *fragments)
    assert ticket.state_file.read_bytes() == before
    assert sorted(p.name for p in ticket.folder.iterdir()) == files
    assert not (home / "tickets" / "in-progress" / "x").exists()


def hand_edit(ticket: Ticket, old: str, new: str) -> None:
    text = ticket.state_file.read_text()
    assert old in text
    ticket.state_file.write_text(text.replace(old, new))


IMPOSSIBLE = [
    (
        "stage 2 unlocked",
        2,
        [("- **Code Edit Permission**: Locked", "- **Code Edit Permission**: Unlocked")],
        "only Stage 4 can be Unlocked",
        "Code Edit Permission**: Locked",
    ),
    (
        "stage jumped ahead of its gates",
        1,
        [
            ("- **Current Stage**: 1", "- **Current Stage**: 3"),
            ("- **Next Stage**: 2", "- **Next Stage**: 4"),
        ],
        "Stage 1 Investigation gate is In Progress, not Pass",
        "Current Stage**: 1",
    ),
    (
        "a later gate passed",
        1,
        [("- **Stage 6 Code Review**: Not Started", "- **Stage 6 Code Review**: Pass")],
        "later Stage 6 Code Review gate is Pass",
        "Not Started",
    ),
    (
        "a gate line deleted",
        1,
        [("- **Stage 5 Training & Validation**: Not Started\n", "")],
        "gate line for Stage 5 Training & Validation is missing",
        "add '- **Stage 5 Training & Validation**: Not Started'",
    ),
]


@pytest.mark.parametrize(
    ("label", "stage", "edits", "problem", "repair"), IMPOSSIBLE, ids=[i[0] for i in IMPOSSIBLE]
)
def test_impossible_hand_edited_state_is_explained_and_refused(
    home: Path, label: str, stage: int, edits: list[tuple[str, str]], problem: str, repair: str
) -> None:
    ticket = make(home)
    walk_to(ticket, "llm-fine-tuning", stage)
    for old, new in edits:
        hand_edit(ticket, old, new)
    broken = ticket.state_file.read_bytes()
    proc = run_cli("ticket", "status", "t1", cwd=home)
    assert proc.returncode == 1, proc.stdout
    assert "PROBLEM: " in proc.stdout and problem in proc.stdout
    assert "repair:" in proc.stdout and repair in proc.stdout
    data = json.loads(run_cli("ticket", "status", "t1", "--json", cwd=home).stdout)
    assert data["ok"] is False and problem in data["tickets"][0]["problems"][0]["message"]
    proc = run_cli("ticket", "gate", "t1", "In Progress", cwd=home)
    assert_one_line_error(proc, problem, "repair:", "ticket status t1")
    assert ticket.state_file.read_bytes() == broken


def test_unparseable_state_file_is_reported_by_status(home: Path) -> None:
    ticket = make(home)
    hand_edit(ticket, "- **Current Stage**: 0", "- **Current Stage**: two")
    proc = run_cli("ticket", "status", cwd=home)
    assert proc.returncode == 1
    assert "'Current Stage' should be a whole number" in proc.stdout
    assert "workflow-state.md:" in proc.stdout and "repair:" in proc.stdout
    proc = run_cli("ticket", "advance", "t1", "--to", "1", cwd=home)
    assert_one_line_error(proc, "workflow-state.md:", "Current Stage")


def test_status_lists_every_active_ticket_and_says_what_is_next(home: Path) -> None:
    make(home, "a")
    make(home, "b", "deep-learning-experiment")
    data = json.loads(run_cli("ticket", "status", "--json", cwd=home).stdout)
    assert [t["ticket"] for t in data["tickets"]] == ["a", "b"]
    first = data["tickets"][0]
    assert first["stage"] == 0 and first["permission"] == "Locked"
    assert first["gates"][0]["status"] == "In Progress" and len(first["gates"]) == 9
    assert first["last_transition"]["id"] == "T-001"
    assert "trainwright ticket gate a Pass" in first["next"]
    assert run_cli("ticket", "status", cwd=home / "tickets").returncode == 0


def test_status_with_no_tickets(home: Path) -> None:
    proc = run_cli("ticket", "status", cwd=home)
    assert proc.returncode == 0 and "no active tickets" in proc.stdout


def test_state_writes_keep_prose_a_person_added(home: Path) -> None:
    ticket = make(home)
    hand_edit(ticket, "## Stage Gates\n", "## Stage Gates\nMara: check the tokenizer first.\n")
    ticket.state_file.write_text(ticket.state_file.read_text() + "\nA closing note.\n")
    walk_to(ticket, "llm-fine-tuning", 2)
    text = ticket.state_file.read_text()
    assert "Mara: check the tokenizer first." in text and text.endswith("A closing note.\n")


def test_render_is_valid_for_every_skill_and_skill_copies_are_current() -> None:
    from trainwright.workflow.render import skill_copy_path
    from trainwright.workflow.workflow_state import BOOTSTRAP_KEYS

    for skill in skills():
        text = render_state(skill, "x", "2026-01-01T00:00:00Z", {"Mode": "non-git"})
        validate_document(parse_document(text), "workflow-state")
        validate_document(parse_document(render_requirements(skill, "x")), "requirements")
        assert skill_copy_path(skill).read_text() == skill_copy(skill), (
            f"{skill_copy_path(skill)} is stale: run python -m trainwright.workflow.render"
        )
        assert len(BOOTSTRAP_KEYS) == 10


def test_get_ticket_rejects_names_that_are_paths(home: Path) -> None:
    with pytest.raises(TrainwrightError, match="looks like a path"):
        tickets.get_ticket(home, "../etc")


def test_reenter_through_the_cli(home: Path) -> None:
    ticket = make(home)
    walk_to(ticket, "llm-fine-tuning", 6)
    proc = run_cli(
        "ticket",
        "reenter",
        "t1",
        "--from",
        "6",
        "--class",
        "validation-gap",
        "--reason",
        "one seed only",
        "--json",
        cwd=home,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["stage"], data["permission"], data["gate"]) == (5, "Locked", "In Progress")
    assert data["reentry_active"] and data["return_path"] == "5 -> 6"
    proc = run_cli(
        "ticket",
        "reenter",
        "t1",
        "--from",
        "5",
        "--class",
        "local-fix",
        "--reason",
        "bug",
        cwd=home,
    )
    assert proc.returncode == 0, proc.stderr
    assert "now Stage 4, gate In Progress, edits Unlocked, re-entry path 4 -> 5" in proc.stdout
    proc = run_cli(
        "ticket", "reenter", "t1", "--from", "4", "--class", "nope", "--reason", "x", cwd=home
    )
    assert_one_line_error(proc, "Invalid value for '--class'")


def test_check_hook_json_and_help_texts(home: Path) -> None:
    proc = run_cli("ticket", "hook", "--json", cwd=home, input='{"tool_name": "Edit"}')
    assert proc.returncode == 0 and json.loads(proc.stdout) == {"allowed": True, "reason": None}
    make(home)
    hook_input = json.dumps({"tool_name": "Write", "tool_input": {"file_path": "a.py"}})
    proc = run_cli("ticket", "hook", "--json", cwd=home, input=hook_input)
    assert proc.returncode == 2 and json.loads(proc.stdout)["allowed"] is False
    assert "a.py is a source file" in json.loads(proc.stdout)["reason"]
    proc = run_cli("ticket", "check", "../src/a.py", "--json", cwd=home / "tickets")
    assert proc.returncode == 1 and json.loads(proc.stdout)["results"][0]["class"] == "source"
    proc = run_cli("ticket", "check", "src/a.py", "--json", cwd=home.parent)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["results"][0]["reason"] == "no active ticket: the lock is off"
    for cmd in (
        "new",
        "status",
        "gate",
        "advance",
        "reenter",
        "archive",
        "reopen",
        "check",
        "hook",
    ):
        proc = run_cli("ticket", cmd, "--help")
        assert proc.returncode == 0 and "--json" in proc.stdout, cmd
