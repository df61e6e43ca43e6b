"""Finding images in a dataset folder and opening them safely (bombs, EXIF, odd modes)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from trainwright.errors import TrainwrightError

IMAGE_EXTS = {
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".jxl",
    ".avif",
    ".heic",
}
# Pillow's own limit is ~89 Mpx (warning) / 179 Mpx (error). A training image never needs more
# than 8192 x 8192; anything larger is refused before its pixels are decoded.
MAX_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class Entry:
    path: Path
    rel: str  # relative to the dataset folder, posix, lossless for odd bytes (surrogateescape)
    kind: str  # "image", "caption", "other", "link-loop", "unreadable-dir", "special"


def display(rel: str) -> str:
    """A path as printable text: bytes that are not UTF-8 shown as \\xNN, never a crash."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_folder(folder: Path) -> Path:
    if not folder.exists():
        if folder.is_symlink():
            raise TrainwrightError(
                f"{folder}: a link that cannot be followed (it loops or its target is gone)"
            )
        raise TrainwrightError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise TrainwrightError(f"{folder}: is a file, expected the dataset folder")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise TrainwrightError(f"{folder}: permission denied")
    return folder


def walk(folder: Path, caption_exts: tuple[str, ...] = (".txt", ".caption")) -> Iterator[Entry]:
    """Every file under folder (hidden names skipped, symlinks not followed into loops)."""
    check_folder(folder)
    seen_dirs: set[tuple[int, int]] = set()

    def rec(d: Path) -> Iterator[Entry]:
        try:
            st = d.stat()
        except OSError:
            yield Entry(d, _rel(d, folder), "unreadable-dir")
            return
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            return
        seen_dirs.add(key)
        try:
            names = sorted(os.listdir(d))
        except OSError:
            yield Entry(d, _rel(d, folder), "unreadable-dir")
            return
        for name in names:
            if name.startswith("."):
                continue
            p = d / name
            if p.is_symlink():
                try:
                    p.resolve(strict=True)
                except (OSError, RuntimeError):
                    yield Entry(p, _rel(p, folder), "link-loop")
                    continue
            if p.is_dir():
                yield from rec(p)
            elif p.is_file():
                ext = p.suffix.lower()
                kind = (
                    "image" if ext in IMAGE_EXTS else "caption" if ext in caption_exts else "other"
                )
                yield Entry(p, _rel(p, folder), kind)
            else:  # a FIFO, socket or device (or a link to one): never opened
                yield Entry(p, _rel(p, folder), "special")

    yield from rec(folder)


def _rel(p: Path, folder: Path) -> str:
    return p.relative_to(folder).as_posix()


def list_images(folder: Path) -> list[Entry]:
    return [e for e in walk(folder) if e.kind == "image"]


def open_lazy(path: Path) -> Image.Image:
    """Image.open (header only) with Pillow's own bomb check off: the caller compares the size
    with MAX_PIXELS before decoding anything, so a bomb is reported with its size."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        return Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def open_image(path: Path, draft: int | None = None) -> Image.Image:
    """Open and fully decode, refusing bombs; EXIF rotation applied; `draft` asks JPEG for a
    reduced decode at least that many pixels on each side."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im = open_lazy(path)
        if im.width * im.height > MAX_PIXELS:
            w, h = im.size
            im.close()
            raise Image.DecompressionBombError(f"{w}x{h} pixels")
        if draft and im.format == "JPEG":
            im.draft("RGB", (draft, draft))
        im.load()
    return ImageOps.exif_transpose(im) or im


def to_rgb(im: Image.Image) -> Image.Image:
    """RGB for analysis: 16-bit scaled down, alpha over white, CMYK/P/L converted."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        import numpy as np

        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        im = Image.fromarray((arr / top * 255).clip(0, 255).astype("uint8"), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return im.convert("RGB")
