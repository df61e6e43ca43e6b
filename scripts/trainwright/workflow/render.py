"""Regenerate each skill's shared/workflow-state-template.md from the one runtime template.

The copies are what `trainwright ticket new` writes for a ticket, with placeholders; one source
(templates/workflow-state.md, stages.yaml, transitions.yaml) keeps both skills and every ticket
in step. Run `python -m trainwright.workflow.render` after changing any of them; a test fails
while a copy is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from trainwright import pack
from trainwright.state.atomic import atomic_write_text
from trainwright.workflow.stages import skills
from trainwright.workflow.workflow_state import BOOTSTRAP_KEYS, render_state

PLACEHOLDERS = dict(
    zip(
        BOOTSTRAP_KEYS,
        (
            "<git or non-git>",
            "<the project's main checkout>",
            "<remote name, empty without a remote>",
            "<base branch>",
            "<explicit, remote-default or current-branch>",
            "<remote/branch the work lands on>",
            "<yes, or no and why>",
            "<the ticket worktree, empty in non-git mode>",
            "<codex/ticket-name>",
            "<UTC time>",
        ),
        strict=True,
    )
)


def skill_copy_path(skill: str, root: Path | None = None) -> Path:
    return (
        (root or pack.pack_root())
        / ".claude"
        / "skills"
        / skill
        / "shared"
        / ("workflow-state-template.md")
    )


def skill_copy(skill: str) -> str:
    preface = (
        f"> What `trainwright ticket new <ticket-name> --skill {skill}` writes. Generated from "
        "scripts/trainwright/workflow/templates/workflow-state.md, stages.yaml and "
        "transitions.yaml by `python -m trainwright.workflow.render`; change those, not this "
        "copy."
    )
    return render_state(skill, "<ticket-name>", "<UTC time>", PLACEHOLDERS, preface)


def main() -> int:
    for skill in skills():
        path = skill_copy_path(skill)
        atomic_write_text(path, skill_copy(skill))
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
