"""Content hashes that gates bind to: a gate decision is stale once its inputs change.

A folder's digest covers every non-hidden file under it (names starting with '.' are skipped, so
.DS_Store or a quarantine folder do not count): its path relative to the folder, its size and its
SHA-256. Renaming a file changes the digest, since captions pair with images by name. A link
that cannot be followed (dangling, or a loop) counts by its target text. Anything that is not a
regular file (a FIFO, a socket, a device, or a link to one) is never opened: reading a FIFO
blocks forever and /dev/zero never ends. It is left out of the digest and listed in `skipped`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from trainwright.errors import TrainwrightError

PREFIX = "sha256:"


@dataclass(frozen=True)
class ContentHash:
    digest: str
    files: int
    bytes: int
    skipped: tuple[str, ...] = field(default=(), compare=False)  # "rel (fifo)", never opened

    def as_dict(self) -> dict[str, object]:
        return {
            "digest": self.digest,
            "files": self.files,
            "bytes": self.bytes,
            "skipped": list(self.skipped),
        }


class NotRegular(OSError):
    """The path is a FIFO, socket, device or folder: it is not opened for reading."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(f"{path}: a {kind}, not a regular file")
        self.kind = kind


def special_kind(mode: int) -> str | None:
    """None for a regular file, else a word for what it is."""
    if stat.S_ISREG(mode):
        return None
    for test, word in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "device"),
        (stat.S_ISBLK, "device"),
        (stat.S_ISDIR, "folder"),
    ):
        if test(mode):
            return word
    return "special file"


def open_regular(path: Path | str) -> int:
    """A read-only descriptor on a regular file; raises NotRegular for anything else without
    opening it (stat first, then fstat after a non-blocking open, so a swap in between is
    caught too). Links are followed."""
    kind = special_kind(os.stat(path).st_mode)
    if kind:
        raise NotRegular(Path(path), kind)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    kind = special_kind(os.fstat(fd).st_mode)
    if kind:
        os.close(fd)
        raise NotRegular(Path(path), kind)
    return fd


def file_sha256(path: Path | str) -> tuple[str, int]:
    """(hex SHA-256, size) of a regular file; NotRegular for a FIFO, socket or device."""
    h = hashlib.sha256()
    size = 0
    with os.fdopen(open_regular(path), "rb") as fh:
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
    skipped: list[str] = []
    for index, raw in enumerate(paths):
        path = Path(raw)
        if path.is_dir():
            members = [(p, p.relative_to(path).as_posix()) for p in _walk(path)]
        elif path.is_file():
            members = [(path, path.name)]
        elif path.exists():
            raise TrainwrightError(f"{path}: {_kind_of(path)}, not a file or folder to hash")
        else:
            raise TrainwrightError(f"{path}: no such file or folder")
        outer.update(f"root {index}\n".encode())
        for file, rel in members:
            try:
                digest, size = file_sha256(file)
            except NotRegular as exc:
                skipped.append(f"{rel} ({exc.kind})")
                continue
            except OSError as exc:
                if not file.is_symlink():
                    raise TrainwrightError(f"{file}: cannot be read ({exc.strerror})") from None
                # A dangling or looping link: bind to where it points, so the audit's finding
                # (not a crash) decides the gate, and fixing the link changes the hash.
                digest, size = "link:" + os.readlink(file), 0
            outer.update(f"{rel}\0{size}\0{digest}\n".encode("utf-8", "surrogateescape"))
            n_files += 1
            n_bytes += size
    return ContentHash(PREFIX + outer.hexdigest(), n_files, n_bytes, tuple(skipped))


def _kind_of(path: Path) -> str:
    try:
        return "a " + (special_kind(path.stat().st_mode) or "file")
    except OSError:
        return "unreadable"
