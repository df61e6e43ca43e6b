"""Perceptual hashes as 64-bit integers, and the features `combined` verifies pairs with.

Images are decoded once, small (JPEG draft mode decodes at 1/2..1/8 scale, many times faster),
and every hash is computed from that one small copy. Hashes are imagehash's own functions, packed
row-major (first bit most significant), so `a ^ b` popcount equals imagehash's `h1 - h2`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from trainwright.dataset.images import open_image, to_rgb
from trainwright.state.content_hash import file_sha256

METHODS = ("phash", "dhash", "whash", "ahash", "colorhash")
WORK_SIZE = 256  # the decoded copy every hash is computed from (short side, at least)
THUMB = 96  # the grayscale thumbnail `combined` verifies candidate pairs with (9 KB each)


def _hash_fn(method: str) -> Callable[[Image.Image], imagehash.ImageHash]:
    return {
        "phash": imagehash.phash,
        "dhash": imagehash.dhash,
        "whash": imagehash.whash,
        "ahash": imagehash.average_hash,
        "colorhash": lambda im: imagehash.colorhash(im, binbits=4),
    }[method]


def to_int(h: imagehash.ImageHash) -> int:
    bits = np.asarray(h.hash, dtype=bool).ravel()
    bits = np.concatenate([bits, np.zeros(max(0, 64 - len(bits)), dtype=bool)])[:64]
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _uniform_run(lines: np.ndarray, tolerance: int) -> int:
    """How many leading lines (rows of `lines`) are one flat colour, the colour of the first."""
    bg = np.median(lines[0])
    flat = (np.abs(lines.astype(np.int16) - bg) <= tolerance).mean(axis=1) >= 0.98
    return int(np.argmin(flat)) if not flat.all() else len(flat)


def trim_border(im: Image.Image, tolerance: int = 12) -> Image.Image:
    """Cut flat bands (padding, letterbox, a frame) off each side independently; keep the image
    as it is if that would leave less than 30% of it."""
    arr = np.asarray(im.convert("L"))
    h, w = arr.shape
    top = _uniform_run(arr, tolerance)
    bottom = _uniform_run(arr[::-1], tolerance)
    left = _uniform_run(arr.T, tolerance)
    right = _uniform_run(arr.T[::-1], tolerance)
    box = (left, top, w - right, h - bottom)
    bw, bh = box[2] - box[0], box[3] - box[1]
    if bw <= 0 or bh <= 0 or bw * bh < 0.3 * w * h or (bw, bh) == (w, h):
        return im
    return im.crop(box)


# Crops hashed besides the whole image (fractions of width and height): a copy cut from the
# middle or from one corner of the original hashes like the matching crop of the original.
CROPS = (
    (0.1, 0.1, 0.9, 0.9),
    (0.0, 0.0, 0.85, 0.85),
    (0.15, 0.0, 1.0, 0.85),
    (0.0, 0.15, 0.85, 1.0),
    (0.15, 0.15, 1.0, 1.0),
)


def _crop(im: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    w, h = im.size
    return im.crop((round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)))


LOSSLESS_FORMATS = {"PNG", "BMP", "PPM", "TIFF", "TGA", "QOI"}
# libjpeg's base luminance table (ITU T.81 K.1), which quality 50 uses as it is.
_JPEG_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip


def compression(im: Image.Image, path: Path) -> tuple[bool, float | None]:
    """(lossless, estimated quality) of an opened image file."""
    fmt = im.format or ""
    if fmt == "TIFF":
        return str(im.info.get("compression", "")).lower() not in ("jpeg", "tiff_jpeg"), None
    if fmt in LOSSLESS_FORMATS:
        return True, None
    if fmt == "WEBP":
        with open(path, "rb") as fh:
            head = fh.read(16)
        return head[12:16] == b"VP8L", None
    if fmt == "JPEG":
        table = (getattr(im, "quantization", None) or {}).get(0)
        if table and len(table) == 64:
            # libjpeg scales the base table by S = 5000/q (q < 50) or 200 - 2q; invert it
            # (tables are stored in zigzag order, so compare the sums, not entry by entry).
            scale = 100.0 * sum(table) / sum(_JPEG_LUMA)
            q = 5000.0 / scale if scale > 100 else (200.0 - scale) / 2
            return False, round(max(1.0, min(100.0, q)), 1)
    return False, None


@dataclass
class ImageHashes:
    path: str
    sha256: str
    width: int  # size after EXIF rotation
    height: int
    file_size: int
    content: float = 1.0  # share of the picture left after trimming a uniform border
    lossless: bool = False  # PNG, BMP, TIFF, lossless WebP: every pixel as it was saved
    quality: float | None = None  # lossy: estimated quality 1-100 (JPEG, from its tables)
    hashes: dict[str, int] = field(default_factory=dict)
    variants: list[int] = field(default_factory=list)  # combined: whole, then CROPS
    thumb: np.ndarray | None = None  # combined: THUMB x THUMB uint8 luminance, border trimmed
    error: str | None = None


def hash_one(path: Path, methods: tuple[str, ...], combined: bool) -> ImageHashes:
    try:
        size = path.stat().st_size
        digest = file_sha256(path)[0]
        with Image.open(path) as probe:
            w, h = probe.size
            orient = probe.getexif().get(0x0112, 1) if hasattr(probe, "getexif") else 1
            lossless, quality = compression(probe, path)
        if orient in (5, 6, 7, 8):
            w, h = h, w
        im = to_rgb(open_image(path, draft=WORK_SIZE))
        if min(im.size) > 2 * WORK_SIZE:
            im.thumbnail((WORK_SIZE * 2, WORK_SIZE * 2), Image.Resampling.BILINEAR)
    except Exception as exc:  # any undecodable file: reported, never fatal
        return ImageHashes(str(path), "", 0, 0, 0, error=f"{type(exc).__name__}: {exc}")
    out = ImageHashes(str(path), digest, w, h, size, lossless=lossless, quality=quality)
    for m in methods:
        out.hashes[m] = to_int(_hash_fn(m)(im))
    core = trim_border(im)
    out.content = round(core.width * core.height / (im.width * im.height), 4)
    if combined:
        gray = core.convert("L")
        out.variants = [to_int(imagehash.phash(gray))] + [
            to_int(imagehash.phash(_crop(gray, box))) for box in CROPS
        ]
        out.thumb = np.asarray(gray.resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.uint8)
    return out


def _job(args: tuple[Path, tuple[str, ...], bool]) -> ImageHashes:
    return hash_one(*args)


def hash_images(
    paths: Iterable[Path],
    methods: tuple[str, ...] = ("phash",),
    combined: bool = False,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[ImageHashes]:
    """Hash every image, in order, on `workers` processes; failures come back with `error`."""
    jobs = [(Path(p), tuple(methods), combined) for p in paths]
    out: list[ImageHashes] = []
    if workers <= 1 or len(jobs) < 8:
        for j in jobs:
            out.append(_job(j))
            if progress:
                progress(1)
        return out
    with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
        for res in pool.map(_job, jobs, chunksize=8):
            out.append(res)
            if progress:
                progress(1)
    return out
