"""`trainwright captions check|apply|sample`: coverage, trigger, encoding, style, apply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from helpers import assert_one_line_error, run_cli
from trainwright.dataset.captions import apply, check, detect_format, has_trigger, with_trigger


def _img(path: Path, colour: tuple = (200, 50, 50)) -> None:
    im = Image.new("RGB", (128, 96), colour)
    im.paste((colour[2], colour[0], colour[1]), (0, 0, 40, 96))
    im.save(path)


@pytest.fixture()
def ds(tmp_path: Path) -> Path:
    d = tmp_path / "ds"
    d.mkdir()
    for i, name in enumerate(("a", "b", "c", "d", "e", "f")):
        _img(d / f"{name}.png", (40 * i, 255 - 40 * i, 90))
    (d / "a.txt").write_text("mystyle, 1girl, solo, red hair, forest, oil painting")
    (d / "b.txt").write_text("1girl, standing, blue sky, watercolor")  # no trigger
    (d / "c.txt").write_text("   \n")  # empty
    (d / "d.txt").write_bytes("mystyle, caf\xe9".encode("latin-1"))  # not UTF-8
    (d / "e.txt").write_text("mystyle, " + "a very long caption with many words " * 20)
    # f.png has no caption; orphan.txt has no image
    (d / "orphan.txt").write_text("mystyle, lost")
    return d


def test_check_finds_every_problem(ds: Path) -> None:
    rep = check(ds, ".txt", "mystyle", "sdxl")
    assert rep.images == 6 and rep.captioned == 4  # c (empty) counts as a file; d unreadable text
    by = {f["image"]: f["issues"] for f in rep.files}
    assert by["a.png"] == []
    assert by["b.png"] == ["missing-trigger"]
    assert by["c.png"] == ["empty"]
    assert by["d.png"] == ["not-utf8"]
    assert "too-long" in by["e.png"]
    assert by["f.png"] == ["missing"]
    assert rep.orphans == ["orphan.txt"]


def test_flux_wants_prose_and_reads_longer_captions(ds: Path) -> None:
    rep = check(ds, ".txt", "mystyle", "flux1-dev")
    by = {f["image"]: f["issues"] for f in rep.files}
    assert "format-mismatch" in by["a.png"] and "too-long" not in by["e.png"]
    assert rep.expected_format == "natural"


def test_format_detection() -> None:
    assert detect_format("1girl, solo, red hair, looking at viewer, forest") == "tags"
    assert (
        detect_format("An oil painting of a woman with red hair standing in a dark forest.")
        == "natural"
    )
    assert detect_format("") == "empty"


def test_trigger_is_whole_word_and_prepended_once() -> None:
    assert has_trigger("mystyle, a cat", "mystyle")
    assert not has_trigger("mystyles, a cat", "mystyle")
    assert not has_trigger("not-mystyle cat", "mystyle")
    assert with_trigger("a cat", "mystyle") == "mystyle, a cat"
    assert with_trigger(with_trigger("a cat", "mystyle"), "mystyle") == "mystyle, a cat"


def test_apply_trigger_is_idempotent_and_keeps_a_backup(ds: Path) -> None:
    res = apply(ds, ".txt", "mystyle")
    assert res["trigger_added"] == ["b.txt", "c.txt"]
    assert (ds / "b.txt").read_text() == "mystyle, 1girl, standing, blue sky, watercolor"
    assert any("d.txt" in k for k in res["kept"])  # not UTF-8: left alone
    backups = list((ds / ".trainwright-caption-backup").rglob("b.txt"))
    assert backups and backups[0].read_text() == "1girl, standing, blue sky, watercolor"
    again = apply(ds, ".txt", "mystyle")
    assert again["written"] == [] and again["trigger_added"] == []


def test_apply_drafts_without_overwriting(ds: Path, tmp_path: Path) -> None:
    drafts = tmp_path / "drafts.json"
    drafts.write_text(json.dumps({"f.png": "oil painting of a field", "a": "something else"}))
    proc = run_cli("captions", "apply", str(ds), "--from", str(drafts), "--trigger", "mystyle")
    assert proc.returncode == 0, proc.stderr
    assert (ds / "f.txt").read_text() == "mystyle, oil painting of a field"
    assert (ds / "a.txt").read_text().startswith("mystyle, 1girl")  # differs: kept
    assert "kept a.txt" in proc.stdout
    proc = run_cli(
        "captions", "apply", str(ds), "--from", str(drafts), "--replace", "--trigger", "mystyle",
        "--json",
    )  # fmt: skip
    assert json.loads(proc.stdout)["written"] == ["a.txt"]
    assert (ds / "a.txt").read_text() == "mystyle, something else"


def test_dry_run_writes_nothing(ds: Path) -> None:
    before = {p.name: p.read_bytes() for p in ds.iterdir() if p.is_file()}
    proc = run_cli("captions", "apply", str(ds), "--trigger", "mystyle", "--dry-run", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["written"]
    assert {p.name: p.read_bytes() for p in ds.iterdir() if p.is_file()} == before


def test_cli_check_says_kohya_uses_caption(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    _img(d / "x.png")
    (d / "x.caption").write_text("mystyle, a thing")
    proc = run_cli("captions", "check", str(d), "--trigger", "mystyle")
    assert proc.returncode == 1
    assert "0 of 1 images have a .txt caption" in proc.stdout
    assert "kohya defaults to .caption" in proc.stdout  # from the kohya backend's CAPTION_EXTENSION
    proc = run_cli("captions", "check", str(d), "--ext", ".caption", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["coverage"] == 1.0


def test_no_images_and_500_captions(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    for i in range(500):
        (d / f"{i}.txt").write_text("a caption")
    proc = run_cli("captions", "check", str(d), "--json")
    data = json.loads(proc.stdout)
    assert proc.returncode == 1 and data["images"] == 0 and len(data["orphans"]) == 500
    proc = run_cli("captions", "check", str(d))
    assert "no images" in proc.stdout


def test_sample_picks_varied_images(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    for i in range(4):
        _img(d / f"red{i}.png", (250, 10 + i, 10))
    _img(d / "blue.png", (10, 10, 250))
    _img(d / "green.png", (10, 250, 10))
    proc = run_cli("captions", "sample", str(d), "3", "--json")
    picks = json.loads(proc.stdout)["sample"]
    assert len(picks) == 3 and {"blue.png", "green.png"} <= set(picks)


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["captions", "apply", "DIR"], "nothing to apply"),
        (["captions", "apply", "DIR", "--trigger", "two words"], "one word"),
        (["captions", "apply", "DIR", "--from", "NOPE"], "no such file"),
        (["captions", "apply", "DIR", "--from", "BAD"], "not a JSON file"),
        (["captions", "apply", "DIR", "--from", "UNKNOWN"], "name no image"),
        (["captions", "check", "/no/such"], "no such folder"),
        (["captions", "sample", "DIR", "0"], "N"),
    ],
)
def test_bad_caption_usage(ds: Path, tmp_path: Path, args: list[str], fragment: str) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "unknown.json").write_text('{"zzz.png": "x"}')
    sub = {
        "DIR": str(ds),
        "NOPE": str(tmp_path / "nope.json"),
        "BAD": str(tmp_path / "bad.json"),
        "UNKNOWN": str(tmp_path / "unknown.json"),
    }
    before = {p.name: p.read_bytes() for p in ds.iterdir() if p.is_file()}
    assert_one_line_error(run_cli(*[sub.get(a, a) for a in args]), fragment)
    assert {p.name: p.read_bytes() for p in ds.iterdir() if p.is_file()} == before
