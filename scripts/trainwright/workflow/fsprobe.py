"""Does a filesystem fold case? Probed, not guessed from the platform (macOS APFS and Windows
usually do, Linux ext4 does not, and a mounted volume may differ from its host)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_known: dict[int, bool] = {}


def _swapped(name: str) -> str | None:
    swapped = name.swapcase()
    return swapped if swapped != name else None


def case_insensitive(folder: Path) -> bool:
    """True when `folder`'s filesystem treats `a.py` and `A.PY` as one file (cached per device);
    a folder that does not exist is judged by the nearest one above it that does."""
    folder = Path(folder)
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    try:
        dev = os.stat(folder).st_dev
    except OSError:
        return False
    if dev in _known:
        return _known[dev]
    found = _probe(Path(folder))
    _known[dev] = found
    return found


def _probe(folder: Path) -> bool:
    try:
        for entry in os.scandir(folder):
            other = _swapped(entry.name)
            if other is not None:
                return _same(folder / entry.name, folder / other)
    except OSError:
        pass
    try:
        with tempfile.NamedTemporaryFile(prefix=".tw-case-probe-", dir=folder) as handle:
            name = os.path.basename(handle.name)
            other = _swapped(name)
            return other is not None and _same(folder / name, folder / other)
    except OSError:
        return False


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def fold(path: str, insensitive: bool) -> str:
    return path.casefold() if insensitive else path
