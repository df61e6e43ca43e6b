"""List a run's checkpoints and prune old ones by an explicit retention rule.

The rule: keep the newest K; never remove the best (lowest recorded loss), the only one, one
that may still be being written (a `.partial`/`.tmp` name, or modified in the last minute while
the run is live), or one a record points to (studio.md, eval.md, run.json). Nothing else in the
folder is touched.

"Newest" is read from the run's own record (the epoch and step in the file's metadata or in the
trainer's naming), never from file dates: a `touch` or a copy must not reorder the run. A file
whose name does not follow the run's naming (`<output name>-...`, or a trainer's epoch_N/ and
checkpoint-N/ folders) is not a checkpoint of this run and is never listed or pruned.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin")
WRITING_SUFFIXES = (".partial", ".tmp")
RECENT_S = 60.0


@dataclass
class Checkpoint:
    path: Path
    size: int
    mtime: float
    epoch: int | None = None
    step: int | None = None
    loss: float | None = None
    writing: bool = False
    keep_reasons: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.epoch is not None:
            return f"epoch-{self.epoch}"
        if self.step is not None:
            return f"step-{self.step}"
        return self.path.name

    def order(self) -> tuple[int, int, int, str]:
        """By the run's record: epoch, then step; a final file without numbers is the newest."""
        final = int(self.epoch is None and self.step is None)
        epoch = -1 if self.epoch is None else self.epoch
        step = -1 if self.step is None else self.step
        return (final, epoch, step, self.path.name)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["label"] = self.label
        return d


_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "step",
        re.compile(r"(?:step|checkpoint)[-_]?(\d+)", re.I),
    ),  # kohya -stepNNNNNNNN, SimpleTuner
    ("epoch", re.compile(r"epoch[-_]?(\d+)", re.I)),  # tiny -epoch-NNNN, torchtune epoch_N/
    ("epoch", re.compile(r"-(\d{6})$")),  # kohya name-NNNNNN
    ("step", re.compile(r"_(\d{9})$")),  # ai-toolkit name_NNNNNNNNN
)


def _numbers(stem: str, parent: str) -> tuple[int | None, int | None]:
    """(epoch, step) read from a checkpoint's file or folder name."""
    for text in (stem, parent):
        for kind, pattern in _PATTERNS:
            m = pattern.search(text)
            if m:
                n = int(m.group(1))
                return (n, None) if kind == "epoch" else (None, n)
    return None, None


def _follows_naming(stem: str, parent: str, name: str | None, numbered: bool) -> bool:
    """Whether a file is named the way the run names its checkpoints (see the module doc)."""
    if name is None:
        return True
    if parent:  # epoch_N/, checkpoint-N/: the folder carries the number
        return numbered
    if stem == name:  # the final file (kohya, ai-toolkit)
        return True
    return re.fullmatch(re.escape(name) + r"[-_](?:epoch[-_]?|step[-_]?)?\d+", stem) is not None


def scan(
    folder: Path,
    info: Callable[[Path], dict[str, Any]] | None = None,
    losses: dict[int, float] | None = None,
    name: str | None = None,
) -> list[Checkpoint]:
    """Checkpoint files under `folder` (one level of sub-folders, for epoch_N/ layouts)."""
    return scan_all(folder, info, losses, name)[0]


def scan_all(
    folder: Path,
    info: Callable[[Path], dict[str, Any]] | None = None,
    losses: dict[int, float] | None = None,
    name: str | None = None,
) -> tuple[list[Checkpoint], list[Path]]:
    """(checkpoints, foreign files): with `name` (the run's output name), a checkpoint-like
    file not named the way the run names its checkpoints is foreign, never a checkpoint."""
    if not folder.is_dir():
        return [], []
    foreign: list[Path] = []
    candidates = list(folder.iterdir())
    for sub in list(candidates):
        if sub.is_dir() and not sub.name.startswith("."):
            candidates += list(sub.iterdir())
    found: list[Checkpoint] = []
    for path in sorted(candidates):
        if not path.is_file():
            continue
        fname = path.name
        writing = fname.endswith(WRITING_SUFFIXES) or fname.startswith(".")
        base = fname.lstrip(".")
        for suffix in WRITING_SUFFIXES:
            base = base.removesuffix(suffix)
        if not base.endswith(SUFFIXES):
            continue
        stem = base.rsplit(".", 1)[0]
        parent = path.parent.name if path.parent != folder else ""
        epoch, step = _numbers(stem, parent)
        numbered = epoch is not None or step is not None
        if not _follows_naming(stem, parent, name, numbered):
            foreign.append(path)
            continue
        st = path.stat()
        ck = Checkpoint(path, st.st_size, st.st_mtime, epoch, step, writing=writing)
        if info and not writing:
            meta = info(path)
            if meta.get("epoch") is not None:
                ck.epoch = meta["epoch"]
            if meta.get("step") is not None:
                ck.step = meta["step"]
            ck.loss = meta.get("loss")
        if ck.loss is None and losses and ck.step is not None:
            ck.loss = losses.get(ck.step)
        found.append(ck)
    return sorted(_group_folders(found, folder), key=Checkpoint.order), foreign


def _group_folders(found: list[Checkpoint], folder: Path) -> list[Checkpoint]:
    """The files of one sub-folder (HF Trainer's checkpoint-N/, torchtune's epoch_N/: weights,
    adapter, optimizer state) are one checkpoint, the folder, never listed file by file: pruning
    one of its files would leave a checkpoint that cannot be loaded."""
    loose = [c for c in found if c.path.parent == folder]
    by_folder: dict[Path, list[Checkpoint]] = {}
    for c in found:
        if c.path.parent != folder:
            by_folder.setdefault(c.path.parent, []).append(c)
    for sub, files in by_folder.items():
        if len(files) == 1:
            loose.append(files[0])
            continue
        first = files[0]
        losses = [c.loss for c in files if c.loss is not None]
        loose.append(
            Checkpoint(
                sub,
                sum(c.size for c in files),
                max(c.mtime for c in files),
                first.epoch,
                first.step,
                losses[0] if losses else None,
                writing=any(c.writing for c in files),
            )
        )
    return loose


def retention(
    checkpoints: list[Checkpoint],
    keep: int,
    live: bool,
    now: float | None = None,
    referenced: dict[Path, str] | None = None,
) -> tuple[list[Checkpoint], list[Checkpoint]]:
    """Split into (kept, removable); every kept one says why in keep_reasons.

    referenced: files a record points to (resolved path -> which record), never removable.
    """
    now = time.time() if now is None else now
    done = [c for c in checkpoints if not c.writing]
    refs = {Path(os.path.realpath(p)): why for p, why in (referenced or {}).items()}
    for c in checkpoints:
        c.keep_reasons = []
        why = refs.get(Path(os.path.realpath(c.path)))
        if why:
            c.keep_reasons.append(why)
        if c.writing:
            c.keep_reasons.append("still being written")
        if c.path.is_dir():
            c.keep_reasons.append(
                "a folder of several files: the trainer's own save limit prunes it"
            )
        elif live and now - c.mtime < RECENT_S:
            c.keep_reasons.append("written in the last minute while the run is live")
    newest = sorted(done, key=Checkpoint.order)[-keep:] if keep > 0 else []
    for c in newest:
        c.keep_reasons.append(f"among the newest {keep}")
    scored = [c for c in done if c.loss is not None and c.loss == c.loss]
    if scored:
        min(scored, key=lambda c: c.loss).keep_reasons.append("best loss")  # type: ignore[arg-type, return-value]
    if len(done) == 1:
        done[0].keep_reasons.append("the only checkpoint")
    kept = [c for c in checkpoints if c.keep_reasons]
    removable = [c for c in checkpoints if not c.keep_reasons]
    return kept, removable


def prune(removable: list[Checkpoint]) -> list[Path]:
    removed = []
    for c in removable:
        if c.writing or not c.path.is_file():
            continue
        c.path.unlink()
        removed.append(c.path)
    return removed


_FILE_LINE = re.compile(r"^\s*-\s*\*\*(File|LoRA file)(?::\*\*|\*\*:)\s*(.+?)\s*$", re.M)


def referenced_files(
    studio: Path, eval_md: Path, run_json: Path, bases: tuple[Path, ...]
) -> dict[Path, str]:
    """Files the records point to: studio.md's `File` lines (registered LoRAs), eval.md's
    `LoRA file`, and any checkpoint path in run.json. Read as plain text, so a state file that
    fails its schema still protects what it names. Relative paths are tried against `bases`."""
    found: dict[Path, str] = {}

    def add(raw: str, why: str) -> None:
        raw = raw.strip().strip("`")
        if not raw:
            return
        path = Path(raw).expanduser()
        for p in [path] if path.is_absolute() else [b / path for b in bases]:
            found.setdefault(Path(os.path.realpath(p)), why)

    for doc, why in ((studio, "registered in studio.md"), (eval_md, "named in eval.md")):
        try:
            text = doc.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for m in _FILE_LINE.finditer(text):
            add(m.group(2), why)
    try:
        record = json.loads(run_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = None
    stack = [record]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack += list(item.values())
        elif isinstance(item, list):
            stack += item
        elif isinstance(item, str) and item.endswith(SUFFIXES):
            add(item, "named in run.json")
    return found
