"""Project and ticket names: one path component, printable, no tricks."""

from __future__ import annotations

import re

from trainwright.errors import TrainwrightError

_ALLOWED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(name: str, what: str = "project name") -> str:
    """Return `name` if it is safe as a single folder name, else raise with the reason."""
    if name is None or name.strip() == "":
        raise TrainwrightError(f"{what} is empty: give a short name like 'my-style'")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise TrainwrightError(f"{what} {name!r} contains control characters")
    if "/" in name or "\\" in name or name.startswith("~"):
        raise TrainwrightError(
            f"{what} {name!r} looks like a path: use a plain name (letters, digits, . _ -)"
        )
    if name in (".", "..") or name.startswith("."):
        raise TrainwrightError(f"{what} {name!r} must not start with a dot")
    if not _ALLOWED.match(name):
        raise TrainwrightError(
            f"{what} {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name
