"""Check every file of a dataset folder: decodes fully, size, mode, EXIF, animation, quality flags.

Read-only: the folder is never modified. Each file is opened and decoded to the end (`load()`,
since `verify()` misses truncated data); JPEGs decode in draft mode (1/2 to 1/8 scale, which still
reads the whole stream, so truncation is caught) because the checks after the header only need a
small copy. Files are spread over worker processes.

Quality flags (like cleanvision's), measured on a grayscale copy at most 512 px on a side:
  dark             90th percentile of luminance < DARK_P90 (no part of the image is bright)
  light            10th percentile of luminance > LIGHT_P10 (almost everything near white)
  low-information  entropy of the 256-bin luminance histogram < LOW_INFO_BITS
  blurry           variance of the Laplacian < BLUR_VAR (few sharp edges at that size)
  odd-aspect-ratio long side / short side > MAX_ASPECT
They are warnings, not verdicts: a night scene is dark on purpose.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter, UnidentifiedImageError

from trainwright.dataset.images import MAX_PIXELS, display, open_lazy, to_rgb, walk

DARK_P90 = 40
LIGHT_P10 = 235
LOW_INFO_BITS = 3.0
BLUR_VAR = 20.0
MAX_ASPECT = 2.5
ANALYSIS_SIDE = 512

# Issue name -> severity. "error": trainers cannot use the file; Gate 1 says NO-GO.
SEVERITY = {
    "empty-file": "error",
    "not-an-image": "error",
    "truncated": "error",
    "corrupt": "error",
    "decompression-bomb": "error",
    "unreadable": "error",
    "symlink-loop": "error",
    "below-min-resolution": "error",
    "wrong-extension": "warning",
    "cmyk": "warning",
    "16-bit": "warning",
    "alpha": "warning",
    "grayscale": "warning",
    "palette": "warning",
    "animated": "warning",
    "odd-aspect-ratio": "warning",
    "blurry": "warning",
    "dark": "warning",
    "light": "warning",
    "low-information": "warning",
}
EXT_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".gif": "GIF",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
PLAIN = {
    "empty-file": "are empty (0 bytes)",
    "not-an-image": "are not images (their contents are not a picture format)",
    "truncated": "are truncated (the file ends before the picture does)",
    "corrupt": "are damaged and cannot be decoded",
    "decompression-bomb": "are far too large to open safely (decompression bomb); refused",
    "unreadable": "cannot be read (permissions)",
    "symlink-loop": "are links that point in a circle",
    "below-min-resolution": "are below {min_side} px on the short side",
    "wrong-extension": "have a file extension that does not match their format",
    "cmyk": "are CMYK (print colours); convert them to RGB",
    "16-bit": "are 16 bits per channel; trainers read them as 8-bit",
    "alpha": "have transparency; trainers flatten it (often onto black)",
    "grayscale": "are grayscale",
    "palette": "use a colour palette (GIF-style); convert them to RGB",
    "animated": "are animated; only the first frame is used",
    "odd-aspect-ratio": "have an extreme aspect ratio (more than {max_aspect}:1)",
    "blurry": "look blurry (few sharp edges)",
    "dark": "are very dark",
    "light": "are very bright / washed out",
    "low-information": "carry very little detail (almost one flat tone)",
}


@dataclass
class FileAudit:
    path: str
    ok: bool = True
    format: str | None = None
    width: int | None = None  # after EXIF rotation
    height: int | None = None
    mode: str | None = None
    file_size: int = 0
    exif_orientation: int | None = None
    frames: int = 1
    issues: list[str] = field(default_factory=list)
    detail: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def add(self, issue: str, detail: str | None = None) -> None:
        if issue not in self.issues:
            self.issues.append(issue)
        if SEVERITY[issue] == "error":
            self.ok = False
        if detail and not self.detail:
            self.detail = detail


def quality_metrics(im: Image.Image) -> dict[str, float]:
    g = to_rgb(im).convert("L")
    if max(g.size) > ANALYSIS_SIDE:
        g.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE), Image.Resampling.BILINEAR)
    arr = np.asarray(g, dtype=np.float32)
    hist = np.bincount(arr.astype(np.uint8).ravel(), minlength=256) / arr.size
    nz = hist[hist > 0]
    lap = np.asarray(g.filter(ImageFilter.Kernel((3, 3), [0, 1, 0, 1, -4, 1, 0, 1, 0], 1, 128)))
    return {
        "p10": float(np.percentile(arr, 10)),
        "p90": float(np.percentile(arr, 90)),
        "entropy": float(-(nz * np.log2(nz)).sum()),
        "laplacian_var": float(np.asarray(lap, dtype=np.float32).var()),
    }


def _flags(a: FileAudit, m: dict[str, float]) -> None:
    a.metrics = {k: round(v, 2) for k, v in m.items()}
    if m["p90"] < DARK_P90:
        a.add("dark")
    if m["p10"] > LIGHT_P10:
        a.add("light")
    if m["entropy"] < LOW_INFO_BITS:
        a.add("low-information")
    elif m["laplacian_var"] < BLUR_VAR:
        a.add("blurry")


def audit_file(path: Path, rel: str, min_side: int | None) -> FileAudit:
    a = FileAudit(rel)
    try:
        st = path.stat()
        a.file_size = st.st_size
        if st.st_size == 0:
            a.add("empty-file")
            return a
        if not os.access(path, os.R_OK):
            a.add("unreadable", "permission denied")
            return a
        with open(path, "rb"):
            pass
    except PermissionError:
        a.add("unreadable", "permission denied")
        return a
    except OSError as exc:
        a.add("unreadable", exc.strerror)
        return a
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = open_lazy(path)
            a.format, a.mode = im.format, im.mode
            w, h = im.size
            if w * h > MAX_PIXELS:
                a.width, a.height = w, h
                a.add("decompression-bomb", f"{w}x{h} pixels, limit {MAX_PIXELS:,}")
                im.close()
                return a
            a.frames = getattr(im, "n_frames", 1)
            exif = im.getexif() if hasattr(im, "getexif") else {}
            a.exif_orientation = int(exif.get(0x0112, 1) or 1) if exif else None
            if im.format == "JPEG":  # reduced-scale decode: still reads every byte of the stream
                im.draft(None, (ANALYSIS_SIDE, ANALYSIS_SIDE))
            im.load()
    except UnidentifiedImageError:
        a.add("not-an-image", "not a format Pillow can read")
        return a
    except Image.DecompressionBombError as exc:
        a.add("decompression-bomb", str(exc))
        return a
    except PermissionError:
        a.add("unreadable", "permission denied")
        return a
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc)
        a.add("truncated" if "truncated" in msg or isinstance(exc, EOFError) else "corrupt", msg)
        return a
    if (a.exif_orientation or 1) in (5, 6, 7, 8):
        w, h = h, w
    a.width, a.height = w, h
    expected = EXT_FORMATS.get(path.suffix.lower())
    if (
        expected
        and a.format
        and a.format != expected
        and not (expected == "JPEG" and a.format == "MPO")
    ):
        a.add("wrong-extension", f"{a.format} data named {path.suffix}")
    mode = im.mode
    if mode == "CMYK":
        a.add("cmyk")
    if mode.startswith("I;16") or mode in ("I", "RGB;16", "RGBA;16") or "16" in mode:
        a.add("16-bit")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        alpha = im.convert("RGBA").getchannel("A")
        if alpha.getextrema()[0] < 255:
            a.add("alpha")
    if mode in ("L", "LA", "1", "I;16", "I"):
        a.add("grayscale")
    if mode == "P":
        a.add("palette")
    if a.frames > 1:
        a.add("animated", f"{a.frames} frames")
    if min_side and min(w, h) < min_side:
        a.add("below-min-resolution", f"{w}x{h}")
    if max(w, h) / max(min(w, h), 1) > MAX_ASPECT:
        a.add("odd-aspect-ratio", f"{w}x{h}")
    try:
        _flags(a, quality_metrics(im))
    except Exception as exc:  # analysis must never hide the decode result
        a.detail = a.detail or f"quality flags skipped: {exc}"
    return a


def _job(args: tuple[Path, str, int | None]) -> FileAudit:
    return audit_file(*args)


def audit_folder(
    folder: Path,
    min_side: int | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Audit every image-like file; return the documented JSON shape (and a few extras)."""
    entries = list(walk(folder))
    results: list[FileAudit] = []
    jobs: list[tuple[Path, str, int | None]] = []
    others: list[str] = []
    special: list[str] = []  # FIFOs, sockets, devices: skipped, never opened
    captions = 0
    for e in entries:
        if e.kind == "link-loop":
            r = FileAudit(display(e.rel))
            r.add("symlink-loop", "the link points back into itself")
            results.append(r)
        elif e.kind == "unreadable-dir":
            r = FileAudit(display(e.rel))
            r.add("unreadable", "folder cannot be listed")
            results.append(r)
        elif e.kind == "image":
            jobs.append((e.path, display(e.rel), min_side))
        elif e.kind == "caption":
            captions += 1
        elif e.kind == "special":
            special.append(display(e.rel))
        else:
            others.append(display(e.rel))
    if workers > 1 and len(jobs) >= 8:
        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            for r in pool.map(_job, jobs, chunksize=4):
                results.append(r)
                if progress:
                    progress(1)
    else:
        for j in jobs:
            results.append(_job(j))
            if progress:
                progress(1)
    results.sort(key=lambda r: r.path)
    counts: Counter[str] = Counter(i for r in results for i in r.issues)
    sizes = [(r.width, r.height) for r in results if r.ok and r.width and r.height]
    avg = None
    if sizes:
        aw = round(sum(w for w, _ in sizes) / len(sizes))
        ah = round(sum(h for _, h in sizes) / len(sizes))
        avg = f"{aw}x{ah}"
    return {
        "folder": str(folder),
        "min_side": min_side,
        "images": [
            {
                "path": r.path,
                "ok": r.ok,
                "format": r.format,
                "width": r.width,
                "height": r.height,
                "mode": r.mode,
                "issues": r.issues,
                **{
                    k: v
                    for k, v in asdict(r).items()
                    if k in ("file_size", "exif_orientation", "frames", "detail", "metrics")
                },
            }
            for r in results
        ],
        "summary": {
            "count": len(results),
            "ok": sum(r.ok for r in results),
            "issues": dict(sorted(counts.items())),
            "errors": sum(1 for r in results if not r.ok),
            "warnings": sum(1 for r in results if any(SEVERITY[i] == "warning" for i in r.issues)),
            "average_resolution": avg,
            "caption_files": captions,
            "other_files": others,
            "special_files": special,
        },
    }


def _singular(phrase: str) -> str:
    verb, _, rest = phrase.partition(" ")
    one = {"are": "is", "have": "has", "look": "looks", "carry": "carries", "use": "uses"}
    return f"{one.get(verb, verb)} {rest}"


def plain_summary(report: dict[str, Any], limit: int = 5) -> list[str]:
    """The audit in plain sentences, worst first."""
    s = report["summary"]
    lines = []
    if s["count"] == 0:
        lines.append("No images were found in this folder.")
        if s["caption_files"]:
            lines.append(f"There are {s['caption_files']} caption files but no images beside them.")
        return lines
    lines.append(
        f"{s['count']} images checked: {s['ok']} usable"
        + (f", {s['errors']} unusable" if s["errors"] else "")
        + (f"; average size {s['average_resolution']}" if s["average_resolution"] else "")
        + "."
    )
    by_issue: dict[str, list[str]] = {}
    for im in report["images"]:
        for i in im["issues"]:
            by_issue.setdefault(i, []).append(im["path"])
    order = sorted(by_issue, key=lambda i: (SEVERITY[i] != "error", i))
    for issue in order:
        paths = by_issue[issue]
        what = PLAIN[issue].format(min_side=report.get("min_side"), max_aspect=MAX_ASPECT)
        n = len(paths)
        noun = "image" if n == 1 else "images"
        verb_fix = _singular(what) if n == 1 else what
        shown = ", ".join(paths[:limit]) + (f" and {n - limit} more" if n > limit else "")
        lines.append(f"{n} {noun} {verb_fix}: {shown}")
    if not by_issue:
        modes = Counter(im["mode"] for im in report["images"])
        lines.append(
            "No problems found; colour modes: "
            + ", ".join(f"{m} ({c})" for m, c in modes.items())
            + "."
        )
    if s.get("special_files"):
        lines.append(
            f"{len(s['special_files'])} entries are not regular files (FIFO, socket or device) "
            "and were skipped without being opened: " + ", ".join(s["special_files"][:limit])
        )
    if s["other_files"]:
        lines.append(
            f"{len(s['other_files'])} other files are not images and are ignored by trainers: "
            + ", ".join(s["other_files"][:limit])
        )
    return lines
