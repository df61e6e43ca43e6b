"""`trainwright init`: copy the pack into a user's project without clobbering their edits.

A manifest (`.trainwright/pack.json`) records the digest of every file as installed. On a later
init, a file whose digest still matches the manifest is one the user never touched and is
updated; a file that differs is the user's and is kept (reported), unless `--force`, which first
copies the user's version to `.trainwright/backup/<time>/` so nothing is lost.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from trainwright import __version__, pack
from trainwright.errors import TrainwrightError
from trainwright.state.atomic import atomic_write_bytes, atomic_write_text, locked

MANIFEST = Path(".trainwright") / "pack.json"


@dataclass
class InitReport:
    target: Path
    installed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    overwritten: list[str] = field(default_factory=list)
    backup_dir: Path | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "target": str(self.target),
            "installed": self.installed,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "kept": self.kept,
            "overwritten": self.overwritten,
            "backup_dir": str(self.backup_dir) if self.backup_dir else None,
        }


def _read_manifest(target: Path) -> dict[str, str]:
    path = target / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        if not isinstance(files, dict):
            raise TypeError
        return {str(k): str(v) for k, v in files.items()}
    except (ValueError, KeyError, TypeError):
        raise TrainwrightError(
            f"{path}: the install manifest is damaged; move it aside and run init again "
            "(files you changed will then be kept and reported)"
        ) from None


def install_pack(target: Path | str, force: bool = False, dry_run: bool = False) -> InitReport:
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise TrainwrightError(f"{target} is a file; init needs a folder")
    root = pack.pack_root()
    if target.resolve() == root.resolve():
        raise TrainwrightError(f"{target} is the pack's own source; init another folder")
    report = InitReport(target)
    if not dry_run:
        target.mkdir(parents=True, exist_ok=True)
    with locked(target / ".trainwright") if not dry_run else contextlib.nullcontext():
        manifest = _read_manifest(target)
        new_manifest = dict(manifest)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        for rel in pack.iter_files(root):
            src = root / rel
            dst = target / rel
            src_digest = pack.file_digest(src)
            if not dst.exists():
                report.installed.append(rel)
            else:
                dst_digest = pack.file_digest(dst)
                if dst_digest == src_digest:
                    report.unchanged.append(rel)
                    new_manifest[rel] = src_digest
                    continue
                if manifest.get(rel) == dst_digest:
                    report.updated.append(rel)
                elif force:
                    report.overwritten.append(rel)
                    report.backup_dir = target / ".trainwright" / "backup" / stamp
                    if not dry_run:
                        backup = report.backup_dir / rel
                        backup.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(dst, backup)
                else:
                    report.kept.append(rel)
                    continue
            if not dry_run:
                atomic_write_bytes(dst, src.read_bytes())
                shutil.copymode(src, dst)
            new_manifest[rel] = src_digest
        if not dry_run:
            atomic_write_text(
                target / MANIFEST,
                json.dumps(
                    {"version": __version__, "files": new_manifest}, indent=2, sort_keys=True
                )
                + "\n",
            )
    return report
