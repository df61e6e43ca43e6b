"""The content hash gates bind to: stable, and changed by any change that matters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import run_cli
from trainwright.errors import TrainwrightError
from trainwright.state.content_hash import content_hash


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    d = tmp_path / "ds"
    (d / "sub").mkdir(parents=True)
    (d / "a.png").write_bytes(b"\x89PNG fake a")
    (d / "a.txt").write_text("mystyle, a cat")
    (d / "sub" / "b.png").write_bytes(b"\x89PNG fake b")
    return d


def test_same_content_same_digest(dataset: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    assert content_hash(dataset) == content_hash(copy)
    assert content_hash(dataset).files == 3


@pytest.mark.parametrize("change", ["edit caption", "rename", "add file", "remove file"])
def test_any_change_changes_digest(dataset: Path, change: str) -> None:
    before = content_hash(dataset).digest
    if change == "edit caption":
        (dataset / "a.txt").write_text("mystyle, a dog")
    elif change == "rename":
        (dataset / "a.png").rename(dataset / "c.png")
    elif change == "add file":
        (dataset / "new.png").write_bytes(b"x")
    else:
        (dataset / "sub" / "b.png").unlink()
    assert content_hash(dataset).digest != before


def test_hidden_files_do_not_count(dataset: Path) -> None:
    before = content_hash(dataset).digest
    (dataset / ".DS_Store").write_bytes(b"junk")
    (dataset / ".quarantine").mkdir()
    (dataset / ".quarantine" / "dup.png").write_bytes(b"dup")
    assert content_hash(dataset).digest == before


def test_cli_hash_json(dataset: Path) -> None:
    proc = run_cli("hash", str(dataset), "--json")
    data = json.loads(proc.stdout)
    assert data["digest"] == content_hash(dataset).digest
    assert data["digest"].startswith("sha256:") and len(data["digest"]) == 7 + 64


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TrainwrightError, match="no such file"):
        content_hash(tmp_path / "nope")


def test_dangling_and_looping_links_are_hashed_not_fatal(dataset: Path) -> None:
    (dataset / "loop1.png").symlink_to("loop2.png")
    (dataset / "loop2.png").symlink_to("loop1.png")
    (dataset / "gone.png").symlink_to("/nonexistent/file.png")
    first = content_hash(dataset)
    assert first.files == 6
    (dataset / "gone.png").unlink()
    (dataset / "gone.png").symlink_to("/elsewhere/file.png")
    assert content_hash(dataset).digest != first.digest


def test_unreadable_regular_file_is_an_error(dataset: Path, tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their permissions")
    (dataset / "a.png").chmod(0)
    with pytest.raises(TrainwrightError, match="cannot be read"):
        content_hash(dataset)
