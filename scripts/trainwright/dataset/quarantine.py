"""Move duplicates out of the dataset with a manifest; put them back exactly with --undo.

Nothing is deleted. Each moved file is recorded with its original path and SHA-256; undo moves
it back and checks the hash, so a restore is byte-for-byte or it says which file differs.
A caption beside a moved image travels with it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

from trainwright.dataset.hashing import sha256_file
from trainwright.errors import TrainwrightError
from trainwright.state.atomic import atomic_write_text

CAPTION_EXTS = (".txt", ".caption")


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
    except ValueError:
        return False
    return True


def check_target(folder: Path, qdir: Path) -> None:
    folder, qdir = folder.resolve(), qdir.resolve()
    if qdir == folder:
        raise TrainwrightError("the quarantine folder cannot be the dataset folder itself")
    if _inside(qdir, folder) and not any(p.startswith(".") for p in qdir.relative_to(folder).parts):
        raise TrainwrightError(
            f"{qdir} is inside the dataset, where trainers would still see it: choose a folder "
            "outside it, or one whose name starts with '.'"
        )
    if qdir.exists() and not qdir.is_dir():
        raise TrainwrightError(f"{qdir}: exists and is not a folder")


def _move(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dst)
    except OSError:
        shutil.move(str(src), str(dst))


def quarantine(
    folder: Path, qdir: Path, clusters: list[dict[str, Any]], dry_run: bool = False
) -> dict[str, Any]:
    """clusters: [{"keep": rel, "drop": [rel, ...]}] relative to folder. Returns the manifest."""
    check_target(folder, qdir)
    folder_abs = folder.resolve()
    qdir_abs = qdir.resolve()
    moves: list[dict[str, Any]] = []
    for gi, c in enumerate(clusters):
        for rel in c["drop"]:
            src = folder_abs / rel
            items = [src] + [
                src.with_suffix(e) for e in CAPTION_EXTS if src.with_suffix(e).is_file()
            ]
            for p in items:
                moves.append(
                    {
                        "original": str(p),
                        "quarantined": str(qdir_abs / p.relative_to(folder_abs)),
                        "sha256": sha256_file(p),
                        "group": gi,
                        "keep": str(folder_abs / c["keep"]),
                    }
                )
    clash = [m["quarantined"] for m in moves if Path(m["quarantined"]).exists()]
    if clash:
        raise TrainwrightError(f"{clash[0]} already exists in the quarantine folder; nothing moved")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    manifest = {
        "kind": "trainwright-quarantine",
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "dataset": str(folder_abs),
        "quarantine": str(qdir_abs),
        "files": moves,
    }
    path = qdir_abs / f"manifest-{stamp}.json"
    manifest["manifest"] = str(path)
    if dry_run or not moves:
        manifest["moved"] = 0
        return manifest
    qdir_abs.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")  # before anything moves
    for m in moves:
        _move(Path(m["original"]), Path(m["quarantined"]))
    manifest["moved"] = len(moves)
    return manifest


def undo(manifest_path: Path) -> dict[str, Any]:
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainwrightError(f"{manifest_path}: no such manifest") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TrainwrightError(f"{manifest_path}: not a trainwright quarantine manifest") from None
    if not isinstance(data, dict) or data.get("kind") != "trainwright-quarantine":
        raise TrainwrightError(f"{manifest_path}: not a trainwright quarantine manifest")
    restored, already, problems = [], [], []
    for m in data["files"]:
        src, dst = Path(m["quarantined"]), Path(m["original"])
        if dst.exists():
            if dst.is_file() and sha256_file(dst) == m["sha256"]:
                already.append(str(dst))
            else:
                problems.append(f"{dst} exists and differs; left both in place")
            continue
        if not src.exists():
            problems.append(f"{src} is missing from the quarantine")
            continue
        if sha256_file(src) != m["sha256"]:
            problems.append(f"{src} changed since it was quarantined; not restored")
            continue
        _move(src, dst)
        if sha256_file(dst) != m["sha256"]:
            problems.append(f"{dst} does not match its recorded hash after the move")
        else:
            restored.append(str(dst))
    return {
        "manifest": str(manifest_path),
        "restored": restored,
        "already_in_place": already,
        "problems": problems,
    }
