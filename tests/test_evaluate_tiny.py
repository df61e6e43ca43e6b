"""The whole evaluation path on the embedded tiny backend: train a LoRA for real, make its grid
in-process, check the LoRA's effect grows with the weight, then register it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import run_cli
from trainwright.state.grimoire import Grimoire

pytest.importorskip("torch")
pytest.importorskip("safetensors")
tiny = pytest.importorskip("trainwright.backends.tiny")

PROMPT = "exstyle, a red circle on a blue background"
WEIGHTS = [0.0, 0.5, 1.0, 1.5]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Grimoire, list[Path]]:
    from trainwright import backends
    from trainwright.backends import tiny

    ok, why = backends.installed(tiny)
    if not ok:
        pytest.skip(why)
    from trainwright.backends.tiny_model.data import write_example_dataset

    tmp = tmp_path_factory.mktemp("tiny-eval")
    g = Grimoire(tmp / "grimoire")
    g.ensure_base()
    g.new_project("exstyle")
    dataset = tmp / "dataset"
    write_example_dataset(dataset, count=8, trigger="exstyle")
    g.update(
        "intent",
        {"": {"Type": "style", "Trigger word": "exstyle", "Base model": "tiny",
              "Dataset folder": str(dataset), "Description": "posterised painted shapes"}},
        "exstyle",
    )  # fmt: skip
    config = tiny.write_project_config(
        g, "exstyle", epochs=10, save_every_n_epochs=5, learning_rate=3e-3, preset="quick"
    )
    proc = subprocess.run(
        tiny.command(config), cwd=config.parent, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    ckpts = sorted((config.parent / "checkpoints").glob("*.safetensors"))
    assert len(ckpts) == 2
    return g, ckpts


@pytest.fixture(scope="module")
def grid_run(trained) -> dict:
    g, (early, final) = trained
    proc = run_cli("--grimoire", str(g.root), "eval-grid", "exstyle", "--lora", str(final),
                   "--checkpoints", str(early), "--no-standard", "--prompt", PROMPT,
                   "--weights", ",".join(map(str, WEIGHTS)), "--steps", "10", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _pixels(folder: Path, cell: dict) -> np.ndarray:
    return np.asarray(Image.open(folder / cell["image"]), dtype=np.float64)


@pytest.mark.slow
def test_the_tiny_grid_is_made_in_process(grid_run: dict) -> None:
    assert grid_run["generator"] == "tiny" and grid_run["status"] == "complete"
    assert grid_run["cells_made"] == grid_run["cells_total"] == 2 * len(WEIGHTS)
    folder = Path(grid_run["folder"])
    assert sorted(grid_run["grids"]) == [
        "grid-exstyle-epoch-0005.png",
        "grid-exstyle-epoch-0010.png",
    ]
    for name in grid_run["grids"]:
        assert Image.open(folder / name).width >= len(WEIGHTS) * 192


def test_the_loras_effect_grows_with_the_weight(grid_run: dict) -> None:
    folder = Path(grid_run["folder"])
    for label in ("exstyle-epoch-0005", "exstyle-epoch-0010"):
        row = sorted(
            (c for c in grid_run["cells"] if c["checkpoint"] == label), key=lambda c: c["weight"]
        )
        base = _pixels(folder, row[0])
        distance = [float(np.abs(_pixels(folder, c) - base).mean()) for c in row]
        assert distance[0] == 0.0
        assert all(b > a for a, b in zip(distance, distance[1:], strict=False)), distance
        assert distance[-1] > 5.0, distance  # visible, not rounding noise


def test_weight_zero_is_the_base_model_at_the_same_seed(grid_run: dict) -> None:
    folder = Path(grid_run["folder"])
    zero = [c for c in grid_run["cells"] if c["weight"] == 0.0]
    assert len(zero) == 2
    assert np.array_equal(_pixels(folder, zero[0]), _pixels(folder, zero[1]))
    one = [c for c in grid_run["cells"] if c["weight"] == 1.0]
    assert not np.array_equal(_pixels(folder, one[0]), _pixels(folder, one[1]))


def test_register_after_the_tiny_evaluation(trained, grid_run: dict) -> None:
    g, (_, final) = trained
    g.update("eval", {"": {"Recommended weight": 1.0, "Sweet spot": "0.5-1.0"}}, "exstyle")
    # Trained by calling the trainer directly, not through `trainwright launch` and its gates:
    # not a finished training, so registering it takes an override, recorded with who and why.
    refused = run_cli("--grimoire", str(g.root), "register", "exstyle")
    assert refused.returncode == 2 and "no run" in refused.stderr, refused.stderr
    why = "trained directly by the test, outside launch"
    proc = run_cli("--grimoire", str(g.root), "register", "exstyle", "--override", why, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["fields"]["Override"].startswith(why + " (by ")
    assert out["fields"]["File"] == str(final.resolve())
    assert out["fields"]["Training params"] == "quick, 10 epochs, rank 4"
    assert out["fields"]["Base model"] == "tiny"
    archived = Path(out["archive"]["folder"])
    assert archived == g.project_dir("exstyle") / "eval" / Path(grid_run["folder"]).name
    assert len(list(archived.glob("cells/*/*.png"))) == 2 * len(WEIGHTS)
