"""Issue 13, section 3: the data-loss cases found, each as the command a person would type.

Each test failed before its fix: a newer-by-date checkpoint outranking the newest by record, an
output written over its own input, a backup replaced by a second one, a kept image losing its
caption, an edited manifest moving files from outside the dataset, a corrupt run record read
as a fresh start.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from helpers import assert_one_line_error, run_cli
from support.tiny_project import make_project
from trainwright.backends import tiny
from trainwright.backends.tiny_model import lora
from trainwright.backends.tiny_model.model import TinyDenoiser
from trainwright.errors import TrainwrightError

# ------------------------------------------------------------------------------ helpers


def graphic(seed: int = 1, size: int = 384) -> Image.Image:
    """Flat shapes with hard edges: tiny as PNG, several times larger as a JPEG."""
    rng = random.Random(seed)
    im = Image.new("RGB", (size, size), (250, 250, 250))
    d = ImageDraw.Draw(im)
    for _ in range(50):
        x, y = rng.randrange(size), rng.randrange(size)
        w, h = rng.randrange(10, size // 4), rng.randrange(10, size // 4)
        colour = tuple(rng.randrange(256) for _ in range(3))
        d.rectangle((x, y, x + w, y + h), fill=colour, outline=(0, 0, 0))
    return im


def dataset(root: Path, pairs: int = 2) -> Path:
    """A folder of distinct pictures, each with a hand-written caption."""
    d = root / "ds"
    d.mkdir(parents=True)
    for i in range(pairs):
        graphic(seed=100 + i).save(d / f"img{i}.png")
        (d / f"img{i}.txt").write_text(f"hand-written caption {i}\n")
    return d


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def checkpoint(folder: Path, epoch: int, loss: float, name: str = "demo") -> Path:
    layers = lora.inject(TinyDenoiser(), rank=2, alpha=2)
    path = folder / f"{name}-epoch-{epoch:04d}.safetensors"
    folder.mkdir(parents=True, exist_ok=True)
    lora.save(path, layers, {"epoch": str(epoch), "step": str(epoch * 2), "loss": str(loss)})
    t = time.time() - 3600 + epoch
    os.utime(path, (t, t))
    return path


def trained_project(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny project with checkpoints for epochs 1-3 (epoch 1 the best loss); (root, folder)."""
    g = make_project(tmp_path)
    folder = tiny.checkpoint_dir(g.project_dir("demo") / tiny.CONFIG_FILE)
    for epoch, loss in ((1, 0.10), (2, 0.30), (3, 0.20)):
        checkpoint(folder, epoch, loss)
    return tmp_path, folder


def prune(root: Path, keep: int = 1) -> subprocess.CompletedProcess[str]:
    return run_cli("checkpoints", "demo", "--keep", str(keep), "--prune", "--json", cwd=root)


# ------------------------------------------------------------------ 1. checkpoints --prune


def test_prune_keeps_the_newest_by_record_not_by_file_date(tmp_path: Path) -> None:
    root, folder = trained_project(tmp_path)
    os.utime(folder / "demo-epoch-0002.safetensors")  # `touch` an older checkpoint
    proc = prune(root)
    assert proc.returncode == 0, proc.stderr
    left = sorted(p.name for p in folder.iterdir())
    assert "demo-epoch-0003.safetensors" in left  # the newest epoch survives
    assert "demo-epoch-0001.safetensors" in left  # the best loss survives
    assert "demo-epoch-0002.safetensors" not in left
    out = json.loads(proc.stdout)
    newest = [c for c in out["checkpoints"] if c["epoch"] == 3][0]
    assert "among the newest 1" in newest["keep_reasons"]


def test_prune_never_removes_the_registered_lora(tmp_path: Path) -> None:
    root, folder = trained_project(tmp_path)
    registered = folder / "demo-epoch-0002.safetensors"
    studio = root / "grimoire" / "studio.md"
    studio.write_text(
        studio.read_text()
        + f"\n### LoRA: demo\n- **File**: {registered}\n- **Trigger word**: exstyle\n"
        "- **Recommended weight**: 0.8\n"
    )
    proc = prune(root)
    assert proc.returncode == 0, proc.stderr
    assert registered.is_file()
    out = json.loads(proc.stdout)
    reasons = {Path(c["path"]).name: c["keep_reasons"] for c in out["checkpoints"]}
    assert any("studio.md" in r for r in reasons[registered.name])


def test_prune_never_removes_the_lora_named_in_eval_md(tmp_path: Path) -> None:
    root, folder = trained_project(tmp_path)
    named = folder / "demo-epoch-0002.safetensors"
    run_cli("grimoire", "set", "eval", "--project", "demo", f"LoRA file={named}", cwd=root)
    proc = prune(root)
    assert proc.returncode == 0, proc.stderr
    assert named.is_file()


def test_foreign_files_in_output_are_never_taken_for_checkpoints(tmp_path: Path) -> None:
    root, folder = trained_project(tmp_path)
    foreign = {
        "notes.safetensors": b"a person's file",
        "other-epoch-0001.safetensors": b"another run's file",
        "demo-final-copy.ckpt": b"a copy a person made",
    }
    for name, data in foreign.items():
        (folder / name).write_bytes(data)
        os.utime(folder / name, (1000, 1000))  # oldest by date: first to go under a date rule
    proc = prune(root)
    assert proc.returncode == 0, proc.stderr
    for name, data in foreign.items():
        assert (folder / name).read_bytes() == data
    out = json.loads(proc.stdout)
    listed = {Path(c["path"]).name for c in out["checkpoints"]}
    assert not listed & set(foreign)
    assert sorted(Path(p).name for p in out["ignored"]) == sorted(foreign)


# ------------------------------------------------------- 2 and 4. outputs over inputs


def test_dedup_sheet_never_replaces_a_dataset_image(tmp_path: Path) -> None:
    d = dataset(tmp_path)
    before = files_of(d)
    for target in ("ds/img0.png", "./ds/img0.png", "ds/../ds/img0.png", "ds/new-sheet.png"):
        proc = run_cli("dedup", "ds", "--sheet", target, cwd=tmp_path)
        assert_one_line_error(proc, "--sheet")
        assert files_of(d) == before


def test_dedup_sheet_through_a_symlink_to_an_image(tmp_path: Path) -> None:
    d = dataset(tmp_path)
    before = files_of(d)
    (tmp_path / "sheet.png").symlink_to(d / "img1.png")
    proc = run_cli("dedup", "ds", "--sheet", "sheet.png", cwd=tmp_path)
    assert_one_line_error(proc, "--sheet")
    assert files_of(d) == before


def test_dedup_sheet_to_a_new_path_and_again_is_fine(tmp_path: Path) -> None:
    dataset(tmp_path)
    for _ in range(2):  # the second run replaces the sheet the first one wrote
        proc = run_cli("dedup", "ds", "--sheet", "sheet.png", cwd=tmp_path)
        assert proc.returncode in (0, 1), proc.stderr
        assert Image.open(tmp_path / "sheet.png").format == "PNG"


def test_dedup_sheet_refuses_a_file_the_pack_did_not_write(tmp_path: Path) -> None:
    dataset(tmp_path)
    mine = tmp_path / "holiday.png"
    graphic(seed=7).save(mine)
    before = mine.read_bytes()
    proc = run_cli("dedup", "ds", "--sheet", "holiday.png", cwd=tmp_path)
    assert_one_line_error(proc, "already exists")
    assert mine.read_bytes() == before


def test_monitor_curve_never_replaces_the_log(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("".join(f"epoch=1 step={s} loss={1 / s:.4f}\n" for s in range(1, 30)))
    before = log.read_bytes()
    (tmp_path / "link.png").symlink_to(log)
    for target in ("train.log", "./train.log", "link.png"):
        proc = run_cli("monitor", "--log", "train.log", "--curve", target, cwd=tmp_path)
        assert_one_line_error(proc, "--curve")
        assert log.read_bytes() == before


# -------------------------------------------------------------------- 3. backups


def test_captions_shared_by_two_images_keep_the_hand_written_text(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    graphic(seed=1).save(d / "x.png")
    graphic(seed=1).save(d / "x.jpg", quality=90)
    (d / "x.txt").write_text("my own careful caption\n")
    drafts = tmp_path / "drafts.json"
    drafts.write_text(json.dumps({"x.png": "draft for the png", "x.jpg": "draft for the jpg"}))
    proc = run_cli("captions", "apply", "ds", "--from", str(drafts), "--replace", cwd=tmp_path)
    assert proc.returncode in (0, 1, 2)
    texts = [p.read_text() for p in d.rglob("*.txt")]
    assert "my own careful caption\n" in texts  # in place or in a backup, never gone


def test_two_applies_in_one_second_keep_both_backups(tmp_path: Path) -> None:
    from trainwright.dataset import captions

    d = dataset(tmp_path, pairs=1)
    captions.apply(d, drafts={"img0.png": "second version"}, replace=True)
    captions.apply(d, drafts={"img0.png": "third version"}, replace=True)
    backups = sorted((d / captions.BACKUP_DIR).rglob("img0.txt"))
    assert sorted(p.read_text() for p in backups) == ["hand-written caption 0\n", "second version"]


def test_backup_folders_are_never_reused(tmp_path: Path) -> None:
    from trainwright.state.safe_paths import new_backup_dir, new_backup_file

    first, second = new_backup_dir(tmp_path, "s"), new_backup_dir(tmp_path, "s")
    assert first != second and first.is_dir() and second.is_dir()
    target = tmp_path / "run.yaml"
    a = new_backup_file(target, "s", b"one")
    b = new_backup_file(target, "s", b"two")
    assert a != b and a.read_bytes() == b"one" and b.read_bytes() == b"two"


def test_runs_configs_force_twice_in_one_second_keeps_every_version(tmp_path: Path) -> None:
    from trainwright.cluster.configs import _write

    path = tmp_path / "config.yaml"
    path.write_text("v1 by hand\n")
    _write(path, "v2\n", True, False)
    path.write_text("v3 by hand\n")
    _write(path, "v4\n", True, False)
    kept = sorted(p.read_text() for p in tmp_path.glob("config.yaml.*.bak"))
    assert kept == ["v1 by hand\n", "v3 by hand\n"]


# ------------------------------------------------------------ 5. quarantine and keeper


def test_a_kept_image_keeps_its_caption(tmp_path: Path) -> None:
    from trainwright.dataset import quarantine as q

    d = tmp_path / "ds"
    d.mkdir()
    graphic().save(d / "k.png")
    graphic().save(d / "k.jpg", quality=90)
    (d / "k.txt").write_text("the caption of both\n")
    man = q.quarantine(d, tmp_path / "q", [{"keep": "k.jpg", "drop": ["k.png"]}])
    assert man["moved"] == 1
    assert (d / "k.txt").read_text() == "the caption of both\n"
    assert (d / "k.jpg").is_file() and not (d / "k.png").exists()


def test_dedup_keeps_the_lossless_png_over_a_quality_70_jpeg(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    im = graphic()
    im.save(d / "a.png")
    im.save(d / "b.jpg", quality=70)
    assert (d / "b.jpg").stat().st_size > (d / "a.png").stat().st_size  # the old rule's trap
    proc = run_cli("dedup", "ds", "--json", cwd=tmp_path)
    clusters = json.loads(proc.stdout)["clusters"]
    assert [c["keep"] for c in clusters] == ["a.png"], clusters
    assert "lossless" in clusters[0]["reason"]


def test_among_jpegs_the_higher_quality_is_kept(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    im = graphic()
    im.save(d / "q70.jpg", quality=70, subsampling=0)  # 4:4:4: more bytes than the q85 below
    im.save(d / "q85.jpg", quality=85, subsampling=2)
    proc = run_cli("dedup", "ds", "--json", cwd=tmp_path)
    clusters = json.loads(proc.stdout)["clusters"]
    assert [c["keep"] for c in clusters] == ["q85.jpg"], clusters


def test_a_larger_lossy_copy_still_beats_a_small_lossless_one(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    im = graphic(size=512)
    im.resize((256, 256)).save(d / "small.png")
    im.save(d / "big.jpg", quality=90)
    proc = run_cli("dedup", "ds", "--json", cwd=tmp_path)
    clusters = json.loads(proc.stdout)["clusters"]
    assert [c["keep"] for c in clusters] == ["big.jpg"], clusters


# ------------------------------------------------------------------- 6. undo's paths


def quarantined(tmp_path: Path) -> tuple[Path, Path, Path]:
    """ds/ with two copies of one picture, one quarantined to q/; (dataset, q, manifest)."""
    d = tmp_path / "ds"
    d.mkdir()
    graphic().save(d / "a.png")
    graphic().save(d / "b.png")
    proc = run_cli("dedup", "ds", "--quarantine", "q", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return d, tmp_path / "q", Path(json.loads(proc.stdout)["quarantine"]["manifest"])


def test_undo_refuses_an_edited_manifest_that_reaches_outside(tmp_path: Path) -> None:
    d, q, manifest = quarantined(tmp_path)
    outside = tmp_path / "private.txt"
    outside.write_text("not the dataset's\n")
    data = json.loads(manifest.read_text())
    import hashlib

    data["files"].append(
        {
            "original": str(d / "stolen.txt"),
            "quarantined": str(outside),
            "sha256": hashlib.sha256(outside.read_bytes()).hexdigest(),
        }
    )
    manifest.write_text(json.dumps(data))
    before = files_of(q)
    proc = run_cli("dedup", "--undo", str(manifest), cwd=tmp_path)
    assert_one_line_error(proc, "outside")
    assert outside.read_text() == "not the dataset's\n"
    assert not (d / "stolen.txt").exists() and files_of(q) == before  # nothing moved at all


def test_undo_refuses_to_create_folders_outside_the_dataset(tmp_path: Path) -> None:
    d, q, manifest = quarantined(tmp_path)
    data = json.loads(manifest.read_text())
    data["files"][0]["original"] = str(d / ".." / "elsewhere" / "deep" / "x.png")
    manifest.write_text(json.dumps(data))
    proc = run_cli("dedup", "--undo", str(manifest), cwd=tmp_path)
    assert_one_line_error(proc, "outside")
    assert not (tmp_path / "elsewhere").exists()


def test_undo_refuses_a_path_that_escapes_through_a_symlink(tmp_path: Path) -> None:
    d, q, manifest = quarantined(tmp_path)
    (tmp_path / "away").mkdir()
    (d / "sub").symlink_to(tmp_path / "away")
    data = json.loads(manifest.read_text())
    data["files"][0]["original"] = str(d / "sub" / "x.png")
    manifest.write_text(json.dumps(data))
    proc = run_cli("dedup", "--undo", str(manifest), cwd=tmp_path)
    assert_one_line_error(proc, "outside")
    assert list((tmp_path / "away").iterdir()) == []


def test_undo_of_an_honest_manifest_restores_byte_for_byte(tmp_path: Path) -> None:
    d, _, manifest = quarantined(tmp_path)
    proc = run_cli("dedup", "--undo", str(manifest), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (d / "a.png").read_bytes() == (d / "b.png").read_bytes()


# ------------------------------------------------------------- 7. a corrupt run record


def test_a_truncated_run_record_is_a_refusal_not_a_fresh_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainwright.run import launch

    g = make_project(tmp_path)
    folder = g.project_dir("demo")
    out = tiny.checkpoint_dir(folder / tiny.CONFIG_FILE)
    lora_file = checkpoint(out, 2, 0.1)
    record = folder / "run.json"
    record.write_text(json.dumps({"status": "COMPLETE", "pid": 1})[:17])  # cut off mid-write
    monkeypatch.setattr(launch, "blocking_gates", lambda *_: [])

    def no_start(*_a: object, **_k: object) -> None:
        raise AssertionError("a supervisor was started on a corrupt run record")

    monkeypatch.setattr(launch.subprocess, "Popen", no_start)
    with pytest.raises(TrainwrightError, match="run.json"):
        launch.start(g, "demo")
    assert lora_file.is_file() and out.is_dir()


def test_launch_detach_on_a_corrupt_run_record_says_which_file_and_how(tmp_path: Path) -> None:
    g = make_project(tmp_path)
    record = g.project_dir("demo") / "run.json"
    record.write_text('{"status": "COMPL')
    proc = run_cli("launch", "demo", "--detach", cwd=tmp_path)
    assert_one_line_error(proc, "run.json")
    assert record.read_text() == '{"status": "COMPL'
