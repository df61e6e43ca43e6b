"""The re-entry matrix: the data matches the published template, and every cell behaves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from test_workflow_tickets import fill_artifact, make, pass_and_advance, state_of, walk_to
from trainwright.errors import TrainwrightError
from trainwright.workflow import matrix, tickets
from trainwright.workflow.render import skill_copy
from trainwright.workflow.workflow_state import problems

SKILL = "llm-fine-tuning"

# The published template's return paths, as shared/reference/workflow-state.md summarises them,
# written out by hand here so that a change to transitions.yaml cannot silently move a cell.
PUBLISHED = {
    (4, "local-fix"): (4,),
    (4, "plan-impact"): (3, 4),
    (4, "requirement-gap"): (2, 3, 4),
    (4, "investigation-gap"): (1, 2, 3, 4),
    (4, "unclear"): (0, 1, 2, 3, 4),
    (5, "local-fix"): (4, 5),
    (5, "plan-impact"): (3, 4, 5),
    (5, "requirement-gap"): (2, 3, 4, 5),
    (5, "investigation-gap"): (1, 2, 3, 4, 5),
    (5, "unclear"): (0, 1, 2, 3, 4, 5),
    (5, "blocked"): (5,),
    (6, "validation-gap"): (5, 6),
    (6, "local-fix"): (4, 5, 6),
    (6, "plan-impact"): (3, 4, 5, 6),
    (6, "requirement-gap"): (2, 3, 4, 5, 6),
    (6, "investigation-gap"): (1, 2, 3, 4, 5, 6),
    (6, "unclear"): (0, 1, 2, 3, 4, 5, 6),
    (7, "validation-gap"): (5, 6, 7),
    (7, "local-fix"): (4, 5, 6, 7),
    (7, "plan-impact"): (3, 4, 5, 6, 7),
    (7, "requirement-gap"): (2, 3, 4, 5, 6, 7),
    (7, "investigation-gap"): (1, 2, 3, 4, 5, 6, 7),
    (7, "unclear"): (0, 1, 2, 3, 4, 5, 6, 7),
    (7, "blocked"): (7,),
    (8, "blocked"): (8,),
}
ALL_CELLS = sorted(matrix.cells())
INVALID = [(s, c) for s in range(9) for c in matrix.classes() if (s, c) not in matrix.cells()]


def test_published_cells_are_exactly_the_reference() -> None:
    published = {k: v[0] for k, v in matrix.cells().items() if v[1] == "published"}
    assert published == PUBLISHED


def test_plan_impact_from_4_returns_through_3_not_1() -> None:
    assert matrix.return_path(4, "plan-impact") == (3, 4)
    text = (Path(__file__).parents[1] / "scripts/trainwright/workflow/transitions.yaml").read_text()
    assert "plan-impact from Stage 4: the return path is 3 -> 4" in text
    for skill in ("llm-fine-tuning", "deep-learning-experiment"):
        assert "Plan impact from Stage 4\nreturns 3 -> 4" in skill_copy(skill)


def test_extension_cells_walk_forward_and_are_marked_in_the_template() -> None:
    extensions = {k: v[0] for k, v in matrix.cells().items() if v[1] == "extension"}
    assert set(extensions) & set(PUBLISHED) == set()
    assert extensions[(8, "local-fix")] == (4, 5, 6, 7, 8)
    text = skill_copy(SKILL)
    for (frm, cls), path in matrix.cells().items():
        row = next(ln for ln in text.splitlines() if ln.startswith(f"| {frm} | "))
        col = list(matrix.classes()).index(cls)
        cell = row.strip("|").split("|")[col + 1].strip()
        star = "*" if (frm, cls) not in PUBLISHED else ""
        assert cell == matrix.path_text(path[0]) + star, (frm, cls, cell)


@pytest.mark.parametrize(
    ("stage", "cls", "path", "error"),
    [
        (4, "plan-impact", [1, 3, 4], "must walk forward to 4"),
        (5, "local-fix", [4, 6], "must walk forward to 5"),
        (6, "local-fix", [7, 6], "must walk forward to 6"),
        (6, "oops", [6], "unknown class 'oops'"),
    ],
)
def test_a_matrix_file_that_jumps_is_rejected(stage: int, cls: str, path: list, error: str) -> None:
    source = Path(__file__).parents[1] / "scripts/trainwright/workflow/transitions.yaml"
    data = yaml.safe_load(source.read_text())
    data["published"][stage][cls] = path
    with pytest.raises(TrainwrightError, match=error):
        matrix.check(data)


@pytest.mark.parametrize(("frm", "cls"), ALL_CELLS, ids=[f"{s}-{c}" for s, c in ALL_CELLS])
def test_every_cell(tmp_path: Path, frm: int, cls: str) -> None:
    path = matrix.cells()[(frm, cls)][0]
    ticket = make(tmp_path)
    walk_to(ticket, SKILL, frm)
    tickets.reenter(ticket, frm, cls, f"found at {frm}")
    state = state_of(ticket)
    land = path[0]
    assert state.stage == land
    assert state.unlocked == (land == 4)
    assert state.reentry_active and state.reentry_class == cls
    decl = state.declaration
    assert (decl["Trigger Stage"], decl["Classification"]) == (frm, cls)
    assert decl["Return Path"] == matrix.path_text(path)
    assert decl["Declared In"] == state.last_transition
    log = state.transitions[state.last_transition]
    assert f"reenter {cls}" in log and f"found at {frm}" in log
    if frm > 4:
        assert "edits Locked first" in log
    assert problems(state, ticket.name) == []
    if cls == "blocked":
        assert state.gates[frm] == "Blocked"
        tickets.set_gate(ticket, "In Progress", None)
        assert not state_of(ticket).reentry_active
        return
    for n in range(9):
        expected = "Pass" if n < land else "In Progress" if n == land else "Not Started"
        assert state.gates[n] == expected, (n, state.gates)
    # Walk the return path: every gate on it must pass again; the re-entry ends at the trigger.
    for n in path[:-1]:
        assert state_of(ticket).reentry_active
        pass_and_advance(ticket, SKILL, n)
        assert state_of(ticket).unlocked == (n + 1 == 4)
    fill_artifact(ticket, SKILL, frm)
    tickets.set_gate(ticket, "Pass", "re-checked")
    after = state_of(ticket)
    assert after.stage == frm and not after.reentry_active
    assert after.reentry_class is None


@pytest.mark.parametrize(("frm", "cls"), INVALID, ids=[f"{s}-{c}" for s, c in INVALID])
def test_every_class_that_does_not_apply_is_refused(frm: int, cls: str) -> None:
    with pytest.raises(TrainwrightError, match="does not apply|no re-entry"):
        matrix.return_path(frm, cls)


def test_reenter_leaves_the_file_untouched_when_refused(tmp_path: Path) -> None:
    ticket = make(tmp_path)
    walk_to(ticket, SKILL, 4)
    before = ticket.state_file.read_bytes()
    with pytest.raises(TrainwrightError, match="does not apply at Stage 4"):
        tickets.reenter(ticket, 4, "validation-gap", "x")
    with pytest.raises(TrainwrightError, match="needs --reason"):
        tickets.reenter(ticket, 4, "local-fix", "  ")
    assert ticket.state_file.read_bytes() == before
