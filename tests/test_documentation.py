"""The README and AGENTS.md cannot drift from the CLI (submitit-style doc tests)."""

from __future__ import annotations

import re

import click

from helpers import REPO, run_cli
from trainwright.cli import cli


def _commands(group: click.Group, prefix: str = "trainwright") -> set[str]:
    out = set()
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out |= _commands(cmd, f"{prefix} {name}")
        else:
            out.add(f"{prefix} {name}")
    return out


def test_readme_command_table_lists_every_command() -> None:
    readme = (REPO / "README.md").read_text()
    table = set(re.findall(r"^\| `(trainwright [a-z-]+(?: [a-z-]+)?)", readme, flags=re.M))
    documented = {
        " ".join(t.split()[:3]) if t.split()[1] in _groups() else " ".join(t.split()[:2])
        for t in table
    }
    assert _commands(cli) == documented


def _groups() -> set[str]:
    return {n for n, c in cli.commands.items() if isinstance(c, click.Group)}


def test_readme_mentions_the_two_commands_and_ci_calls_make_test() -> None:
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_agents_md_commands_exist() -> None:
    text = (REPO / "AGENTS.md").read_text()
    for cmd in set(re.findall(r"`trainwright ([a-z-]+)", text)):
        proc = run_cli(cmd, "--help")
        assert proc.returncode == 0, f"AGENTS.md names 'trainwright {cmd}', which does not exist"
    assert "@AGENTS.md" in (REPO / "CLAUDE.md").read_text()
