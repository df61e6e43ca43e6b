"""Human text by default, JSON for agents: one place that decides which."""

from __future__ import annotations

import json
import math
import numbers
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


def _finite(value: Any, path: str, found: list[dict[str, str]]) -> Any:
    """`value` with every NaN and infinity replaced by null, each one noted in `found`."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            out[key] = _finite(item, f"{path}.{key}" if path else str(key), found)
            note = f"{key}_note"
            if out[key] is None and _is_non_finite(item) and note not in value:
                out[note] = _word(item)
        return out
    if isinstance(value, (list, tuple)):
        return [_finite(item, f"{path}[{i}]", found) for i, item in enumerate(value)]
    if _is_non_finite(value):
        found.append({"path": path, "value": _word(value)})
        return None
    return value


def _is_non_finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        return not math.isfinite(float(value))
    except (OverflowError, ValueError):
        return False


def _word(value: Any) -> str:
    v = float(value)
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def to_json(data: Any) -> str:
    """Strict JSON (what jq and every parser accept): a NaN or infinite number becomes null,
    with a sibling `<key>_note` ("nan", "inf", "-inf") and, at the top, `non_finite`: the path
    and value of each one, so the reader learns the value was not simply missing."""
    found: list[dict[str, str]] = []
    clean = _finite(data, "", found)
    if found and isinstance(clean, dict) and "non_finite" not in clean:
        clean["non_finite"] = found
    return json.dumps(clean, indent=2, sort_keys=False, default=str, allow_nan=False)


def emit(data: Any, as_json: bool, human: Callable[[Any], str]) -> None:
    if wants_json(as_json):
        click.echo(to_json(data))
    else:
        text = human(data)
        if text:
            click.echo(text)
