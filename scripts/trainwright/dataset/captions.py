"""Caption files beside the images: coverage, trigger word, encoding, length, tag vs prose.

A caption pairs with an image by name: `forest_01.png` -> `forest_01.txt` (the extension is a
setting; kohya sd-scripts defaults to `.caption`, most other tools and this one to `.txt`).
The agent writes the captions (it can see the images); this module checks them and applies them.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwright.clock import file_stamp
from trainwright.dataset.data import model_family, sizes
from trainwright.dataset.images import display, walk
from trainwright.errors import TrainwrightError
from trainwright.state.atomic import atomic_write_bytes
from trainwright.state.safe_paths import new_backup_dir

# CLIP reads 75 tokens per window (kohya can stretch to 225 with --max_token_length); T5 (Flux,
# SD3) reads 512. A word is about 1.3 CLIP tokens, each comma or full stop one more.
TOKEN_LIMIT = {"clip": 75, "t5": 512}
STOPWORDS = {
    "a", "an", "the", "of", "with", "in", "on", "is", "are", "and", "at", "to", "by", "her",
    "his", "their", "its", "from", "into", "while", "that", "which", "who", "as",
}  # fmt: skip
BACKUP_DIR = ".trainwright-caption-backup"


def caption_path(image: Path, ext: str) -> Path:
    return image.with_suffix(ext)


_EXT = re.compile(r"\.[A-Za-z0-9_-]{1,16}")


def normal_ext(ext: str) -> str:
    """'.txt' or 'txt' -> '.txt'; anything that is not one plain extension is refused (a path
    such as '../../x' would put captions outside the dataset)."""
    dotted = ext if ext.startswith(".") else "." + ext
    if not _EXT.fullmatch(dotted):
        raise TrainwrightError(
            f"--ext {ext!r} is not a caption extension: give one such as .txt or .caption "
            "(letters and digits after the dot, no folders)"
        )
    return dotted


def estimate_tokens(text: str) -> int:
    words = re.findall(r"[\w']+", text)
    punct = len(re.findall(r"[,.;:!?()]", text))
    return math.ceil(len(words) * 1.3) + punct


def detect_format(text: str) -> str:
    """'tags' (booru-style, comma-separated short tags), 'natural' (sentences) or 'mixed'."""
    segs = [s.strip() for s in text.replace("\n", ",").split(",") if s.strip()]
    if not segs:
        return "empty"
    words = re.findall(r"[A-Za-z']+", text.lower())
    stop = sum(w in STOPWORDS for w in words) / max(len(words), 1)
    short = sum(len(s.split()) <= 3 for s in segs) / len(segs)
    sentences = len(re.findall(r"[a-z][.!?](\s|$)", text))
    avg_words = sum(len(s.split()) for s in segs) / len(segs)
    if short >= 0.7 and stop < 0.25 and len(segs) >= 2 and not sentences:
        return "tags"
    if avg_words >= 5 or (sentences >= 1 and stop >= 0.08):
        return "natural"
    return "mixed"


def has_trigger(text: str, trigger: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(trigger)}(?![\w-])", text, re.I) is not None


def with_trigger(text: str, trigger: str) -> str:
    if has_trigger(text, trigger):
        return text
    body = text.strip()
    return f"{trigger}, {body}" if body else trigger


def expected_style(model: str | None) -> str | None:
    fam = model_family(model)
    return sizes()["caption_style"].get(fam) if fam else None


def _encoder(model: str | None) -> str:
    return "t5" if model_family(model) in ("flux", "sd3") else "clip"


@dataclass
class CaptionReport:
    folder: str
    ext: str
    images: int = 0
    captioned: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    other_ext: dict[str, int] = field(default_factory=dict)
    formats: dict[str, int] = field(default_factory=dict)
    expected_format: str | None = None
    issues: dict[str, int] = field(default_factory=dict)
    terms: list[tuple[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "ext": self.ext,
            "images": self.images,
            "captioned": self.captioned,
            "coverage": round(self.captioned / self.images, 4) if self.images else None,
            "issues": self.issues,
            "formats": self.formats,
            "expected_format": self.expected_format,
            "orphans": self.orphans,
            "other_ext": self.other_ext,
            "common_terms": [{"term": t, "share": s} for t, s in self.terms],
            "files": self.files,
        }


def _terms(texts: list[str], trigger: str | None) -> list[tuple[str, float]]:
    """Words or tags found in the most captions (the trigger left out), with their share."""
    counts: dict[str, int] = {}
    for t in texts:
        if detect_format(t) == "tags":
            found = {s.strip().lower() for s in t.split(",") if s.strip()}
        else:
            found = {w for w in re.findall(r"[a-z][a-z'-]+", t.lower()) if w not in STOPWORDS}
        for term in found:
            if trigger and term == trigger.lower():
                continue
            counts[term] = counts.get(term, 0) + 1
    n = max(len(texts), 1)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return [(t, round(c / n, 2)) for t, c in top]


def check(
    folder: Path, ext: str = ".txt", trigger: str | None = None, model: str | None = None
) -> CaptionReport:
    ext = normal_ext(ext)
    entries = list(walk(folder, caption_exts=(ext, ".txt", ".caption")))
    images = [e for e in entries if e.kind == "image"]
    caps = {e.path for e in entries if e.kind == "caption" and e.path.suffix == ext}
    image_stems = {caption_path(e.path, ext) for e in images}
    rep = CaptionReport(str(folder), ext, images=len(images))
    rep.expected_format = expected_style(model)
    limit = TOKEN_LIMIT[_encoder(model)]
    texts: list[str] = []
    for e in images:
        cp = caption_path(e.path, ext)
        row: dict[str, Any] = {"image": display(e.rel), "caption": None, "issues": []}
        if cp not in caps:
            row["issues"].append("missing")
        else:
            row["caption"] = display(cp.relative_to(folder).as_posix())
            try:
                raw = cp.read_bytes()
            except OSError:
                row["issues"].append("unreadable")
                raw = None
            if raw is not None:
                try:
                    text = raw.decode("utf-8-sig")
                except UnicodeDecodeError:
                    row["issues"].append("not-utf8")
                    text = None
                if text is not None:
                    rep.captioned += 1
                    if not text.strip():
                        row["issues"].append("empty")
                    else:
                        texts.append(text)
                        fmt = detect_format(text)
                        row["format"] = fmt
                        row["tokens"] = estimate_tokens(text)
                        rep.formats[fmt] = rep.formats.get(fmt, 0) + 1
                        if row["tokens"] > limit:
                            row["issues"].append("too-long")
                        if trigger and not has_trigger(text, trigger):
                            row["issues"].append("missing-trigger")
                        if rep.expected_format in ("tags", "natural") and fmt not in (
                            rep.expected_format,
                            "mixed",
                        ):
                            row["issues"].append("format-mismatch")
        for i in row["issues"]:
            rep.issues[i] = rep.issues.get(i, 0) + 1
        rep.files.append(row)
    rep.orphans = sorted(display(p.relative_to(folder).as_posix()) for p in caps - image_stems)
    for e in entries:
        if e.kind == "caption" and e.path.suffix != ext:
            rep.other_ext[e.path.suffix] = rep.other_ext.get(e.path.suffix, 0) + 1
    rep.terms = _terms(texts, trigger)
    return rep


BLOCKING = ("missing", "empty", "not-utf8", "unreadable", "missing-trigger")


def plain_summary(rep: CaptionReport, trigger: str | None = None) -> list[str]:
    lines = []
    if rep.images == 0:
        lines.append("There are no images in this folder, so there is nothing to caption.")
        if rep.orphans:
            lines.append(f"{len(rep.orphans)} caption files have no image beside them.")
        return lines
    lines.append(f"{rep.captioned} of {rep.images} images have a {rep.ext} caption.")
    labels = {
        "missing": "have no caption file",
        "empty": "have an empty caption",
        "not-utf8": "have a caption that is not UTF-8 text (re-save it as UTF-8)",
        "unreadable": "have a caption that cannot be read",
        "missing-trigger": f"have a caption without the trigger word '{trigger}'",
        "too-long": "have a caption longer than the text encoder reads (the end is cut off)",
        "format-mismatch": f"are not written as {rep.expected_format} captions, "
        "which this base model expects",
    }
    for key, label in labels.items():
        n = rep.issues.get(key, 0)
        if n:
            who = [f["image"] for f in rep.files if key in f["issues"]][:5]
            lines.append(f"{n} images {label}: {', '.join(who)}" + (" ..." if n > 5 else ""))
    if rep.other_ext:
        other = ", ".join(f"{n} {e}" for e, n in rep.other_ext.items())
        from trainwright import backends

        defaults = [
            f"{m.NAME} defaults to {m.CAPTION_EXTENSION}"
            for m in backends.all_backends()
            if getattr(m, "CAPTION_EXTENSION", ".txt") != ".txt"
        ]
        lines.append(
            f"Also found {other} caption files. Trainers read one extension only"
            + (f" ({'; '.join(defaults)})" if defaults else "")
            + f': set caption_extension = "{rep.ext}" for {rep.ext} files; a wrong setting '
            "means every caption is silently ignored."
        )
    if rep.orphans:
        lines.append(
            f"{len(rep.orphans)} caption files have no image: {', '.join(rep.orphans[:5])}"
        )
    if rep.formats:
        fm = ", ".join(f"{n} {f}" for f, n in sorted(rep.formats.items()))
        lines.append(
            f"Caption style: {fm}"
            + (f" (this base model expects {rep.expected_format})" if rep.expected_format else "")
            + "."
        )
    return lines


def _backup(backups: dict[str, Path], folder: Path, stamp: str, cap: Path, data: bytes) -> None:
    """Copy a caption into this apply's own backup folder (made once, never one used before);
    a caption already backed up in it keeps its first, older copy."""
    if "dir" not in backups:
        backups["dir"] = new_backup_dir(folder / BACKUP_DIR, stamp)
    dest = backups["dir"] / cap.relative_to(folder)
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest, data)


def load_drafts(path: Path) -> dict[str, str]:
    """A JSON object {image path or name: caption text}, as the agent writes it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainwrightError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainwrightError(f"{path}: not a JSON file of captions ({exc})") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise TrainwrightError(f'{path}: expected a JSON object {{"image.png": "caption"}}')
    return data


def apply(
    folder: Path,
    ext: str = ".txt",
    trigger: str | None = None,
    drafts: dict[str, str] | None = None,
    replace: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Write drafted captions and/or prepend the trigger word; never loses a caption's text.

    A caption that exists and differs from its draft is left alone unless `replace`; replaced
    and edited captions are first copied to DIR/.trainwright-caption-backup/<time>/.
    Running it twice changes nothing the second time.
    """
    ext = normal_ext(ext)
    if trigger is not None and (not trigger.strip() or re.search(r"\s|,", trigger)):
        raise TrainwrightError(f"trigger word {trigger!r} must be one word without commas")
    images = [e for e in walk(folder) if e.kind == "image"]
    by_key: dict[str, Path] = {}
    for e in images:
        by_key[display(e.rel)] = e.path
        by_key.setdefault(e.path.name, e.path)
        by_key.setdefault(e.path.stem, e.path)
    drafts = drafts or {}
    unknown = [k for k in drafts if k not in by_key]
    if unknown:
        raise TrainwrightError(
            f"{len(unknown)} drafted captions name no image in {folder}: {', '.join(unknown[:3])}"
        )
    planned: dict[Path, str] = {by_key[k]: v for k, v in drafts.items()}
    stamp = file_stamp()
    backups: dict[str, Path] = {}
    out: dict[str, list[str]] = {"written": [], "trigger_added": [], "kept": [], "unchanged": []}
    sharing: dict[Path, list[Path]] = {}
    for e in images:
        sharing.setdefault(caption_path(e.path, ext), []).append(e.path)
    for e in images:
        cp = caption_path(e.path, ext)
        rel = display(cp.relative_to(folder).as_posix())
        shared = sharing[cp]
        if len(shared) > 1 and any(p in planned for p in shared):
            if e.path == shared[0]:
                names = " and ".join(p.name for p in shared)
                out["kept"].append(
                    f"{rel} (shared by {names}: rename one so each image has its own caption)"
                )
            continue
        old: bytes | None = cp.read_bytes() if cp.exists() else None
        old_text = old.decode("utf-8-sig") if old is not None and _utf8(old) else None
        if old is not None and old_text is None and (e.path in planned or trigger):
            if not (e.path in planned and replace):
                out["kept"].append(rel + " (not UTF-8: re-save it, or pass --replace)")
                continue
        new = old_text
        if e.path in planned:
            draft = planned[e.path].strip()
            if old_text is None or not old_text.strip() or replace:
                new = draft
            elif old_text.strip() != draft:
                out["kept"].append(rel + " (differs from the draft; --replace to overwrite)")
        if new is None:
            continue
        if trigger:
            new2 = with_trigger(new, trigger)
            if new2 != new:
                out["trigger_added"].append(rel)
            new = new2
        if old_text is not None and new == old_text:
            out["unchanged"].append(rel)
            continue
        if not dry_run:
            if old is not None:
                _backup(backups, folder, stamp, cp, old)
            atomic_write_bytes(cp, new.encode("utf-8"))
        out["written"].append(rel)
    return {"folder": str(folder), "ext": ext, "dry_run": dry_run, **out}


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return True
