"""Property: on any sequence of the file-writing commands, with bad inputs among them, no file the
pack did not create is removed, truncated or overwritten, except by a move that `dedup --undo`
reverses byte for byte (or a caption rewrite whose old bytes wait in the caption backup).

The commands run in-process (trainwright.cli.main) from a project root made by `trainwright init`,
holding a dataset with a person's captions and notes, a log, a photo of their own, and a tiny
project with checkpoints (one registered in studio.md, one a person dropped into output/).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from helpers import run_cli
from trainwright.cli import main

PROSE = "A line of my own notes that no command may drop."
TARGETS = (  # output paths a person might type, good and bad
    "sheet.png",
    "out/sheet.png",
    "ds/a.png",
    "./ds/b.jpg",
    "ds/../ds/a.png",
    "ds/new.png",
    "holiday.png",
    "train.log",
    "grimoire/studio.md",
    "ds",
)
QUARANTINES = ("q", "q2", "ds", "./ds", ".", "ds/.dups", "ds/sub", "holiday.png", "grimoire")


def _graphic(path: Path, seed: int, **save: object) -> None:
    rng = random.Random(seed)
    im = Image.new("RGB", (160, 160), (250, 250, 250))
    d = ImageDraw.Draw(im)
    for _ in range(30):
        x, y = rng.randrange(160), rng.randrange(160)
        d.rectangle((x, y, x + rng.randrange(8, 50), y + rng.randrange(8, 50)),
                    fill=tuple(rng.randrange(256) for _ in range(3)))  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **save)


_TEMPLATE: list[Path] = []


def _template() -> Path:
    """The project every example starts from (built once, by the CLI, as a person would)."""
    if _TEMPLATE:
        return _TEMPLATE[0]
    root = Path(tempfile.mkdtemp(prefix="no-loss-")) / "project"
    root.mkdir()
    ds = root / "ds"
    _graphic(ds / "a.png", 1)
    _graphic(ds / "a.jpg", 1, quality=70)  # a lossy copy of a.png, sharing a.txt
    _graphic(ds / "b.jpg", 2, quality=90)
    _graphic(ds / "c.png", 3)
    _graphic(ds / "c_copy.png", 3)
    for name, text in (("a", "my caption of a"), ("b", "my caption of b"), ("c", "of c")):
        (ds / f"{name}.txt").write_text(text + "\n")
    (ds / "notes.md").write_text("where these pictures came from\n")
    _graphic(root / "holiday.png", 9)
    (root / "train.log").write_text(
        "".join(f"epoch=1 step={s} loss={1 / s:.4f}\n" for s in range(1, 30))
    )
    steps = (
        ["init", "."],
        ["grimoire", "new", "t1"],
        ["grimoire", "set", "intent", "--project", "t1", "Type=style", "Base model=tiny",
         "Trigger word=zzq", "Dataset folder=ds"],
        ["config", "--project", "t1", "--backend", "tiny", "--preset", "quick"],
    )  # fmt: skip
    for args in steps:
        proc = run_cli(*args, cwd=root)
        assert proc.returncode == 0, proc.stderr
    intent = root / "grimoire" / "training" / "t1" / "intent.md"
    intent.write_text(intent.read_text() + f"\n{PROSE}\n")
    from trainwright.backends import tiny

    out = tiny.checkpoint_dir(root / "grimoire" / "training" / "t1" / tiny.CONFIG_FILE)
    import numpy as np
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    for epoch, loss in ((1, 0.2), (2, 0.3), (3, 0.25), (4, 0.4)):
        meta = {"epoch": str(epoch), "step": str(epoch * 4), "loss": str(loss)}
        path = out / f"t1-epoch-{epoch:04d}.safetensors"
        save_file({"w": np.full(4, epoch, np.float32)}, str(path), metadata=meta)
    (out / "notes.safetensors").write_bytes(b"a file a person put here")
    studio = root / "grimoire" / "studio.md"
    registered = out / "t1-epoch-0002.safetensors"
    studio.write_text(studio.read_text() + f"\n### LoRA: t1\n- **File**: {registered}\n")
    _TEMPLATE.append(root)
    return root


def _files(root: Path, rels: list[str]) -> dict[str, bytes]:
    return {r: (root / r).read_bytes() for r in rels}


def _protected(root: Path) -> list[str]:
    """The files the pack did not create (or must never lose): relative paths."""
    rels = [p.relative_to(root).as_posix() for p in (root / "ds").rglob("*") if p.is_file()]
    out = "grimoire/training/t1/output" if (root / "grimoire/training/t1/output").is_dir() else None
    rels += ["holiday.png", "train.log"]
    if out:
        rels += [f"{out}/notes.safetensors", f"{out}/t1-epoch-0002.safetensors"]
    return rels


def _run(args: list[str]) -> int:
    buf_out, buf_err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
        try:
            main(args)
        except SystemExit as exc:
            return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


def _manifests(root: Path) -> list[Path]:
    found = [
        m for m in root.rglob("manifest-*.json") if ".trainwright-caption-backup" not in str(m)
    ]
    return sorted(found, key=lambda m: m.name)


@st.composite
def commands(draw: st.DrawFn) -> list[str]:
    kind = draw(st.sampled_from(
        ["captions", "quarantine", "undo", "sheet", "curve", "prune", "set", "config", "touch"]
    ))  # fmt: skip
    if kind == "captions":
        args = ["captions", "apply", "ds"]
        if draw(st.booleans()):
            args += ["--trigger", draw(st.sampled_from(["zzq", "my style", "x,y", ""]))]
        if draw(st.booleans()):
            names = draw(st.lists(st.sampled_from(["a.png", "a.jpg", "b.jpg", "c", "zz.png"]),
                                  max_size=3))  # fmt: skip
            text = draw(st.text(alphabet="abc ,\n\u00e9", max_size=12))
            args += ["--from", json.dumps({n: text for n in names})]  # replaced by a file below
        if draw(st.booleans()):
            args.append("--replace")
        if len(args) == 3:
            args += ["--trigger", "zzq"]
        return args
    if kind == "quarantine":
        return ["dedup", "ds", "--workers", "1", "--quarantine", draw(st.sampled_from(QUARANTINES))]
    if kind == "undo":
        return ["dedup", "--undo", draw(st.sampled_from(["@latest", "@edited", "ds", "nope.json"]))]
    if kind == "sheet":
        return ["dedup", "ds", "--workers", "1", "--sheet", draw(st.sampled_from(TARGETS))]
    if kind == "curve":
        log = draw(st.sampled_from(["train.log", "ds/notes.md", "holiday.png"]))
        return ["monitor", "--log", log, "--curve", draw(st.sampled_from(TARGETS))]
    if kind == "prune":
        return ["checkpoints", "t1", "--keep", str(draw(st.integers(1, 3))), "--prune"]
    if kind == "set":
        value = draw(st.text(alphabet="az Z-_/.", min_size=1, max_size=10))
        key = draw(st.sampled_from(["Trigger word", "Dataset folder", "Description"]))
        return ["grimoire", "set", "intent", "--project", "t1", f"{key}={value}"]
    if kind == "config":
        return ["config", "--project", "t1", "--backend", "tiny", "--preset", "quick"]
    return ["@touch", draw(st.sampled_from(["1", "2", "3", "4"]))]


def _prepare(root: Path, args: list[str], step: int) -> list[str] | None:
    """Turn the drawn command into real arguments (files it names made inside root)."""
    if args[0] == "@touch":
        path = root / f"grimoire/training/t1/output/t1-epoch-000{args[1]}.safetensors"
        if path.exists():
            os.utime(path)
        return None
    if "--from" in args:
        i = args.index("--from")
        drafts = root / f"drafts-{step}.json"
        drafts.write_text(args[i + 1])
        args = [*args[:i + 1], drafts.name, *args[i + 2:]]  # fmt: skip
    if args[:2] == ["dedup", "--undo"]:
        manifests = _manifests(root)
        if args[2] == "@latest":
            if not manifests:
                return None
            args = [*args[:2], str(manifests[-1].relative_to(root))]
        elif args[2] == "@edited":
            if not manifests:
                return None
            data = json.loads(manifests[-1].read_text())
            edited = root / "q-edit" / manifests[-1].name
            for m in data.get("files", []):
                m["original"] = str(root / "holiday.png")
            edited.parent.mkdir(exist_ok=True)
            edited.write_text(json.dumps(data))
            args = [*args[:2], str(edited.relative_to(root))]
    return args


def _backed_up(root: Path, rel: str, data: bytes) -> bool:
    """Whether the old bytes of caption `rel` (under ds/) wait in a caption backup."""
    backups = root / "ds" / ".trainwright-caption-backup"
    inner = Path(rel).relative_to("ds")
    return any(
        (b / inner).is_file() and (b / inner).read_bytes() == data for b in backups.glob("*")
    )


@pytest.mark.slow
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(commands(), min_size=1, max_size=6))
def test_no_command_sequence_loses_a_persons_file(sequence: list[list[str]]) -> None:
    base = Path(tempfile.mkdtemp(prefix="no-loss-case-"))
    root = base / "project"
    template = _template()
    shutil.copytree(template, root, symlinks=True)
    for f in (root / "grimoire").rglob("*"):  # the records name absolute paths: the copy's own
        if f.suffix in (".md", ".yaml", ".json") and f.is_file():
            f.write_text(f.read_text().replace(str(template), str(root)))
    try:
        protected = _protected(root)
        before = _files(root, protected)
        with contextlib.chdir(root):
            for step, drawn in enumerate(sequence):
                args = _prepare(root, list(drawn), step)
                if args is not None:
                    _run(args)
            for manifest in reversed(_manifests(root)):  # what --undo reverses
                if "q-edit" not in manifest.parts:
                    _run(["dedup", "--undo", str(manifest)])
        lost = []
        for rel, data in before.items():
            path = root / rel
            now = path.read_bytes() if path.is_file() else None
            if now == data:
                continue
            if now is not None and rel.endswith(".txt") and _backed_up(root, rel, data):
                continue  # captions apply rewrote it, its old bytes kept in the backup
            lost.append(rel)
        assert not lost, f"{sequence}: lost or changed {lost}"
        intent = (root / "grimoire/training/t1/intent.md").read_text()
        assert PROSE in intent, f"{sequence}: intent.md lost the person's prose"
    finally:
        shutil.rmtree(base, ignore_errors=True)
