"""`trainwright dedup` on real photographs with transformed copies; quarantine and exact undo."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from helpers import assert_one_line_error, run_cli
from trainwright.dataset.dedup import find_duplicates, keeper
from trainwright.dataset.nearcopies import TRANSFORMS

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry")


def _originals() -> dict[str, Image.Image]:
    data = pytest.importorskip("skimage.data")
    return {n: Image.fromarray(getattr(data, n)()).convert("RGB") for n in PHOTOS}


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    d = tmp_path_factory.mktemp("photos")
    groups = {}
    for name, im in _originals().items():
        im.save(d / f"{name}__original.png")
        groups[f"{name}__original.png"] = name
        for t, fn in TRANSFORMS.items():
            fn(im).save(d / f"{name}__{t}.jpg", quality=90)
            groups[f"{name}__{t}.jpg"] = name
    return d, groups


def _pairs(res) -> set[tuple[str, str]]:
    names = [Path(it.path).name for it in res.items]
    return {tuple(sorted((names[p.a], names[p.b]))) for p in res.near}


def _truth(groups: dict[str, str]) -> set[tuple[str, str]]:
    return {(a, b) for a, b in itertools.combinations(sorted(groups), 2) if groups[a] == groups[b]}


def test_combined_finds_the_transformed_copies_that_phash_misses(photo_set) -> None:
    d, groups = photo_set
    paths = sorted(d.iterdir())
    truth = _truth(groups)
    combined = _pairs(find_duplicates(paths, "combined", workers=2))
    phash = _pairs(find_duplicates(paths, "phash", workers=2))
    rc, pc = len(combined & truth) / len(truth), len(combined & truth) / len(combined)
    rp = len(phash & truth) / len(truth)
    assert rc >= 0.85 and pc >= 0.95, (rc, pc)
    assert rp < 0.7 and rc > rp + 0.2
    for t in ("crop", "padding", "watermark"):  # the copies a plain hash misses
        found = sum(
            tuple(sorted((f"{g}__original.png", f"{g}__{t}.jpg"))) in combined for g in PHOTOS
        )
        assert found >= len(PHOTOS) - 1, t


def test_distinct_photographs_are_not_duplicates(photo_set) -> None:
    d, _ = photo_set
    res = find_duplicates(sorted(d.glob("*__original.png")), "combined")
    assert res.near == [] and res.clusters == []


def test_exact_copies_and_the_keeper(tmp_path: Path) -> None:
    ims = _originals()
    big = ims["coffee"]
    big.save(tmp_path / "a_big.png")
    big.resize((300, 200)).save(tmp_path / "b_small.png")
    shutil.copy(tmp_path / "a_big.png", tmp_path / "c_copy.png")
    ims["rocket"].save(tmp_path / "other.png")
    res = find_duplicates(sorted(tmp_path.iterdir()), "phash")
    names = [Path(it.path).name for it in res.items]
    assert [[names[i] for i in g] for g in res.exact] == [["a_big.png", "c_copy.png"]]
    assert len(res.clusters) == 1
    k, why = keeper(res.items, res.clusters[0])
    assert names[k] == "a_big.png" and "largest resolution" in why


def test_cli_json_sheet_quarantine_and_exact_undo(photo_set, tmp_path: Path) -> None:
    src, _ = photo_set
    d = tmp_path / "ds"
    d.mkdir()
    for name in ("astronaut__original.png", "astronaut__crop.jpg", "astronaut__jpeg.jpg"):
        shutil.copy(src / name, d / name)
        (d / name).with_suffix(".txt").write_text("mystyle, a person")
    shutil.copy(src / "coffee__original.png", d / "coffee.png")

    def digests() -> dict[str, str]:
        return {
            p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*"))
            if p.is_file()
        }

    before = digests()
    sheet = tmp_path / "dups.png"
    proc = run_cli("dedup", str(d), "--json", "--sheet", str(sheet))
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) >= {"exact", "near", "clusters"}
    assert out["clusters"] == [
        {
            "keep": "astronaut__original.png",
            "drop": ["astronaut__crop.jpg", "astronaut__jpeg.jpg"],
            "reason": out["clusters"][0]["reason"],
        }
    ]
    assert all(set(p) >= {"a", "b", "distance"} for p in out["near"])
    with Image.open(sheet) as im:
        assert im.format == "PNG" and im.width > 600
    assert digests() == before  # looking changes nothing

    q = tmp_path / "quarantine"
    proc = run_cli("dedup", str(d), "--quarantine", str(q), "--json")
    assert proc.returncode == 0, proc.stderr
    moved = json.loads(proc.stdout)["quarantine"]
    assert moved["moved"] == 4  # two images and their captions
    assert sorted(p.name for p in d.iterdir()) == [
        "astronaut__original.png",
        "astronaut__original.txt",
        "coffee.png",
    ]
    manifest = json.loads(Path(moved["manifest"]).read_text())
    assert {Path(f["original"]).name for f in manifest["files"]} >= {"astronaut__crop.jpg"}
    assert all(len(f["sha256"]) == 64 for f in manifest["files"])
    proc = run_cli("dedup", "--undo", moved["manifest"])
    assert proc.returncode == 0, proc.stderr
    assert "restored 4 files" in proc.stdout
    assert digests() == before
    again = run_cli("dedup", "--undo", moved["manifest"], "--json")
    assert again.returncode == 0 and len(json.loads(again.stdout)["already_in_place"]) == 4


def test_undo_refuses_to_overwrite_a_changed_file(photo_set, tmp_path: Path) -> None:
    src, _ = photo_set
    d = tmp_path / "ds"
    d.mkdir()
    shutil.copy(src / "rocket__original.png", d / "r1.png")
    shutil.copy(src / "rocket__original.png", d / "r2.png")
    q = tmp_path / "q"
    proc = run_cli("dedup", str(d), "--method", "phash", "--quarantine", str(q), "--json")
    man = json.loads(proc.stdout)["quarantine"]["manifest"]
    (d / "r2.png").write_bytes(b"something new")
    proc = run_cli("dedup", "--undo", man)
    assert proc.returncode == 1 and "exists and differs" in proc.stdout
    assert (d / "r2.png").read_bytes() == b"something new"


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["dedup"], "give the dataset FOLDER"),
        (["dedup", "/no/such/dir"], "no such folder"),
        (["dedup", "DIR", "--quarantine", "DIR/inside"], "inside the dataset"),
        (["dedup", "--undo", "/no/manifest.json"], "no such manifest"),
        (["dedup", "--undo", "BOGUS"], "not a trainwright quarantine manifest"),
        (["dedup", "DIR", "--undo", "BOGUS"], "--undo takes only the manifest"),
        (["dedup", "DIR", "--threshold", "99"], "--threshold"),
        (["dedup", "DIR", "--method", "sift"], "--method"),
    ],
)
def test_bad_dedup_usage(tmp_path: Path, args: list[str], fragment: str) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"hello": 1}')
    args = [a.replace("DIR", str(d)).replace("BOGUS", str(bogus)) for a in args]
    assert_one_line_error(run_cli(*args), fragment)
    assert list(d.iterdir()) == []


def test_hidden_quarantine_inside_the_dataset_is_allowed(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    im = _originals()["chelsea"]
    im.save(d / "a.png")
    im.save(d / "b.png")
    proc = run_cli("dedup", str(d), "--quarantine", str(d / ".dups"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in d.iterdir()) == [".dups", "a.png"]


def test_odd_file_names_are_quarantined_and_restored(tmp_path: Path) -> None:
    import os

    d = tmp_path / "ds"
    d.mkdir()
    im = _originals()["rocket"]
    im.save(d / "rocket.png")
    odd = bytes(d) + b"/copy-\xe9-\xf0\x9f\x8e\xa8.png"  # Latin-1 byte, then an emoji
    with open(odd, "wb") as fh:
        fh.write((d / "rocket.png").read_bytes())
    im.resize((200, 125)).save(d / "caf\u00e9-\U0001f680.png")
    q = tmp_path / "q"
    proc = run_cli("dedup", str(d), "--quarantine", str(q), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["clusters"][0]["keep"] in ("rocket.png", "copy-\\xe9-\U0001f3a8.png")
    assert len(os.listdir(bytes(d))) == 1
    proc = run_cli("dedup", "--undo", out["quarantine"]["manifest"])
    assert proc.returncode == 0, proc.stderr
    assert os.path.exists(odd) and len(os.listdir(bytes(d))) == 3
