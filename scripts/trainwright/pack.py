"""The pack: skills, hooks, resources and grimoire templates that `trainwright init` installs.

In a wheel the pack lives in `trainwright/_pack/` (hatch force-include); in a source checkout
(editable install) it is the repository root itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from trainwright.errors import TrainwrightError

PACK_ITEMS = (".claude", ".codex", "resources", "grimoire", "CLAUDE.md", "AGENTS.md")
_SKIP_NAMES = {"__pycache__", ".DS_Store", ".trainwright.lock"}


def pack_root() -> Path:
    here = Path(__file__).resolve().parent
    bundled = here / "_pack"
    if (bundled / "CLAUDE.md").is_file():
        return bundled
    checkout = here.parent.parent
    if (checkout / "CLAUDE.md").is_file() and (checkout / "grimoire").is_dir():
        return checkout
    raise TrainwrightError(
        "the trainwright pack files are missing from this installation; reinstall trainwright"
    )


def read_text(relpath: str) -> str:
    path = pack_root() / relpath
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrainwrightError(f"pack file {relpath} is missing; reinstall trainwright") from None


def iter_files(root: Path | None = None) -> Iterator[str]:
    """Every pack file as a POSIX path relative to the pack root, sorted."""
    root = root or pack_root()
    found: list[str] = []
    for item in PACK_ITEMS:
        path = root / item
        if path.is_file():
            found.append(item)
        elif path.is_dir():
            for sub in path.rglob("*"):
                rel = sub.relative_to(root)
                if sub.is_file() and not (_SKIP_NAMES & set(rel.parts)) and sub.suffix != ".pyc":
                    found.append(rel.as_posix())
    yield from sorted(found)
