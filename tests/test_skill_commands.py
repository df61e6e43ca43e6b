"""Every `trainwright ...` command a skill or its references names exists, with the flags it uses.

The skills are the agent's playbook: a renamed command or flag must fail here, not in a session.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import click
import pytest

from helpers import REPO
from trainwright.cli import cli

DOCS = sorted(
    p
    for root in (".claude/skills", ".codex/skills", ".claude/commands")
    for p in (REPO / root).rglob("*.md")
)
MENTION = re.compile(r"trainwright((?:[ \t]+[^\s`|\"')\];,]+)+)")
FLAG = re.compile(r"^--[a-z][a-z0-9-]*")


def _resolve(words: list[str]) -> tuple[click.Command, list[str]] | None:
    """The deepest command the words name, and the words after it; None if not a command."""
    cmd: click.Command = cli
    used = 0
    while isinstance(cmd, click.Group) and used < len(words):
        sub = cmd.commands.get(words[used])
        if sub is None:
            break
        cmd, used = sub, used + 1
    return (cmd, words[used:]) if used else None


@functools.cache
def _options(cmd: click.Command) -> frozenset[str]:
    names: set[str] = {"--help", "--json"}
    for p in cmd.params:
        names.update(o for o in [*p.opts, *p.secondary_opts] if o.startswith("--"))
    return frozenset(names)


CODE_SPAN = re.compile(r"```.*?```|`[^`\n]+`", re.S)


def mentions(text: str) -> list[list[str]]:
    """Commands written as code (inline spans and fenced blocks); prose is not checked."""
    code = "\n".join(m.group(0).strip("`") for m in CODE_SPAN.finditer(text))
    out = []
    for m in MENTION.finditer(code):
        words = m.group(1).split()
        # Global options come before the subcommand.
        while words and words[0] in ("--json", "--grimoire"):
            words = words[2:] if words[0] == "--grimoire" else words[1:]
        if words and re.match(r"^[a-z][a-z-]*$", words[0]):
            out.append(words)
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_named_commands_and_flags_exist(doc: Path) -> None:
    problems = []
    for words in mentions(doc.read_text(encoding="utf-8")):
        resolved = _resolve(words)
        if resolved is None:
            problems.append(f"'trainwright {words[0]}' is not a command")
            continue
        cmd, rest = resolved
        if isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
            if re.match(r"^[a-z][a-z-]+$", rest[0]) and rest[0] not in ("...",):
                problems.append(f"'trainwright {' '.join(words[:2])}': no such subcommand")
            continue
        for w in rest:
            flag = FLAG.match(w)
            if flag and flag.group(0) not in _options(cmd):
                problems.append(f"'{cmd.name}' has no option {flag.group(0)}")
    assert not problems, f"{doc.relative_to(REPO)}: " + "; ".join(sorted(set(problems)))


def test_the_checker_catches_a_wrong_flag() -> None:
    words = mentions("run `trainwright audit DIR --no-such-flag` then `trainwright nosuch x`")
    assert words == [["audit", "DIR", "--no-such-flag"], ["nosuch", "x"]]
    cmd, rest = _resolve(words[0])
    assert "--no-such-flag" not in _options(cmd) and "--project" in _options(cmd)
    assert _resolve(words[1]) is None
