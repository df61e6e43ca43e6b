"""Human text by default, JSON for agents: one place that decides which."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    default=False,
    help="Print one JSON object on stdout (stable keys) instead of text.",
)


def wants_json(as_json: bool) -> bool:
    """A command's own --json flag, or the group's `trainwright --json ...`."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root().obj if ctx else None
    return bool(as_json or (isinstance(root, dict) and root.get("json")))


def emit(data: Any, as_json: bool, human: Callable[[Any], str]) -> None:
    if wants_json(as_json):
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
    else:
        text = human(data)
        if text:
            click.echo(text)
