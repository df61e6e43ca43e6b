"""The main job: `trainwright demo` runs the whole /train path on the embedded example."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import assert_one_line_error, run_cli
from trainwright.state.grimoire import Grimoire

pytest.importorskip("torch")


@pytest.mark.slow
def test_demo_runs_the_whole_path(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    proc = run_cli("demo", "--keep", str(root), "--json", timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    commands = [s["command"].split()[1] for s in summary["steps"]]
    for step in (
        "audit",
        "dedup",
        "captions",
        "gate",
        "config",
        "env",
        "dry-run",
        "launch",
        "monitor",
        "eval-grid",
        "register",
    ):
        assert step in commands, step
    # Run as a person runs it: from the project root, --grimoire at its default, the dataset
    # folder typed relative to the root (the demo once passed only because of absolute paths).
    for step in summary["steps"]:
        assert "--grimoire" not in step["command"], step
        assert str(root) not in step["command"], step
    g = Grimoire(root / "grimoire")
    _, intent = g.read("intent", "exstyle")
    assert intent["sections"][""]["Dataset folder"] == "dataset"
    _, status = g.read("status", "exstyle")
    assert status["sections"][""]["Status"] == "COMPLETE"
    assert set(status["sections"]["Gates"].values()) == {"GO"}
    _, report = g.read("dataset-report", "exstyle")
    assert report["sections"]["Gate 1 Decision"]["Decision"] == "GO"
    # Gate 1 said NO-GO first: the demo's log shows the first check exiting 1.
    gate1 = [s for s in summary["steps"] if s["command"].startswith("trainwright gate check")]
    assert gate1[0]["exit"] == 1 and gate1[1]["exit"] == 0
    # Nothing deleted: the planted problems were moved, not removed.
    assert (root / "rejected" / "broken_scan.png").is_file()
    assert any((root / "quarantine").rglob("painting_03_copy.jpg"))
    _, studio = g.read("studio", None)
    assert "LoRA: exstyle" in studio["sections"]
    grid = Path(summary["grid"])
    with Image.open(grid) as im:
        assert im.width >= 4 * 64
    # The LoRA's effect grows with its weight: each row moves further from its weight-0 cell.
    manifest = json.loads((grid.parent / "manifest.json").read_text())
    rows: dict[int, dict[float, np.ndarray]] = {}
    for cell in manifest["cells"]:
        with Image.open(grid.parent / cell["image"]) as im:
            rows.setdefault(cell["row"], {})[cell["weight"]] = np.asarray(im, dtype=np.float32)
    for row in rows.values():
        base = row[0.0]
        dist = [float(np.abs(row[w] - base).mean()) for w in sorted(row)]
        assert dist == sorted(dist) and dist[-1] > dist[1] > 0, dist


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("mine")
    assert_one_line_error(run_cli("demo", "--keep", str(tmp_path)), "not empty")
    assert (tmp_path / "x.txt").read_text() == "mine"
