"""Outputs that never land on an input, and backups that never reuse a name.

Every command that writes a file a person names (a contact sheet, a loss curve, a report) calls
`check_output` first: the output may not be one of the files the command reads (however the path
is spelled: `./`, `..`, a symlink, a hard link, another case on a case-insensitive disk), may not
sit inside an input folder where a trainer would take it for data, and may not replace an
existing file that the pack did not write. Backups go to names made for them alone
(`new_backup_dir`, `new_backup_file`), created exclusively, so a second backup in the same
second never replaces the first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from trainwright.errors import TrainwrightError

PNG_MARK_KEY = "Software"
PNG_MARK = "trainwright"


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def same_file(a: Path, b: Path) -> bool:
    """True when a and b name one file: the same resolved path, or the same inode."""
    if _real(a) == _real(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def inside(path: Path, folder: Path) -> bool:
    """True when path (resolved) is folder itself or lies under it."""
    p, f = _real(path), _real(folder)
    if p == f or f in p.parents:
        return True
    try:  # another spelling of the folder (case-insensitive disks): compare by inode
        st = os.stat(folder)
    except OSError:
        return False
    for parent in (p, *p.parents):
        try:
            ps = os.stat(parent)
        except OSError:
            continue
        if (ps.st_dev, ps.st_ino) == (st.st_dev, st.st_ino):
            return True
    return False


def png_is_pack_made(path: Path) -> bool:
    """A PNG this pack wrote (it carries the PNG_MARK text chunk)."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.format == "PNG" and str(im.info.get(PNG_MARK_KEY, "")).startswith(PNG_MARK)
    except Exception:  # noqa: BLE001 - anything unreadable is not ours
        return False


def png_info(what: str) -> object:
    """The PngInfo that marks a PNG as written by the pack (see png_is_pack_made)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(PNG_MARK_KEY, f"{PNG_MARK} {what}")
    return info


def check_output(
    out: Path,
    flag: str,
    reads: Iterable[Path] = (),
    folders: Iterable[Path] = (),
    pack_made: Callable[[Path], bool] | None = None,
) -> None:
    """Refuse (TrainwrightError) an output path that would overwrite what the command reads.

    reads: files the command reads; folders: input folders the output may not go into;
    pack_made: says whether an existing file at `out` is one the pack wrote (may be replaced).
    """
    for src in reads:
        if same_file(out, src):
            raise TrainwrightError(
                f"{flag} {out} is the file this command reads ({src}): choose another path "
                "(nothing was written)"
            )
    for folder in folders:
        if inside(out, folder):
            raise TrainwrightError(
                f"{flag} {out} is inside the input folder {folder}, where it would be taken "
                "for data: write it outside that folder (nothing was written)"
            )
    if out.is_dir():
        raise TrainwrightError(f"{flag} {out} is a folder: give a file name (nothing was written)")
    if (out.exists() or out.is_symlink()) and not (pack_made and pack_made(out)):
        raise TrainwrightError(
            f"{flag} {out} already exists and was not written by trainwright: choose a new "
            "path, or move that file away first (nothing was replaced)"
        )


def new_backup_dir(parent: Path, stamp: str) -> Path:
    """Create and return parent/stamp, or parent/stamp-2, -3, ...: a folder no backup used."""
    parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        path = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            n += 1
            continue
        return path


def new_backup_file(path: Path, stamp: str, data: bytes) -> Path:
    """Write data to <name>.<stamp>.bak beside path (or .<stamp>-2.bak, ...), never replacing
    a file that exists; return where it went."""
    n = 1
    while True:
        tag = stamp if n == 1 else f"{stamp}-{n}"
        target = path.with_name(f"{path.name}.{tag}.bak")
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            n += 1
            continue
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return target
