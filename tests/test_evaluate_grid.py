"""eval-grid's parts without a generator: prompts, weights, LoRA file checks, run folders, the
grid picture, and every bad input refused with one line, exit 2 and nothing written."""

from __future__ import annotations

import datetime as dt
import json
import struct
from pathlib import Path

import pytest
from PIL import Image

from data.comfyui.fake_server import write_lora
from helpers import assert_one_line_error, run_cli
from trainwright.errors import TrainwrightError
from trainwright.evaluate import grid
from trainwright.evaluate.lora_file import inspect_lora
from trainwright.evaluate.prompts import (
    build_prompts,
    family_of,
    load_data,
    parse_weights,
    standard_prompts,
)
from trainwright.evaluate.runs import new_run_dir
from trainwright.state.grimoire import Grimoire


def test_standard_prompts_cover_the_five_subjects_per_type() -> None:
    expected = {
        "style": ["portrait", "landscape", "still life", "animal", "abstract"],
        "character": ["full body", "close-up", "sitting", "outdoors", "action"],
        "object": ["isolated", "in context", "held", "close-up", "multiple"],
    }
    for kind, labels in expected.items():
        items = standard_prompts(kind)
        assert [i["label"] for i in items] == labels
        assert all("{trigger}" in i["text"] for i in items)


def test_prompts_carry_the_trigger_once_and_custom_ones_come_last() -> None:
    rows = build_prompts("object", "redmug", ["redmug on a desk", "a red mug in the rain"])
    assert len(rows) == 7 and rows[0].text.count("redmug") == 1
    assert rows[5].text == "redmug on a desk" and rows[5].label == "custom 1"
    assert rows[6].text == "redmug, a red mug in the rain" and not rows[6].standard
    only = build_prompts(None, None, ["a cat"], use_standard=False)
    assert [r.text for r in only] == ["a cat"]


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"lora_type": "style", "trigger": "x", "custom": [], "use_standard": False}, "empty"),
        ({"lora_type": "style", "trigger": "x", "custom": ["  "]}, "empty"),
        ({"lora_type": None, "trigger": "x", "custom": []}, "type is unknown"),
        ({"lora_type": "style", "trigger": None, "custom": []}, "trigger"),
        ({"lora_type": "style", "trigger": "x", "custom": ["a\nb"]}, "several lines"),
    ],
)
def test_prompt_lists_that_cannot_make_a_grid(kwargs: dict, fragment: str) -> None:
    with pytest.raises(TrainwrightError, match=fragment):
        build_prompts(**kwargs)


def test_weights() -> None:
    assert parse_weights(None) == [0.3, 0.5, 0.7, 0.9, 1.0]
    assert parse_weights("0, 0.55,2") == [0.0, 0.55, 2.0]
    for bad, fragment in [
        ("2.5", "outside 0-2"),
        ("-0.1", "outside 0-2"),
        ("nan", "outside 0-2"),
        ("0.5,x", "not a number"),
        ("", "empty"),
        ("0.5,,1", "empty entry"),
        ("0.5,0.5", "twice"),
    ]:
        with pytest.raises(TrainwrightError, match=fragment):
            parse_weights(bad)


def test_family_guess_and_sampling_defaults() -> None:
    assert family_of("ponyDiffusionV6XL.safetensors") == "sdxl"
    assert family_of("flux1-dev-fp8.safetensors") == "flux"
    assert family_of("v1-5-pruned-emaonly.safetensors") == "sd15"
    assert family_of("mystery.safetensors", declared="Flux") == "flux"
    assert load_data()["sampling"]["sd15"]["width"] == 512


def test_lora_file_checks(tmp_path: Path) -> None:
    good = inspect_lora(write_lora(tmp_path / "a.safetensors", rank=8, metadata={"ss_epoch": "5"}))
    assert good.rank == 8 and good.tensors == 3 and len(good.sha256) == 64
    assert good.metadata == {"ss_epoch": "5"}
    meta = inspect_lora(write_lora(tmp_path / "b.safetensors", metadata={"ss_network_dim": "32"}))
    assert meta.rank == 32


def _truncated(tmp_path: Path) -> Path:
    path = write_lora(tmp_path / "cut.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 16])
    return path


def _base_model(tmp_path: Path) -> Path:
    header = json.dumps(
        {"model.diffusion.w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    )
    raw = header.encode() + b" " * (-len(header) % 8)
    path = tmp_path / "base.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(4))
    return path


def _write(name: str, data: bytes):
    def make(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return make


BAD_LORAS = {
    "missing": (lambda p: p / "nope.safetensors", "not found"),
    "empty": (_write("e.safetensors", b""), "truncated"),
    "a checkpoint pickle": (_write("m.ckpt", b"PK\x03\x04" + b"\0" * 64), "not a safetensors"),
    "text": (_write("t.safetensors", b"hello world, not a model"), "not a safetensors"),
    "truncated": (_truncated, "truncated"),
    "a base model": (_base_model, "no LoRA weights"),
    "a folder": (lambda p: p, "not a file"),
}


@pytest.mark.parametrize("case", BAD_LORAS, ids=list(BAD_LORAS))
def test_bad_lora_files_are_refused(tmp_path: Path, case: str) -> None:
    make, fragment = BAD_LORAS[case]
    with pytest.raises(TrainwrightError, match=fragment):
        inspect_lora(make(tmp_path))


def test_run_folders_are_numbered_and_never_reused(tmp_path: Path) -> None:
    base = tmp_path / "eval-runs"
    day = dt.date(2025, 6, 1)
    first, f1 = new_run_dir(base, day)
    second, f2 = new_run_dir(base, day)
    third, _ = new_run_dir(base, dt.date(2025, 6, 2))
    assert (first, second, third) == ("001-2025-06-01", "002-2025-06-01", "003-2025-06-02")
    assert f1.is_dir() and f2.is_dir()
    (base / "007-2025-05-01").mkdir()
    assert new_run_dir(base, day)[0] == "008-2025-06-01"


def _spec(rows: int, cols: int) -> grid.GridSpec:
    return grid.GridSpec(
        title="test",
        col_labels=[f"weight {c}" for c in range(cols)],
        row_labels=[f"row {r}" for r in range(rows)],
        row_texts=["a long prompt " * 20 for _ in range(rows)],
    )


def _has_colour(img: Image.Image, colour: tuple[int, int, int], box: tuple) -> bool:
    return colour in {c for _, c in img.crop(box).getcolors(1 << 20)}


def test_grid_places_cells_weights_across_prompts_down() -> None:
    colours = [[(200, 0, 0), (0, 200, 0)], [(0, 0, 200), (200, 200, 0)]]
    cells = [[Image.new("RGB", (64, 64), c) for c in row] for row in colours]
    img = grid.compose(_spec(2, 2), cells, [[None, None], [None, None]])
    size = grid.cell_size_for([c for row in cells for c in row])
    assert size == 192
    # the bottom-right tile is the last cell, the one left of it the row's first
    assert img.getpixel((img.width - 10, img.height - 10)) == (200, 200, 0)
    assert img.getpixel((img.width - size - 14, img.height - 10)) == (0, 0, 200)
    assert not _has_colour(img, grid.WARN, (0, 0, img.width, 60))


def test_a_partial_grid_shows_the_missing_cell_and_says_partial() -> None:
    cells = [[Image.new("RGB", (64, 64), (0, 120, 0)), None]]
    img = grid.compose(_spec(1, 2), cells, [[None, "ComfyUI stopped answering"]])
    size = grid.cell_size_for([cells[0][0]])
    top, right = img.height - 4 - size, img.width - 4  # the missing tile, off its grey cross
    assert img.getpixel((right - 6, top + size * 3 // 4)) == grid.MISSING_BG
    assert _has_colour(img, grid.WARN, (0, 0, img.width, 70))  # the red PARTIAL line


# --- bad input through the CLI: one line, exit 2, nothing written ---


@pytest.fixture()
def project(tmp_path: Path) -> tuple[Path, Path]:
    g = Grimoire(tmp_path / "grimoire")
    g.ensure_base()
    g.new_project("mystyle")
    g.update(
        "intent",
        {"": {"Type": "style", "Trigger word": "mystyle", "Base model": "sdxl.safetensors"}},
        "mystyle",
    )
    return g.root, write_lora(tmp_path / "mystyle.safetensors")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


CLI_BAD = {
    "weight above 2": (["--weights", "0.5,2.5"], "outside 0-2"),
    "negative weight": (["--weights", "-1"], "outside 0-2"),
    "weights not numbers": (["--weights", "half,full"], "not a number"),
    "empty prompt list": (["--no-standard"], "prompt list is empty"),
    "empty prompt": (["--prompt", ""], "is empty"),
    "bad url": (["--comfyui", "localhost:8188"], "not an http(s) URL"),
    "width": (["--width", "1001"], "multiples of 8"),
    "same checkpoint twice": (["--checkpoints", "LORA"], "given twice"),
    "bad checkpoint": (["--checkpoints", "nope.safetensors"], "not found"),
}


@pytest.mark.parametrize("case", CLI_BAD, ids=list(CLI_BAD))
def test_eval_grid_bad_input_writes_nothing(project, case: str) -> None:
    root, lora = project
    args, fragment = CLI_BAD[case]
    args = [str(lora) if a == "LORA" else a for a in args]
    before = _tree(root)
    proc = run_cli("--grimoire", str(root), "eval-grid", "mystyle", "--lora", str(lora), *args)
    assert_one_line_error(proc, fragment)
    assert _tree(root) == before


def test_eval_grid_refuses_a_truncated_lora_and_an_empty_prompts_file(project, tmp_path) -> None:
    root, _ = project
    before = _tree(root)
    proc = run_cli(
        "--grimoire", str(root), "eval-grid", "mystyle", "--lora", str(_truncated(tmp_path))
    )
    assert_one_line_error(proc, "truncated")
    empty = tmp_path / "prompts.txt"
    empty.write_text("# my prompts\n\n")
    lora = write_lora(tmp_path / "ok.safetensors")
    proc = run_cli("--grimoire", str(root), "eval-grid", "mystyle", "--lora", str(lora),
                   "--prompts-file", str(empty))  # fmt: skip
    assert_one_line_error(proc, "prompt list is empty")
    proc = run_cli("--grimoire", str(root), "eval-grid", "nobody", "--lora", str(lora))
    assert_one_line_error(proc, "no training project 'nobody'")
    assert _tree(root) == before


def test_eval_grid_refuses_a_broken_eval_md_before_making_anything(project) -> None:
    root, lora = project
    eval_md = root / "training" / "mystyle" / "eval.md"
    text = eval_md.read_text().replace("- **Recommended weight**:", "- **Recommended weight**: 3")
    eval_md.write_text(text)
    before = _tree(root)
    proc = run_cli("--grimoire", str(root), "eval-grid", "mystyle", "--lora", str(lora))
    assert_one_line_error(proc, "eval.md:4", "out of range")
    assert _tree(root) == before
    assert not (root / "training" / "mystyle" / "eval-runs").exists()
