"""`trainwright init`: copy the pack into a user's project without clobbering their edits.

A manifest (`.trainwright/pack.json`) records the digest of every file as installed. On a later
init, a file whose digest still matches the manifest is one the user never touched and is
updated; a file that differs is the user's and is kept (reported), unless `--force`, which first
copies the user's version to `.trainwright/backup/<time>/` so nothing is lost.

Two files are merged rather than kept: the user's own `.claude/settings.json` and
`.codex/hooks.json` get the pack's hook entries and `permissions.ask` rules added (theirs stay;
the original is backed up), because without them the edit lock and the approvals would silently
not apply. Codex finds skills under
`.agents/skills/`: init links each pack skill there (links, not copies).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from trainwright import __version__, pack
from trainwright.clock import file_stamp
from trainwright.errors import TrainwrightError
from trainwright.state.atomic import atomic_write_bytes, atomic_write_text, locked
from trainwright.state.content_hash import file_sha256
from trainwright.state.safe_paths import new_backup_dir
from trainwright.workflow.guard import own_writes

MANIFEST = Path(".trainwright") / "pack.json"
MERGED_HOOK_FILES = (".claude/settings.json", ".codex/hooks.json")
AGENT_SKILLS = Path(".agents") / "skills"
LOCK_HOOK = ".claude/hooks/edit-lock.sh"
PACK_HOOKS = (LOCK_HOOK, ".claude/hooks/retro-prompt.sh")


@dataclass
class InitReport:
    target: Path
    installed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    overwritten: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    linked: list[str] = field(default_factory=list)
    backup_dir: Path | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "target": str(self.target),
            "installed": self.installed,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "kept": self.kept,
            "overwritten": self.overwritten,
            "merged": self.merged,
            "linked": self.linked,
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
    with (
        locked(target / ".trainwright") if not dry_run else contextlib.nullcontext(),
        own_writes(target.resolve(), None, settings=True)
        if not dry_run
        else contextlib.nullcontext(),
    ):
        manifest = _read_manifest(target)
        new_manifest = dict(manifest)
        stamp = file_stamp()
        for rel in pack.iter_files(root):
            src = root / rel
            dst = target / rel
            src_digest = file_sha256(src)[0]
            if not dst.exists():
                report.installed.append(rel)
            else:
                dst_digest = file_sha256(dst)[0]
                if dst_digest == src_digest:
                    report.unchanged.append(rel)
                    new_manifest[rel] = src_digest
                    continue
                if manifest.get(rel) == dst_digest:
                    report.updated.append(rel)
                elif rel in MERGED_HOOK_FILES and not force:
                    merged = merge_hooks(dst.read_bytes(), src.read_bytes())
                    if merged is None:
                        report.kept.append(rel)
                    elif merged == dst.read_bytes():
                        report.unchanged.append(rel)
                    else:
                        report.merged.append(rel)
                        report.backup_dir = _backup_dir(report, target, stamp, dry_run)
                        if not dry_run:
                            _backup(dst, report.backup_dir / rel)
                            atomic_write_bytes(dst, merged)
                    # The merged file is the user's: never record it as an untouched pack copy.
                    new_manifest.pop(rel, None)
                    continue
                elif force:
                    report.overwritten.append(rel)
                    report.backup_dir = _backup_dir(report, target, stamp, dry_run)
                    if not dry_run:
                        _backup(dst, report.backup_dir / rel)
                else:
                    report.kept.append(rel)
                    continue
            if not dry_run:
                atomic_write_bytes(dst, src.read_bytes())
                shutil.copymode(src, dst)
            new_manifest[rel] = src_digest
        report.linked = link_agent_skills(target, root, dry_run)
        report.linked += link_result_skills(target, dry_run)
        if not dry_run:
            atomic_write_text(
                target / MANIFEST,
                json.dumps(
                    {"version": __version__, "files": new_manifest}, indent=2, sort_keys=True
                )
                + "\n",
            )
    return report


def _backup_dir(report: InitReport, target: Path, stamp: str, dry_run: bool) -> Path:
    """This install's own backup folder: made once, never one an earlier install used."""
    if report.backup_dir is not None:
        return report.backup_dir
    parent = target / ".trainwright" / "backup"
    return parent / stamp if dry_run else new_backup_dir(parent, stamp)


def _backup(path: Path, backup: Path) -> None:
    backup.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, backup)


def merge_hooks(user: bytes, pack_file: bytes) -> bytes | None:
    """The user's hook/settings JSON with the pack's hook groups added; None if it is not JSON."""
    try:
        mine = json.loads(user)
        theirs = json.loads(pack_file)
    except ValueError:
        return None
    if not isinstance(mine, dict) or not isinstance(mine.get("hooks", {}), dict):
        return None
    hooks = mine.setdefault("hooks", {})
    for event, groups in theirs.get("hooks", {}).items():
        present = hooks.setdefault(event, [])
        if not isinstance(present, list):
            return None
        # An older pack version's lock entry (a changed matcher or timeout) is replaced, not
        # doubled: the hook must run once per call.
        present[:] = [g for g in present if g in groups or not _is_lock_group(g)]
        for group in groups:
            if group not in present:
                present.append(group)
    if not _merge_ask(mine, theirs):
        return None
    return (json.dumps(mine, indent=2) + "\n").encode()


def _merge_ask(mine: dict, theirs: dict) -> bool:
    """Add the pack's `permissions.ask` rules (trainwright.approvals) to the user's; keep theirs."""
    rules = (theirs.get("permissions") or {}).get("ask") or []
    if not rules:
        return True
    perms = mine.setdefault("permissions", {})
    ask = perms.setdefault("ask", []) if isinstance(perms, dict) else None
    if not isinstance(ask, list):
        return False
    ask.extend(rule for rule in rules if rule not in ask)
    return True


def _is_lock_group(group: object) -> bool:
    """A hook group the pack wrote: every command in it runs the edit-lock hook."""
    inner = group.get("hooks") if isinstance(group, dict) else None
    if not isinstance(inner, list) or not inner:
        return False
    return all(
        isinstance(h, dict) and any(p in str(h.get("command", "")) for p in PACK_HOOKS)
        for h in inner
    )


def link_result_skills(target: Path, dry_run: bool) -> list[str]:
    """Re-link the skills `retro apply` made so both agents find them (see retro.skill_links)."""
    from trainwright.retro.skill_links import link_all

    return link_all(target, dry_run)


def link_agent_skills(target: Path, root: Path, dry_run: bool) -> list[str]:
    """Link every pack skill into .agents/skills/ so Codex finds it; existing entries are left.

    A skill that exists for both agents links to its Codex folder (the Claude one may be a
    pointer to it).
    """
    found: dict[str, Path] = {}
    for base in (Path(".claude") / "skills", Path(".codex") / "skills"):
        folder = root / base
        if folder.is_dir():
            for skill in folder.iterdir():
                if (skill / "SKILL.md").is_file():
                    found[skill.name] = base / skill.name
    linked = []
    for name, rel in sorted(found.items()):
        link = target / AGENT_SKILLS / name
        if link.exists() or link.is_symlink():
            continue
        linked.append((AGENT_SKILLS / name).as_posix())
        if not dry_run:
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(Path("..") / ".." / rel)
    return linked
