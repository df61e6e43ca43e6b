"""`trainwright status NAME`: the phase and the next command, from the state files alone."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import assert_one_line_error, run_cli
from trainwright.state.grimoire import Grimoire
from trainwright.state.project_status import project_status


def _project(tmp_path: Path) -> Grimoire:
    g = Grimoire(tmp_path / "g")
    g.new_project("p")
    return g


def test_fresh_project_asks_for_the_intent(tmp_path: Path) -> None:
    g = _project(tmp_path)
    proc = run_cli("--grimoire", str(g.root), "status", "p", "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["phase"] == "intent" and "Trigger word" in d["missing_intent"]
    assert d["next"].startswith("trainwright grimoire set intent --project p")
    assert [x["decision"] for x in d["gates"]] == ["PENDING"] * 4


def test_filled_intent_points_at_gate_1_with_the_dataset_folder(tmp_path: Path) -> None:
    g = _project(tmp_path)
    g.update(
        "intent",
        {
            "": {
                "Type": "style",
                "Base model": "sdxl",
                "Trigger word": "zz",
                "Dataset folder": "/data/zz",
            }
        },
        "p",
    )
    d = project_status(g, "p")
    assert d["phase"] == "gate 1" and "trainwright audit /data/zz --project p" in d["next"]


def test_running_and_completed_runs(tmp_path: Path) -> None:
    g = _project(tmp_path)
    g.update(
        "intent",
        {"": {"Type": "style", "Base model": "sdxl", "Trigger word": "zz", "Dataset folder": "/d"}},
        "p",
    )
    g.update("progress", {"": {"Status": "RUNNING", "Current epoch": "3/15"}}, "p")
    d = project_status(g, "p")
    assert d["phase"] == "training" and d["next"] == "trainwright monitor p --follow"
    g.update("progress", {"": {"Status": "COMPLETE"}}, "p")
    assert project_status(g, "p")["phase"] == "evaluation"
    g.update("eval", {"": {"Recommended weight": 0.6}}, "p")
    assert project_status(g, "p")["next"] == "trainwright register p"
    g.update("status", {"": {"Status": "COMPLETE"}}, "p")
    d = project_status(g, "p")
    assert d["phase"] == "complete" and d["next"] is None


def test_broken_state_file_is_reported_not_crashed(tmp_path: Path) -> None:
    g = _project(tmp_path)
    path = g.path_for("progress", "p")
    path.write_text(path.read_text().replace("- **OOM recoveries**: 0", "- **OOM recoveries**: x"))
    proc = run_cli("--grimoire", str(g.root), "status", "p")
    assert proc.returncode == 0
    assert "problem:" in proc.stdout and "progress.md" in proc.stdout and "repair" in proc.stdout


def test_unknown_project(tmp_path: Path) -> None:
    g = _project(tmp_path)
    assert_one_line_error(run_cli("--grimoire", str(g.root), "status", "q"), "no training project")
    assert_one_line_error(run_cli("--grimoire", str(g.root), "status", "../p"), "path")
