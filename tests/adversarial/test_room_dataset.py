"""The dataset room: audit, dedup, captions, curate, hash and Gate 1 against bad files, hostile
names, escaping paths and folders too big or too deep."""

from __future__ import annotations

import struct
import zlib

import pytest
from harness import Case, run_case
from room_kit import absent, dataset, json_out, params, png, said, training_project, write


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a decompression bomb's first bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", 0)
        + b"IEND"
        + struct.pack(">I", zlib.crc32(b"IEND"))
    )


def _truncated(p):
    png(p / "ds/a.png")
    png(p / "ds/b.png", color=(10, 200, 10))
    data = (p / "ds/a.png").read_bytes()
    (p / "ds/a.png").write_bytes(data[: len(data) // 2])


def _pair(p, *names):
    for i, n in enumerate(names):
        png(p / "ds" / n, color=(40 * i % 255, 100, 30))


def _deep(p):
    d = p / "ds"
    for i in range(120):
        d = d / f"d{i}"
    png(d / "deep.png")


def _many(p):
    png(p / "ds/real.png")
    for i in range(400):
        write(p / f"ds/empty{i:03}.png", b"")


def _link_out(p):
    (p / "ds").mkdir()
    png(p / "ds/a.png")
    (p / "ds/out.png").symlink_to("/etc/hostname")


def _loop(p):
    png(p / "ds/a.png")
    (p / "ds/loop").symlink_to(p / "ds")


def _nonutf8_name(p):
    png(p / "ds/a.png")
    png(p / "ds" / "b.png")
    import os

    os.rename(p / "ds/b.png", bytes(p / "ds") + b"/\xff\xfe.png")


def _captions_nonutf8(p):
    dataset(p)
    (p / "ds/painting_00.txt").write_bytes(b"exstyle, caf\xe9 \xff\xfe")


def _drafts(text):
    def setup(p):
        dataset(p)
        write(p / "drafts.json", text)

    return setup


def _gate_missing_folder(p):
    training_project(p)
    import shutil

    shutil.rmtree(p / "ds")


def _gate_all_corrupt(p):
    training_project(p)
    for img in (p / "ds").glob("*.png"):
        img.write_bytes(b"not a picture at all")


def _gate_folder_is_file(p):
    training_project(p)
    import shutil

    shutil.rmtree(p / "ds")
    write(p / "ds", "a file, not a folder\n")


CASES = [
    Case(
        "audit-truncated-png",
        "dataset",
        "bad-file",
        "refused",
        ["audit", "ds"],
        setup=_truncated,
        check=said("a.png"),
    ),
    Case(
        "audit-empty-file",
        "dataset",
        "bad-file",
        "refused",
        ["audit", "ds"],
        setup=lambda p: (png(p / "ds/ok.png"), write(p / "ds/z.jpg", b"")) and None,
        check=said("z.jpg"),
    ),
    Case(
        "audit-text-as-png",
        "dataset",
        "bad-file",
        "refused",
        ["audit", "ds"],
        setup=lambda p: (png(p / "ds/ok.png"), write(p / "ds/t.png", "hello\n")) and None,
        check=said("t.png"),
    ),
    Case(
        "audit-bomb-header",
        "dataset",
        "resource-exhaustion",
        "refused",
        ["audit", "ds"],
        setup=lambda p: (
            (png(p / "ds/ok.png"), write(p / "ds/bomb.png", _png_header(200000, 200000))) and None
        ),
        timeout=20,
        check=said("bomb.png"),
    ),
    Case(
        "audit-huge-real-dims",
        "dataset",
        "resource-exhaustion",
        "correct",
        ["audit", "ds"],
        setup=lambda p: png(p / "ds/wide.png", size=(20000, 4)) and None,
        timeout=20,
        check=said("wide.png"),
    ),
    Case(
        "audit-many-empty-files",
        "dataset",
        "resource-exhaustion",
        "refused",
        ["audit", "ds"],
        setup=_many,
        timeout=30,
        check=said("400"),
    ),
    Case(
        "audit-deep-folders",
        "dataset",
        "resource-exhaustion",
        "correct",
        ["audit", "ds"],
        setup=_deep,
        exit=None,
        timeout=20,
        check=said("1 image"),
    ),
    Case(
        "audit-symlink-out",
        "dataset",
        "path-escape",
        "refused",
        ["audit", "ds"],
        setup=_link_out,
        check=said("out.png"),
    ),
    Case(
        "audit-symlink-loop",
        "dataset",
        "path-escape",
        "correct",
        ["audit", "ds"],
        setup=_loop,
        exit=None,
        timeout=20,
    ),
    Case(
        "audit-nonutf8-name",
        "dataset",
        "hostile-name",
        "correct",
        ["audit", "ds", "--json"],
        setup=_nonutf8_name,
        exit=None,
        check=json_out(),
    ),
    Case(
        "audit-newline-name",
        "dataset",
        "hostile-name",
        "correct",
        ["audit", "ds"],
        setup=lambda p: _pair(p, "a\nb.png", "c.png"),
        exit=None,
        check=said("2 images"),
    ),
    Case(
        "audit-dash-folder",
        "dataset",
        "hostile-name",
        "correct",
        ["audit", "--", "-rf"],
        setup=lambda p: png(p / "-rf/a.png") and None,
        exit=None,
        check=said("1 image"),
    ),
    Case(
        "audit-shell-name",
        "dataset",
        "hostile-name",
        "correct",
        ["audit", "ds"],
        setup=lambda p: _pair(p, "$(touch pwned).png", "`touch pwned2`.png"),
        exit=None,
        check=absent("pwned", "pwned2", "ds/pwned"),
    ),
    Case(
        "audit-folder-is-file",
        "dataset",
        "bad-file",
        "clear-error",
        ["audit", "ds/a.png"],
        setup=lambda p: png(p / "ds/a.png") and None,
    ),
    Case(
        "audit-absolute-missing",
        "dataset",
        "path-escape",
        "clear-error",
        ["audit", "/no/such/folder/anywhere"],
    ),
    Case(
        "audit-workers-zero",
        "dataset",
        "resource-exhaustion",
        "clear-error",
        ["audit", "ds", "--workers", "0"],
        setup=lambda p: png(p / "ds/a.png") and None,
    ),
    Case(
        "audit-workers-negative",
        "dataset",
        "resource-exhaustion",
        "clear-error",
        ["audit", "ds", "--workers", "-3"],
        setup=lambda p: png(p / "ds/a.png") and None,
    ),
    Case(
        "audit-project-missing",
        "dataset",
        "corrupt-state",
        "clear-error",
        ["audit", "ds", "--project", "nope"],
        setup=lambda p: png(p / "ds/a.png") and None,
    ),
    Case(
        "dedup-all-corrupt",
        "dataset",
        "bad-file",
        "correct",
        ["dedup", "ds"],
        setup=lambda p: (write(p / "ds/a.png", "x"), write(p / "ds/b.png", "y")) and None,
        exit=None,
    ),
    Case(
        "dedup-undo-garbage",
        "dataset",
        "bad-file",
        "clear-error",
        ["dedup", "--undo", "m.json"],
        setup=lambda p: write(p / "m.json", b"\x00\xff{[") and None,
    ),
    Case(
        "dedup-undo-empty",
        "dataset",
        "bad-file",
        "clear-error",
        ["dedup", "--undo", "m.json"],
        setup=lambda p: write(p / "m.json", "") and None,
    ),
    Case(
        "dedup-undo-list",
        "dataset",
        "bad-file",
        "clear-error",
        ["dedup", "--undo", "m.json"],
        setup=lambda p: write(p / "m.json", "[1, 2]") and None,
    ),
    Case(
        "dedup-threshold-huge",
        "dataset",
        "silent-nonsense",
        "clear-error",
        ["dedup", "ds", "--threshold", "100000"],
        setup=lambda p: dataset(p) and None,
    ),
    Case(
        "captions-check-nonutf8",
        "dataset",
        "bad-file",
        "refused",
        ["captions", "check", "ds"],
        setup=_captions_nonutf8,
        check=said("painting_00"),
    ),
    Case(
        "captions-check-missing",
        "dataset",
        "path-escape",
        "clear-error",
        ["captions", "check", "no-such-ds"],
    ),
    Case(
        "captions-apply-garbage-json",
        "dataset",
        "bad-file",
        "clear-error",
        ["captions", "apply", "ds", "--from", "drafts.json"],
        setup=_drafts("{not json"),
    ),
    Case(
        "captions-apply-list-json",
        "dataset",
        "bad-file",
        "clear-error",
        ["captions", "apply", "ds", "--from", "drafts.json"],
        setup=_drafts('["a", "b"]'),
    ),
    Case(
        "captions-apply-escape-key",
        "dataset",
        "path-escape",
        "refused",
        ["captions", "apply", "ds", "--from", "drafts.json"],
        setup=_drafts('{"../escape.png": "x", "/tmp/abs-escape.png": "y"}'),
        check=absent("escape.txt", "ds/../escape.txt"),
    ),
    Case(
        "captions-apply-nonstring",
        "dataset",
        "bad-file",
        "clear-error",
        ["captions", "apply", "ds", "--from", "drafts.json"],
        setup=_drafts('{"painting_00.png": 12, "painting_01.png": null}'),
    ),
    Case(
        "captions-sample-zero",
        "dataset",
        "silent-nonsense",
        "clear-error",
        ["captions", "sample", "ds", "0"],
        setup=lambda p: dataset(p) and None,
    ),
    Case(
        "captions-sample-too-many",
        "dataset",
        "silent-nonsense",
        "correct",
        ["captions", "sample", "ds", "50"],
        setup=lambda p: dataset(p) and None,
        exit=None,
        check=said("painting_00", "painting_01", "painting_02", "painting_03"),
    ),
    Case(
        "curate-empty-folder",
        "dataset",
        "bad-file",
        "refused",
        ["curate", "ds"],
        setup=lambda p: (p / "ds").mkdir() and None,
    ),
    Case("hash-missing", "dataset", "path-escape", "clear-error", ["hash", "no/such/file"]),
    Case(
        "hash-symlink-loop",
        "dataset",
        "path-escape",
        "correct",
        ["hash", "ds"],
        setup=_loop,
        exit=None,
        timeout=20,
    ),
    Case(
        "gate1-dataset-gone",
        "dataset",
        "corrupt-state",
        "refused",
        ["gate", "check", "t1", "--gate", "1"],
        setup=_gate_missing_folder,
        may_change=["grimoire/training/t1/*"],
    ),
    Case(
        "gate1-dataset-is-file",
        "dataset",
        "bad-file",
        "refused",
        ["gate", "check", "t1", "--gate", "1"],
        setup=_gate_folder_is_file,
        may_change=["grimoire/training/t1/*"],
    ),
    Case(
        "gate1-all-corrupt",
        "dataset",
        "bad-file",
        "refused",
        ["gate", "check", "t1", "--gate", "1"],
        setup=_gate_all_corrupt,
        may_change=["grimoire/training/t1/*"],
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
