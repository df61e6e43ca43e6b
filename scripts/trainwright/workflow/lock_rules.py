"""Which paths the edit lock guards: source, non-source, protected (edit_lock.yaml + override)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from trainwright.errors import StateFileError

OVERRIDE = Path("tickets") / "edit-lock.yaml"
LISTS = ("source", "non_source", "protected")
SOURCE, NON_SOURCE, PROTECTED, OTHER = "source", "non-source", "protected", "other"


@functools.cache
def glob_regex(pattern: str, fold: bool = False) -> re.Pattern[str]:
    """`*` one name part, `**` any depth, `?` one character; no slash: the name in any folder.

    `fold` matches letters case-insensitively (a case-insensitive filesystem, or a file type)."""
    anchored = "/" in pattern.strip("/")
    pattern = pattern.strip("/")
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    body = "".join(out)
    flags = re.IGNORECASE if fold else 0
    return re.compile(body + r"\Z" if anchored else r"(?:.*/)?" + body + r"\Z", flags)


def matches(patterns: tuple[str, ...], rel: str, fold: bool = False) -> str | None:
    for pattern in patterns:
        if glob_regex(pattern, fold).match(rel):
            return pattern
    return None


@dataclass(frozen=True)
class Rules:
    source: tuple[str, ...]
    non_source: tuple[str, ...]
    protected: tuple[str, ...]
    origin: str

    def classify(self, rel: str, fold: bool = False) -> tuple[str, str | None]:
        """(class, the pattern that decided) for a POSIX path relative to its project root.

        Source and protected patterns ignore case everywhere (`A.PY` is Python on any system);
        non-source ones only where the filesystem does (`fold`), so `DATA/` on Linux is not
        `data/`."""
        for kind, patterns, insensitive in (
            (PROTECTED, self.protected, True),
            (NON_SOURCE, self.non_source, fold),
            (SOURCE, self.source, True),
        ):
            hit = matches(patterns, rel, insensitive)
            if hit:
                return kind, hit
        return OTHER, None

    def skips_folder(self, rel: str, fold: bool = False) -> bool:
        """Whether every file under folder `rel` is non-source (a scan need not enter it)."""
        for pattern in self.non_source:
            if pattern.endswith("/**") and glob_regex(pattern[:-3], fold).match(rel):
                return True
        return False


@functools.cache
def default_lists() -> dict[str, tuple[str, ...]]:
    text = (resources.files("trainwright.workflow") / "edit_lock.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return {key: tuple(data[key]) for key in LISTS}


def load_rules(home: Path) -> Rules:
    """The default rule, changed by the project's tickets/edit-lock.yaml when there is one."""
    lists = {k: list(v) for k, v in default_lists().items()}
    path = home / OVERRIDE
    if not path.exists():
        return Rules(*(tuple(lists[k]) for k in LISTS), origin="default")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise StateFileError(path, f"cannot be read as YAML ({exc.__class__.__name__})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise StateFileError(path, "should be a mapping of list names to lists of globs")
    allowed = set(LISTS) | {f"add_{k}" for k in LISTS}
    for key, value in data.items():
        if key not in allowed:
            raise StateFileError(
                path, f"unknown key {key!r}; allowed: {', '.join(sorted(allowed))}"
            )
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise StateFileError(path, f"{key!r} should be a list of glob strings")
    for key in LISTS:
        if key in data:
            lists[key] = list(data[key])
        lists[key] += data.get(f"add_{key}", [])
    if OVERRIDE.as_posix() not in lists["protected"]:
        lists["protected"].append(OVERRIDE.as_posix())
    return Rules(*(tuple(lists[k]) for k in LISTS), origin=str(path))
