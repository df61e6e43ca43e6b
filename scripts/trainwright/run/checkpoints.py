"""List a run's checkpoints and prune old ones by an explicit retention rule.

The rule: keep the newest K; never remove the best (lowest recorded loss), the only one, or one
that may still be being written (a `.partial`/`.tmp` name, or modified in the last minute while
the run is live). Nothing else in the folder is touched.
"""

from __future__ import annotations

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

    def order(self) -> tuple[float, str]:
        """Newest is the last written: names and metadata differ between trainers, time not."""
        return (self.mtime, self.path.name)

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


def scan(
    folder: Path,
    info: Callable[[Path], dict[str, Any]] | None = None,
    losses: dict[int, float] | None = None,
) -> list[Checkpoint]:
    """Checkpoint files under `folder` (one level of sub-folders, for epoch_N/ layouts)."""
    if not folder.is_dir():
        return []
    candidates = list(folder.iterdir())
    for sub in list(candidates):
        if sub.is_dir() and not sub.name.startswith("."):
            candidates += list(sub.iterdir())
    found: list[Checkpoint] = []
    for path in sorted(candidates):
        if not path.is_file():
            continue
        name = path.name
        writing = name.endswith(WRITING_SUFFIXES) or name.startswith(".")
        base = name.lstrip(".")
        for suffix in WRITING_SUFFIXES:
            base = base.removesuffix(suffix)
        if not base.endswith(SUFFIXES):
            continue
        stem = base.rsplit(".", 1)[0]
        parent = path.parent.name if path.parent != folder else ""
        epoch, step = _numbers(stem, parent)
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
    return sorted(found, key=Checkpoint.order)


def retention(
    checkpoints: list[Checkpoint], keep: int, live: bool, now: float | None = None
) -> tuple[list[Checkpoint], list[Checkpoint]]:
    """Split into (kept, removable); every kept one says why in keep_reasons."""
    now = time.time() if now is None else now
    done = [c for c in checkpoints if not c.writing]
    for c in checkpoints:
        c.keep_reasons = []
        if c.writing:
            c.keep_reasons.append("still being written")
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
