"""Read the commands out of the hints the CLI prints, and parse them with the real CLI.

A hint is a `fix:`, `next:` or `then:` line (or an item under `To fix:`) in human output, or a
`fix` / `fixes` / `next` value in --json output. Its commands start with `trainwright `; one ends
at the closing quote, backtick or parenthesis that opened it, else at `, ` / `; ` or the end.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import warnings
from collections.abc import Iterator
from contextlib import redirect_stdout
from typing import Any

import click

from trainwright.cli import cli

HINT_LINE = re.compile(r"^\s*(?:-\s*)?(?:fix|next|then):\s*(.+)$")
CLOSERS = {"'": "'", "`": "`", "(": ")", '"': '"'}
# A word a person would have to replace before running the command.
PLACEHOLDER = re.compile(
    r"^(?:[A-Z][A-Z0-9_]+|[^=]*=[A-Z][A-Z0-9_]+|.*\.\.\..*|.*[<>].*|.*LORA\.safetensors)$"
)


def hints_in_text(text: str) -> list[str]:
    """The hint lines of human output (and the items under a `To fix:` heading)."""
    out: list[str] = []
    in_fix_list = False
    for line in text.splitlines():
        m = HINT_LINE.match(line)
        if m:
            out.append(m.group(1))
        if line.strip() == "To fix:":
            in_fix_list = True
            continue
        if in_fix_list:
            if line.lstrip().startswith("- "):
                out.append(line.lstrip()[2:])
                continue
            in_fix_list = False
    return out


def hints_in_json(data: Any) -> list[str]:
    """Every `fix`, `fixes` and `next` value anywhere in a --json object."""
    out: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("fix", "fixes", "next"):
                values = value if isinstance(value, list) else [value]
                out += [v for v in values if isinstance(v, str)]
            else:
                out += hints_in_json(value)
    elif isinstance(data, list):
        for item in data:
            out += hints_in_json(item)
    return out


def hints_of(stdout: str, stderr: str = "") -> list[str]:
    try:
        data = json.loads(stdout)
    except ValueError:
        return hints_in_text(stdout) + hints_in_text(stderr)
    return hints_in_json(data)


def _unclosed(prefix: str) -> str | None:
    """The opener (quote, backtick, parenthesis) still open at the end of prefix, if any."""
    stack: list[str] = []
    for i, ch in enumerate(prefix):
        if stack and ch == CLOSERS[stack[-1]]:
            stack.pop()
        elif ch in "(`":
            stack.append(ch)
        elif ch in "'\"" and (i == 0 or not prefix[i - 1].isalnum()):  # not an apostrophe
            stack.append(ch)
    return stack[-1] if stack else None


def commands_in(hint: str) -> Iterator[str]:
    """Each `trainwright ...` command written in a hint, as it would be copied."""
    for m in re.finditer(r"\btrainwright\s", hint):
        if m.start() and hint[m.start() - 1] in "-/_.":  # a path or name, not the command
            continue
        rest = hint[m.start() :]
        opener = _unclosed(hint[: m.start()])
        if opener:
            end = rest.find(CLOSERS[opener])
            yield rest if end < 0 else rest[:end]
            continue
        quote = None
        for i, ch in enumerate(rest):
            if quote:
                quote = None if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif rest.startswith((", ", "; ", " ("), i):
                yield rest[:i]
                break
        else:
            yield rest.rstrip(".")


def check_command(command: str) -> str | None:
    """Why a hinted command cannot be run as printed, or None when the real CLI parses it."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return f"not a shell command ({exc})"
    if not words or words[0] != "trainwright":
        return "does not start with trainwright"
    bad = [w for w in words[1:] if PLACEHOLDER.match(w)]
    if bad:
        return f"placeholder {bad}"
    args = words[1:]
    try:
        with redirect_stdout(io.StringIO()):
            ctx = cli.make_context("trainwright", list(args))
            cmd: click.Command = cli
            while isinstance(cmd, click.Group):
                with warnings.catch_warnings():  # click 8.2+: protected_args is deprecated
                    warnings.simplefilter("ignore", DeprecationWarning)
                    rest = [*ctx.protected_args, *ctx.args]
                if not rest:
                    return "names a group, not a command"
                _, sub, sub_args = cmd.resolve_command(ctx, rest)
                if sub is None:
                    return f"no command {rest[0]!r}"
                ctx = sub.make_context(sub.name or "", sub_args, parent=ctx)
                cmd = sub
    except click.exceptions.Exit as exc:  # --help
        return None if exc.exit_code == 0 else f"exit {exc.exit_code}"
    except click.ClickException as exc:
        return exc.format_message()
    return None


def problems(hints: list[str]) -> list[str]:
    """Every hinted command that does not parse, with the hint it came from."""
    out = []
    for hint in hints:
        for command in commands_in(hint):
            why = check_command(command)
            if why:
                out.append(f"{command!r} ({why}) in hint {hint!r}")
    return out
