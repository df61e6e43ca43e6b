"""Nothing lost (issue 13, section 3): outputs named like inputs, backups that collide, captions
a kept image shares, edited quarantine manifests, checkpoints reordered by `touch`, a damaged run
record. Every case runs from a fresh project's root; the harness fails any case that changes a
file that existed before it (beyond its `may_change`)."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

import pytest
from harness import Case, cli, run_case
from room_kit import absent, both, dataset, exists, ok, params, said, training_project, write

P = "grimoire/training/t1"


def graphic(path: Path, seed: int = 1, size: int = 256, **save: object) -> Path:
    """Flat shapes with hard edges (small as PNG, large as JPEG); the format by suffix."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    im = Image.new("RGB", (size, size), (250, 250, 250))
    d = ImageDraw.Draw(im)
    for _ in range(40):
        x, y = rng.randrange(size), rng.randrange(size)
        w, h = rng.randrange(8, size // 4), rng.randrange(8, size // 4)
        d.rectangle((x, y, x + w, y + h), fill=tuple(rng.randrange(256) for _ in range(3)))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **save)
    return path


def stamps(seconds: int) -> list[str]:
    """The `%Y%m%d-%H%M%S` stamps of the next `seconds` seconds (a backup name in use)."""
    now = time.time()
    return [time.strftime("%Y%m%d-%H%M%S", time.localtime(now + i)) for i in range(seconds)]


# ------------------------------------------------------------------------------ dataset room


def _ds(p: Path) -> None:
    dataset(p, "ds", 3)


def _sheet(target: str):
    def setup(p: Path) -> list[str]:
        _ds(p)
        return ["dedup", "ds", "--sheet", target]

    return setup


def _sheet_absolute(p: Path) -> list[str]:
    _ds(p)
    return ["dedup", str(p / "ds"), "--sheet", str(p / "ds" / "painting_02.png")]


def _sheet_link(p: Path) -> list[str]:
    _ds(p)
    (p / "sheet.png").symlink_to(p / "ds" / "painting_00.png")
    return ["dedup", "ds", "--sheet", "sheet.png"]


def _sheet_hardlink(p: Path) -> list[str]:
    _ds(p)
    os.link(p / "ds" / "painting_01.png", p / "sheet.png")
    return ["dedup", "ds", "--sheet", "sheet.png"]


def _sheet_over_mine(p: Path) -> list[str]:
    _ds(p)
    graphic(p / "holiday.png")
    return ["dedup", "ds", "--sheet", "holiday.png"]


def _sheet_twice(p: Path) -> list[str]:
    _ds(p)
    ok(cli(p, "dedup", "ds", "--sheet", "sheet.png"))
    return ["dedup", "ds", "--sheet", "sheet.png"]


def _quarantine(target: str):
    def setup(p: Path) -> list[str]:
        _ds(p)
        return ["dedup", "ds", "--quarantine", target]

    return setup


def _quarantine_link(p: Path) -> list[str]:
    _ds(p)
    (p / "qlink").symlink_to(p / "ds")
    return ["dedup", "ds", "--quarantine", "qlink"]


def _shared_caption(p: Path) -> list[str]:
    graphic(p / "ds" / "k.png")
    graphic(p / "ds" / "k.jpg", quality=90)
    graphic(p / "ds" / "other.png", seed=9)
    write(p / "ds" / "k.txt", "the caption both share\n")
    return ["dedup", "ds", "--quarantine", "q"]


def _png_and_jpeg70(p: Path) -> list[str]:
    graphic(p / "ds" / "a.png")
    graphic(p / "ds" / "b.jpg", quality=70)
    graphic(p / "ds" / "c.png", seed=9)
    return ["dedup", "ds", "--quarantine", "q"]


def _quarantined(p: Path) -> Path:
    graphic(p / "ds" / "a.png")
    graphic(p / "ds" / "b.png")
    write(p / "ds" / "b.txt", "caption of b\n")
    graphic(p / "ds" / "c.png", seed=9)
    ok(cli(p, "dedup", "ds", "--quarantine", "q"))
    return next((p / "q").glob("manifest-*.json"))


def _edit_manifest(edit):
    def setup(p: Path) -> list[str]:
        manifest = _quarantined(p)
        data = json.loads(manifest.read_text())
        edit(p, data)
        manifest.write_text(json.dumps(data))
        return ["dedup", "--undo", str(manifest.relative_to(p))]

    return setup


def _steal(p: Path, data: dict) -> None:
    import hashlib

    secret = write(p / "private.txt", "not the dataset's\n")
    data["files"].append(
        {
            "original": str(p / "ds" / "private.txt"),
            "quarantined": str(secret),
            "sha256": hashlib.sha256(secret.read_bytes()).hexdigest(),
        }
    )


def _escape_dotdot(p: Path, data: dict) -> None:
    data["files"][0]["original"] = str(p / "ds" / ".." / "elsewhere" / "deep" / "b.png")


def _dataset_to_root(p: Path, data: dict) -> None:
    data["dataset"] = "/"
    data["files"][0]["original"] = str(p / "outside-b.png")


def _symlinked_subfolder(p: Path, data: dict) -> None:
    (p / "away").mkdir()
    (p / "ds" / "sub").symlink_to(p / "away")
    data["files"][0]["original"] = str(p / "ds" / "sub" / "b.png")
    data["files"][0]["quarantined"] = str(p / "q" / "sub" / "b.png")


def _swap_names(p: Path, data: dict) -> None:
    data["files"][0]["original"] = str(p / "ds" / "c.png")  # put b's bytes over another name


def _manifest_moved_out(p: Path) -> list[str]:
    manifest = _quarantined(p)
    shutil.copy(manifest, p / "manifest.json")
    return ["dedup", "--undo", "manifest.json"]


def _undo_honest(p: Path) -> list[str]:
    manifest = _quarantined(p)
    return ["dedup", "--undo", str(manifest.relative_to(p))]


def _shared_drafts(p: Path) -> list[str]:
    graphic(p / "ds" / "x.png")
    graphic(p / "ds" / "x.jpg", quality=90)
    write(p / "ds" / "x.txt", "my own careful caption\n")
    write(p / "drafts.json", json.dumps({"x.png": "draft one", "x.jpg": "draft two"}))
    return ["captions", "apply", "ds", "--from", "drafts.json", "--replace"]


def _backup_folder_taken(p: Path) -> list[str]:
    _ds(p)
    for stamp in stamps(20):  # earlier backups under every name this run could pick
        write(p / "ds" / ".trainwright-caption-backup" / stamp / "painting_00.txt", "older\n")
    write(p / "drafts.json", json.dumps({"painting_00.png": "a new caption"}))
    return ["captions", "apply", "ds", "--from", "drafts.json", "--replace"]


def _two_applies(p: Path) -> list[str]:
    _ds(p)
    write(p / "d1.json", json.dumps({"painting_00.png": "second version"}))
    write(p / "d2.json", json.dumps({"painting_00.png": "third version"}))
    ok(cli(p, "captions", "apply", "ds", "--from", "d1.json", "--replace"))
    return ["captions", "apply", "ds", "--from", "d2.json", "--replace"]


def _both_backups_kept(r) -> None:
    texts = sorted(
        f.read_text() for f in (r.project / "ds" / ".trainwright-caption-backup").rglob("*.txt")
    )
    assert len(texts) == 2 and "second version" in texts, texts


def _caption_kept(name: str, text: str):
    def check(r) -> None:
        assert (r.project / "ds" / name).read_text() == text

    return check


def _kept(name: str):
    def check(r) -> None:
        assert (r.project / "ds" / name).is_file(), f"{name} left the dataset"

    return check


# ---------------------------------------------------------------------------------- run room


def _log(p: Path) -> Path:
    return write(
        p / "train.log", "".join(f"epoch=1 step={s} loss={1 / s:.4f}\n" for s in range(1, 40))
    )


def _curve(target: str, link: bool = False):
    def setup(p: Path) -> list[str]:
        _log(p)
        if link:
            (p / target).symlink_to(p / "train.log")
        return ["monitor", "--log", "train.log", "--curve", target]

    return setup


def _curve_over_mine(p: Path) -> list[str]:
    _log(p)
    graphic(p / "mine.png")
    return ["monitor", "--log", "train.log", "--curve", "mine.png"]


def _curve_twice(p: Path) -> list[str]:
    _log(p)
    ok(cli(p, "monitor", "--log", "train.log", "--curve", "curve.png"))
    return ["monitor", "--log", "train.log", "--curve", "curve.png"]


def _output_folder(p: Path) -> Path:
    from trainwright.backends import tiny

    return tiny.checkpoint_dir(p / P / tiny.CONFIG_FILE)


def _checkpoint(folder: Path, name: str, epoch: int, loss: float) -> Path:
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    meta = {"epoch": str(epoch), "step": str(epoch * 4), "loss": str(loss)}
    save_file({"w": np.zeros(4, dtype=np.float32)}, str(path), metadata=meta)
    t = time.time() - 3600 + epoch
    os.utime(path, (t, t))
    return path


_T1: list[Path] = []


def _configured(p: Path) -> None:
    """t1 made and configured for tiny by the CLI (once per session; copied for each case)."""
    if not _T1 or not _T1[0].is_dir():
        import tempfile

        base = Path(tempfile.mkdtemp(prefix="data-loss-t1-"))
        ok(cli(base, "init", "."))
        training_project(base, config=True)
        _T1[:] = [base]
    base = _T1[0]
    shutil.copytree(base / "ds", p / "ds")
    shutil.copytree(base / P, p / P)
    for name in ("tiny.yaml", "config.md", "intent.md", "trainwright-plan.json"):
        f = p / P / name
        if f.is_file():
            f.write_text(f.read_text().replace(str(base), str(p)))


def _trained(p: Path) -> Path:
    """t1 configured for tiny, with checkpoints of epochs 1-3 (epoch 1 the best loss)."""
    _configured(p)
    out = _output_folder(p)
    for epoch, loss in ((1, 0.10), (2, 0.30), (3, 0.20)):
        _checkpoint(out, f"t1-epoch-{epoch:04d}.safetensors", epoch, loss)
    return out


def _rel(p: Path, path: Path) -> str:
    return str(path.relative_to(p))


def _touched(p: Path) -> list[str]:
    out = _trained(p)
    os.utime(out / "t1-epoch-0002.safetensors")
    return ["checkpoints", "t1", "--keep", "1", "--prune"]


def _foreign(p: Path) -> list[str]:
    out = _trained(p)
    for name in ("notes.safetensors", "other-epoch-0001.safetensors", "t1-epoch-0001 copy.pt"):
        write(out / name, b"a person's file")
        os.utime(out / name, (1000, 1000))
    return ["checkpoints", "t1", "--keep", "1", "--prune"]


def _registered(p: Path) -> list[str]:
    out = _trained(p)
    studio = p / "grimoire" / "studio.md"
    studio.write_text(
        studio.read_text() + f"\n### LoRA: t1\n- **File**: {out / 't1-epoch-0002.safetensors'}\n"
    )
    os.utime(out / "t1-epoch-0002.safetensors", (1000, 1000))
    return ["checkpoints", "t1", "--keep", "1", "--prune"]


def _pruned_only(name: str):
    """may_change for the prune cases: only that checkpoint may go (its path is made later)."""
    return [f"{P}/*/{name}", f"{P}/{name}", f"{P}/*.md"]


def _damaged_record(text: str, *args: str):
    def setup(p: Path) -> list[str]:
        _trained(p)
        write(p / P / "run.json", text)
        return [*args]

    return setup


# ----------------------------------------------------------------------- backends, cli rooms


def _config_backup_taken(p: Path) -> list[str]:
    _configured(p)
    cfg = p / P / "tiny.yaml"
    cfg.write_text(cfg.read_text() + "# my own note\n")
    for stamp in stamps(30):
        write(p / P / f"tiny.yaml.{stamp}.bak", "an older backup\n")
    return ["config", "--project", "t1", "--backend", "tiny", "--preset", "quick"]


def _init_backup_taken(p: Path) -> list[str]:
    target = p / "CLAUDE.md"
    target.write_text(target.read_text() + "\nmy own line\n")
    for stamp in stamps(20):
        write(p / ".trainwright" / "backup" / stamp / "CLAUDE.md", "an older backup\n")
    return ["init", ".", "--force"]


def _init_backed_up(r) -> None:
    found = [
        f for f in (r.project / ".trainwright" / "backup").rglob("CLAUDE.md")
        if "my own line" in f.read_text()
    ]  # fmt: skip
    assert found, "the person's CLAUDE.md was not backed up"


CASES = [
    # dedup --sheet: never over an input, never into the dataset, never over a person's file
    Case("sheet-onto-dataset-image", "dataset", "data-loss", "clear-error",
         setup=_sheet("ds/painting_00.png")),
    Case("sheet-dot-slash-image", "dataset", "path-escape", "clear-error",
         setup=_sheet("./ds/painting_00.png")),
    Case("sheet-dotdot-image", "dataset", "path-escape", "clear-error",
         setup=_sheet("ds/../ds/painting_01.png")),
    Case("sheet-absolute-image", "dataset", "data-loss", "clear-error", setup=_sheet_absolute),
    Case("sheet-symlink-to-image", "dataset", "path-escape", "clear-error", setup=_sheet_link),
    Case("sheet-hardlink-to-image", "dataset", "path-escape", "clear-error",
         setup=_sheet_hardlink),
    Case("sheet-new-file-inside-dataset", "dataset", "data-loss", "clear-error",
         setup=_sheet("ds/sheet.png"), check=absent("ds/sheet.png")),
    Case("sheet-other-case-inside-dataset", "dataset", "hostile-name", "clear-error",
         setup=_sheet("ds/PAINTING_00.PNG"), check=absent("ds/PAINTING_00.PNG")),
    Case("sheet-over-a-persons-png", "dataset", "data-loss", "clear-error",
         setup=_sheet_over_mine),
    Case("sheet-onto-a-folder", "dataset", "bad-file", "clear-error", setup=_sheet("ds")),
    Case("sheet-new-path-is-fine", "dataset", "data-loss", "correct",
         setup=_sheet("sheet.png"), check=exists("sheet.png")),
    Case("sheet-twice-replaces-its-own", "dataset", "data-loss", "correct",
         setup=_sheet_twice, may_change=["sheet.png"]),
    # dedup --quarantine: never the dataset itself, never around it
    Case("quarantine-is-the-dataset", "dataset", "path-escape", "clear-error",
         setup=_quarantine("ds")),
    Case("quarantine-is-the-dataset-dot", "dataset", "path-escape", "clear-error",
         setup=_quarantine("./ds/.")),
    Case("quarantine-symlink-to-dataset", "dataset", "path-escape", "clear-error",
         setup=_quarantine_link),
    Case("quarantine-contains-the-dataset", "dataset", "path-escape", "clear-error",
         setup=_quarantine(".")),
    Case("quarantine-inside-the-dataset", "dataset", "path-escape", "clear-error",
         setup=_quarantine("ds/dups")),
    Case("quarantine-kept-image-keeps-its-caption", "dataset", "data-loss", "correct",
         setup=_shared_caption, may_change=["ds/k.png", "ds/k.jpg"],
         check=_caption_kept("k.txt", "the caption both share\n")),
    Case("quarantine-keeps-png-over-jpeg-q70", "dataset", "data-loss", "correct",
         setup=_png_and_jpeg70, may_change=["ds/b.jpg"], check=_kept("a.png")),
    # dedup --undo: only inside the recorded dataset and quarantine folders
    Case("undo-edited-entry-steals-a-file", "dataset", "path-escape", "clear-error",
         setup=_edit_manifest(_steal), check=absent("ds/private.txt")),
    Case("undo-dotdot-makes-folders-outside", "dataset", "path-escape", "clear-error",
         setup=_edit_manifest(_escape_dotdot), check=absent("elsewhere")),
    Case("undo-dataset-edited-to-root", "dataset", "path-escape", "clear-error",
         setup=_edit_manifest(_dataset_to_root), check=absent("outside-b.png")),
    Case("undo-through-a-symlinked-folder", "dataset", "path-escape", "clear-error",
         setup=_edit_manifest(_symlinked_subfolder), check=absent("away/b.png")),
    Case("undo-entry-renamed", "dataset", "corrupt-state", "clear-error",
         setup=_edit_manifest(_swap_names)),
    Case("undo-manifest-copied-out", "dataset", "path-escape", "clear-error",
         setup=_manifest_moved_out, check=absent("ds/b.png")),
    Case("undo-honest-manifest-restores", "dataset", "data-loss", "correct",
         setup=_undo_honest, may_change=["q/b.png", "q/b.txt"],
         check=exists("ds/b.png", "ds/b.txt")),
    # captions apply: backups are never reused, a shared caption is never overwritten
    Case("captions-shared-by-two-images", "dataset", "data-loss", "correct",
         setup=_shared_drafts, check=both(
             _caption_kept("x.txt", "my own careful caption\n"), said("shared"))),
    Case("captions-backup-folder-names-taken", "dataset", "data-loss", "correct",
         setup=_backup_folder_taken, may_change=["ds/painting_00.txt"]),
    Case("captions-two-applies-keep-both-backups", "dataset", "concurrent-state", "correct",
         setup=_two_applies, may_change=["ds/painting_00.txt"], check=_both_backups_kept),
    # monitor --curve: never over the log it reads
    Case("curve-onto-its-log", "run", "data-loss", "clear-error", setup=_curve("train.log")),
    Case("curve-onto-its-log-dot-slash", "run", "path-escape", "clear-error",
         setup=_curve("./train.log")),
    Case("curve-symlink-to-its-log", "run", "path-escape", "clear-error",
         setup=_curve("link.png", link=True)),
    Case("curve-over-a-persons-png", "run", "data-loss", "clear-error", setup=_curve_over_mine),
    Case("curve-twice-replaces-its-own", "run", "data-loss", "correct", setup=_curve_twice,
         may_change=["curve.png"]),
    # checkpoints --prune: newest by record, registered and foreign files kept
    Case("prune-after-touch-keeps-newest-epoch", "run", "data-loss", "correct",
         setup=_touched, may_change=_pruned_only("t1-epoch-0002.safetensors")),
    Case("prune-leaves-foreign-files", "run", "data-loss", "correct", setup=_foreign,
         may_change=_pruned_only("t1-epoch-0002.safetensors")),
    Case("prune-keeps-the-registered-lora", "run", "data-loss", "correct", setup=_registered),
    # a damaged run record is a refusal, never a fresh start
    Case("launch-on-truncated-run-json", "run", "corrupt-state", "clear-error",
         setup=_damaged_record('{"status": "COMPL', "launch", "t1", "--detach"),
         check=said("run.json")),
    Case("launch-on-empty-run-json", "run", "interrupted-write", "clear-error",
         setup=_damaged_record("", "launch", "t1", "--detach"), check=said("run.json")),
    Case("launch-on-run-json-not-an-object", "run", "corrupt-state", "clear-error",
         setup=_damaged_record("[1, 2]", "launch", "t1", "--detach"), check=said("run.json")),
    Case("monitor-on-truncated-run-json", "run", "corrupt-state", "clear-error",
         setup=_damaged_record('{"status": "RUNN', "monitor", "t1"), check=said("run.json")),
    # backups of configs and pack files never reuse a name
    Case("config-backup-names-taken", "backends", "data-loss", "correct",
         setup=_config_backup_taken,
         may_change=[f"{P}/tiny.yaml", f"{P}/*.md", f"{P}/trainwright-plan.json"]),
    Case("init-force-backup-names-taken", "cli", "data-loss", "correct",
         setup=_init_backup_taken, may_change=["CLAUDE.md", ".trainwright/pack.json"],
         check=_init_backed_up),
]  # fmt: skip


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: Case, tmp_path: Path) -> None:
    run_case(case, tmp_path)
