"""Move duplicates out of the dataset with a manifest; put them back exactly with --undo.

Nothing is deleted. Each moved file is recorded with its original path and SHA-256; undo moves
it back and checks the hash, so a restore is byte-for-byte or it says which file differs.
A caption beside a moved image travels with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainwright.clock import file_stamp, now_iso
from trainwright.errors import TrainwrightError
from trainwright.state.atomic import atomic_write_text
from trainwright.state.content_hash import file_sha256

CAPTION_EXTS = (".txt", ".caption")


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
    except ValueError:
        return False
    return True


def check_target(folder: Path, qdir: Path) -> None:
    folder, qdir = folder.resolve(), qdir.resolve()
    if qdir == folder or (qdir.exists() and os.path.samefile(qdir, folder)):
        raise TrainwrightError("the quarantine folder cannot be the dataset folder itself")
    if _inside(folder, qdir):
        raise TrainwrightError(
            f"the quarantine folder {qdir} contains the dataset {folder}: the moved copies would "
            "land beside it; choose a folder outside the dataset's own path"
        )
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


LOCK_WAIT_S = 600.0


@contextlib.contextmanager
def dataset_lock(folder: Path, wait: float = LOCK_WAIT_S) -> Iterator[None]:
    """One quarantine at a time per dataset: an flock on the folder itself (no file is made in
    the user's dataset). A second run waits, then finds the files the first one moved gone."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TrainwrightError(
                        f"{folder}: another trainwright dedup has been moving files out of it "
                        f"for over {wait:.0f} s; let it finish, then run this again"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)


def _images_named(caption: Path) -> list[Path]:
    """The images beside a caption file that pair with it by name (x.png, x.jpg -> x.txt)."""
    from trainwright.dataset.images import IMAGE_EXTS

    try:
        siblings = list(caption.parent.iterdir())
    except OSError:
        return []
    return [
        p
        for p in siblings
        if p.stem == caption.stem and p.suffix.lower() in IMAGE_EXTS and p.is_file()
    ]


def quarantine(
    folder: Path, qdir: Path, clusters: list[dict[str, Any]], dry_run: bool = False
) -> dict[str, Any]:
    """clusters: [{"keep": rel, "drop": [rel, ...]}] relative to folder. Returns the manifest."""
    check_target(folder, qdir)
    with dataset_lock(folder.resolve()):
        return _quarantine(folder, qdir, clusters, dry_run)


def _quarantine(
    folder: Path, qdir: Path, clusters: list[dict[str, Any]], dry_run: bool
) -> dict[str, Any]:
    folder_abs = folder.resolve()
    qdir_abs = qdir.resolve()
    moves: list[dict[str, Any]] = []
    gone: list[str] = []  # planned drops that are no longer there (another run moved them)
    dropped = {folder_abs / rel for c in clusters for rel in c["drop"]}
    taken: set[Path] = set()
    for gi, c in enumerate(clusters):
        if not (folder_abs / c["keep"]).is_file():
            gone += [str(folder_abs / rel) for rel in c["drop"]]
            continue  # never move the copies when the one to keep is not there
        for rel in c["drop"]:
            src = folder_abs / rel
            captions = [src.with_suffix(e) for e in CAPTION_EXTS if src.with_suffix(e).is_file()]
            # a caption travels only when no image left in the dataset shares it (k.png and
            # k.jpg share k.txt: quarantining k.png must not take the kept k.jpg's caption)
            captions = [
                cap
                for cap in captions
                if cap not in taken and all(i in dropped for i in _images_named(cap))
            ]
            taken.update(captions)
            items = [src, *captions]
            try:
                found = [(p, file_sha256(p)[0]) for p in items]
            except FileNotFoundError:
                gone.append(str(src))
                continue
            for p, digest in found:
                moves.append(
                    {
                        "original": str(p),
                        "quarantined": str(qdir_abs / p.relative_to(folder_abs)),
                        "sha256": digest,
                        "group": gi,
                        "keep": str(folder_abs / c["keep"]),
                    }
                )
    clash = [m["quarantined"] for m in moves if Path(m["quarantined"]).exists()]
    if clash:
        raise TrainwrightError(f"{clash[0]} already exists in the quarantine folder; nothing moved")
    stamp = file_stamp(micro=True)
    manifest = {
        "kind": "trainwright-quarantine",
        "created": now_iso(),
        "dataset": str(folder_abs),
        "quarantine": str(qdir_abs),
        "files": moves,
    }
    path = qdir_abs / f"manifest-{stamp}.json"
    manifest["manifest"] = str(path)
    manifest["gone"] = gone
    if dry_run or not moves:
        manifest["moved"] = 0
        return manifest
    qdir_abs.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")  # before anything moves
    for m in moves:
        _move(Path(m["original"]), Path(m["quarantined"]))
    manifest["moved"] = len(moves)
    return manifest


MANIFEST_KEYS = ("original", "quarantined", "sha256")
MAX_MANIFEST_BYTES = 64 << 20


def load_manifest(manifest_path: Path) -> dict[str, Any]:
    """The manifest's JSON, checked for the keys undo reads; a clear error for anything else
    (a folder, a FIFO, an edited or cut-off file), before a single file moves."""
    if manifest_path.is_dir():
        found = sorted(manifest_path.glob("manifest-*.json"))
        hint = f": give the manifest file, e.g. {found[-1]}" if found else ""
        raise TrainwrightError(f"{manifest_path}: is a folder, not a quarantine manifest{hint}")
    not_ours = f"{manifest_path}: not a trainwright quarantine manifest"
    try:
        from trainwright.state.content_hash import open_regular

        with open(open_regular(manifest_path), "rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise TrainwrightError(f"{manifest_path}: no such manifest") from None
    except OSError as exc:
        raise TrainwrightError(f"{not_ours} ({exc.strerror or exc})") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise TrainwrightError(f"{not_ours} (over {MAX_MANIFEST_BYTES >> 20} MB)")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise TrainwrightError(f"{not_ours} (not JSON)") from None
    if not isinstance(data, dict) or data.get("kind") != "trainwright-quarantine":
        raise TrainwrightError(not_ours)
    files = data.get("files")
    if not isinstance(files, list):
        raise TrainwrightError(f"{not_ours}: 'files' is missing or not a list")
    for i, m in enumerate(files):
        bad = (
            [k for k in MANIFEST_KEYS if not isinstance(m.get(k), str) or not m.get(k)]
            if isinstance(m, dict)
            else list(MANIFEST_KEYS)
        )
        if bad:
            raise TrainwrightError(
                f"{not_ours}: entry {i + 1} of 'files' lacks {', '.join(bad)} "
                "(was it edited?); nothing restored"
            )
    return data


def undo(manifest_path: Path) -> dict[str, Any]:
    data = load_manifest(manifest_path)
    check_manifest(manifest_path, data)
    restored, already, problems = [], [], []
    for m in data["files"]:
        src, dst = Path(m["quarantined"]), Path(m["original"])
        if dst.exists():
            if dst.is_file() and file_sha256(dst)[0] == m["sha256"]:
                already.append(str(dst))
            else:
                problems.append(f"{dst} exists and differs; left both in place")
            continue
        if not src.is_file():
            problems.append(f"{src} is missing from the quarantine (or not a regular file)")
            continue
        if file_sha256(src)[0] != m["sha256"]:
            problems.append(f"{src} changed since it was quarantined; not restored")
            continue
        _move(src, dst)
        if file_sha256(dst)[0] != m["sha256"]:
            problems.append(f"{dst} does not match its recorded hash after the move")
        else:
            restored.append(str(dst))
    return {
        "manifest": str(manifest_path),
        "restored": restored,
        "already_in_place": already,
        "problems": problems,
    }


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(path))


def check_manifest(manifest_path: Path, data: dict[str, Any]) -> None:
    """Refuse, before anything moves, a manifest whose paths leave its own two folders.

    Undo moves files only from the recorded quarantine folder (where the manifest itself lies)
    back to the same relative place in the recorded dataset folder, with symlinks and `..`
    resolved; an edited entry that points anywhere else refuses the whole undo.
    """
    bad = f"{manifest_path}: not a trainwright quarantine manifest"
    dataset, qdir, files = data.get("dataset"), data.get("quarantine"), data.get("files")
    if not isinstance(dataset, str) or not isinstance(qdir, str) or not isinstance(files, list):
        raise TrainwrightError(f"{bad} (it lacks dataset, quarantine or files)")
    ds, qd = _real(dataset), _real(qdir)
    if _real(manifest_path).parent != qd:
        raise TrainwrightError(
            f"{manifest_path} is not in the quarantine folder it records ({qdir}): undo runs "
            "only from the manifest inside that folder; nothing was moved"
        )
    if ds == qd or ds == Path(ds.anchor):
        raise TrainwrightError(f"{manifest_path}: its dataset folder {dataset} is not a dataset")
    keys = ("original", "quarantined", "sha256")
    for m in files:
        if not isinstance(m, dict) or not all(isinstance(m.get(k), str) for k in keys):
            raise TrainwrightError(f"{bad} (an entry lacks original, quarantined or sha256)")
        orig, quar = _real(m["original"]), _real(m["quarantined"])
        try:
            rel_o, rel_q = orig.relative_to(ds), quar.relative_to(qd)
        except ValueError:
            rel_o = rel_q = None
        if rel_o is None or rel_o != rel_q or (_inside(orig, qd) and not _inside(ds, qd)):
            raise TrainwrightError(
                f"{manifest_path}: the entry {m['original']} <- {m['quarantined']} points "
                f"outside the dataset {dataset} or the quarantine {qdir} (was the manifest "
                "edited?); nothing was moved"
            )
