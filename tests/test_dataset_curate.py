"""`trainwright curate`: very alike images flagged, a spread-out subset, sizes from data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import assert_one_line_error, run_cli
from trainwright.dataset import curate
from trainwright.dataset.data import min_side, model_family, size_range, sizes


def _scene(path: Path, hue: tuple[int, int, int], seed: int, shape=(160, 120)) -> None:
    rng = np.random.default_rng(seed)
    arr = np.zeros((shape[1], shape[0], 3), dtype=np.uint8) + np.array(hue, dtype=np.uint8)
    for _ in range(6):
        x, y = rng.integers(0, shape[0] - 30), rng.integers(0, shape[1] - 30)
        arr[y : y + 30, x : x + 30] = rng.integers(0, 255, 3)
    Image.fromarray(arr).save(path)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "ds"
    d.mkdir()
    for i in range(5):  # one shoot: the same scene, barely changed
        _scene(d / f"shoot_{i}.png", (200, 40, 40), seed=1)
        im = Image.open(d / f"shoot_{i}.png")
        Image.eval(im, lambda v, i=i: min(255, v + i)).save(d / f"shoot_{i}.png")
    _scene(d / "blue.png", (20, 40, 220), seed=2)
    _scene(d / "green.png", (30, 200, 60), seed=3, shape=(120, 200))
    _scene(d / "grey.png", (128, 128, 128), seed=4, shape=(240, 100))
    return d


def test_clusters_and_k_center_subset(folder: Path) -> None:
    feats = curate.collect(folder, workers=1)
    res = curate.analyse(feats, target=4)
    shoot = {f"shoot_{i}.png" for i in range(5)}
    assert any(set(c) == shoot for c in res["clusters"])
    assert len(res["selected"]) == 4
    assert {"blue.png", "green.png", "grey.png"} <= set(res["selected"])
    assert len(shoot & set(res["selected"])) == 1
    assert res["aspect_ratios"] == {"portrait": 1, "square": 0, "landscape": 7}


def test_cli_plain_words_and_report(folder: Path, tmp_path: Path) -> None:
    proc = run_cli("curate", str(folder), "--type", "object")
    assert proc.returncode == 0
    assert "This object LoRA wants 10-30 images: 2 more would help." in proc.stdout
    assert "5 images look very alike" in proc.stdout
    g = tmp_path / "g"
    run_cli("--grimoire", str(g), "grimoire", "new", "p")
    run_cli("--grimoire", str(g), "grimoire", "set", "intent", "--project", "p", "Type=style")
    proc = run_cli("--grimoire", str(g), "curate", str(folder), "--project", "p", "--json")
    data = json.loads(proc.stdout)
    assert data["type"] == "style" and data["recommended_range"] == [20, 100]
    assert "This style LoRA wants 20-100" in (g / "training/p/dataset-report.md").read_text()


def test_sizes_come_from_the_data_file() -> None:
    assert size_range("character") == (15, 40)
    assert size_range("style") == (20, 100)
    assert size_range("object") == (10, 30)
    assert size_range("nope") is None
    assert min_side("SD 1.5") == 512 and min_side("sdxl_base_1.0") == 1024
    assert min_side("ponyDiffusionV6XL") == 1024 and model_family("flux1-dev") == "flux"
    assert sizes()["source"]


def test_bad_curate_usage(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("curate", str(tmp_path / "none")), "no such folder")
    assert_one_line_error(run_cli("curate", str(tmp_path), "--target", "0"), "--target")
