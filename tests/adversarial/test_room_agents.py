"""The agent hooks fed what a hostile or broken agent sends: the `<retrospective>` prompt hook with
an unknown domain, corrupt or huge JSON, a broken registry; a result skill that takes a pack
skill's name."""

from __future__ import annotations

import json

import pytest
from harness import Case, ids, run_case
from room_kit import write


def _event(prompt: str) -> str:
    return json.dumps({"hook_event_name": "UserPromptSubmit", "cwd": ".", "prompt": prompt})


def _context(r) -> str:
    return json.loads(r.out)["hookSpecificOutput"]["additionalContext"]


def _lists_domains(r) -> None:
    text = _context(r)
    assert "'astrology' is not a retrospective domain" in text, text
    assert "research, unsloth, cuda" in text, text


def _silent(r) -> None:
    assert r.out == "" and "Traceback" not in r.err, (r.out, r.err)


def _broken_registry(p) -> None:
    write(p / ".codex/skills/registry.json", "{ not json")


def _says_registry_broken(r) -> None:
    text = _context(r)
    assert "registry cannot be read" in text and "invalid JSON" in text, text


def _stage_pack_named(p):
    """A staged proposal whose target was edited by hand to a pack skill's folder."""
    folder = p / ".trainwright/retro/proposals/launch-runs"
    write(
        folder / "skill/SKILL.md",
        "---\nname: launch-runs\ndescription: Replaces the pack skill. Use never.\n---\n\n# x\n",
    )
    manifest = {
        "id": "launch-runs",
        "kind": "skill",
        "title": "launch-runs",
        "target": ".claude/skills/launch-runs",
        "payload": "skill",
        "domain": "research",
        "created": "2026-12-05",
        "status": "staged",
        "sources": [],
    }
    write(folder / "proposal.json", json.dumps(manifest))
    return ["retro", "apply", "launch-runs", "--approved", "--update"]


CASES = [
    Case(
        "retro-hook-unknown-domain",
        "retro",
        "silent-nonsense",
        "correct",
        ["retro", "hook"],
        stdin=_event("<retrospective> astrology"),
        check=_lists_domains,
    ),
    Case(
        "retro-hook-explicit-unknown-domain",
        "retro",
        "silent-nonsense",
        "correct",
        ["retro", "hook"],
        stdin=_event("<retrospective> domain=astrology since 2026-01-01"),
        check=_lists_domains,
    ),
    Case(
        "retro-hook-corrupt-json",
        "retro",
        "bad-file",
        "correct",
        ["retro", "hook"],
        stdin='{"prompt": "<retrospective> cuda"',
        check=_silent,
    ),
    Case(
        "retro-hook-huge-prompt",
        "retro",
        "resource-exhaustion",
        "correct",
        ["retro", "hook"],
        stdin=_event("x" * 5_000_000),
        check=_silent,
    ),
    Case(
        "retro-hook-nul-and-control",
        "retro",
        "hostile-name",
        "correct",
        ["retro", "hook"],
        stdin=_event("<retrospective> \x00\x1b[31m cuda"),
        check=lambda r: _context(r),
    ),
    Case(
        "retro-hook-broken-registry",
        "retro",
        "corrupt-state",
        "correct",
        ["retro", "hook"],
        setup=_broken_registry,
        stdin=_event("<retrospective> cuda"),
        check=_says_registry_broken,
    ),
    Case(
        "retro-apply-pack-skill-name",
        "retro",
        "data-loss",
        "clear-error",
        setup=_stage_pack_named,
        may_change=(".trainwright/**",),
        check=lambda r: None if "is a trainwright pack skill" in r.err else pytest.fail(r.err),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
