"""Content hashes that gates bind to: a gate decision is stale once its inputs change.

A folder's digest covers every non-hidden file under it (names starting with '.' are skipped, so
.DS_Store or a quarantine folder do not count): its path relative to the folder, its size and its
SHA-256. Renaming a file changes the digest, since captions pair with images by name. A link
that cannot be followed (dangling, or a loop) counts by its target text.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from trainwright.errors import TrainwrightError

PREFIX = "sha256:"


@dataclass(frozen=True)
class ContentHash:
    digest: str
    files: int
    bytes: int

    def as_dict(self) -> dict[str, object]:
        return {"digest": self.digest, "files": self.files, "bytes": self.bytes}


def _file_sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _walk(folder: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith("."):
                out.append(Path(dirpath) / name)
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def content_hash(*paths: Path | str) -> ContentHash:
    """One digest over files and folders, in the order given."""
    if not paths:
        raise TrainwrightError("nothing to hash: give a file or a folder")
    outer = hashlib.sha256()
    n_files = n_bytes = 0
    for index, raw in enumerate(paths):
        path = Path(raw)
        if path.is_dir():
            members = [(p, p.relative_to(path).as_posix()) for p in _walk(path)]
        elif path.is_file():
            members = [(path, path.name)]
        else:
            raise TrainwrightError(f"{path}: no such file or folder")
        outer.update(f"root {index}\n".encode())
        for file, rel in members:
            try:
                digest, size = _file_sha256(file)
            except OSError as exc:
                if not file.is_symlink():
                    raise TrainwrightError(f"{file}: cannot be read ({exc.strerror})") from None
                # A dangling or looping link: bind to where it points, so the audit's finding
                # (not a crash) decides the gate, and fixing the link changes the hash.
                digest, size = "link:" + os.readlink(file), 0
            outer.update(f"{rel}\0{size}\0{digest}\n".encode("utf-8", "surrogateescape"))
            n_files += 1
            n_bytes += size
    return ContentHash(PREFIX + outer.hexdigest(), n_files, n_bytes)
