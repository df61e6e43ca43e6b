"""Gate 4: a real 2-step run of the tiny backend, and its failures named in plain words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_cli
from support.tiny_project import make_project, set_config
from trainwright.state import gates


def dry_run(g, *args: str):  # noqa: ANN001, ANN201 - a Grimoire in, a CompletedProcess out
    return run_cli("--grimoire", str(g.root), "dry-run", "demo", "--json", *args)


def test_go_after_two_real_steps_then_stale_when_the_config_changes(tmp_path: Path) -> None:
    g = make_project(tmp_path)
    proc = dry_run(g, "--steps", "2")
    out = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out["decision"] == "GO" and out["details"]["steps_completed"] == 2
    assert "2 training steps ran" in out["reasons"][0]
    folder = g.project_dir("demo")
    assert not (folder / "checkpoints").exists()  # a dry run saves nothing
    assert "tiny: done steps=2 dry_run=yes" in (folder / "dry-run.log").read_text()
    _, progress = g.read("progress", "demo")
    sec = progress["sections"]["Dry Run (Gate 4)"]
    assert sec["Decision"] == "GO" and sec["Steps completed"] == 2 and sec["Failure kind"] == "none"
    _, status = g.read("status", "demo")
    assert status["sections"]["Gates"]["Gate 4 dry run"] == "GO"
    assert gates.state(g, "demo", 4)["ok"]
    set_config(g, "demo", learning_rate=0.01)
    assert gates.state(g, "demo", 4)["stale"]
    (Path(tmp_path / "dataset") / "painting_00.txt").write_text("exstyle, recaptioned\n")
    assert gates.state(g, "demo", 4)["stale"]


def test_a_second_dry_run_keeps_the_first_log(tmp_path: Path) -> None:
    g = make_project(tmp_path)
    set_config(g, "demo", base_model="missing.safetensors")
    dry_run(g)
    dry_run(g)
    folder = g.project_dir("demo")
    assert len(list(folder.glob("dry-run.*.log"))) == 1 and (folder / "dry-run.log").is_file()


@pytest.mark.parametrize(
    "change,kind,words",
    [
        ({"base_model": "damaged.safetensors"}, "model", "could not be loaded"),
        ({"caption_extension": ".caption"}, "dataset", "could not be read"),
        ({"batch_size": 64, "resolution": 64, "memory_limit_mb": 40}, "oom", "try batch 32"),
    ],
)
def test_failures_are_classified(
    tmp_path: Path, change: dict[str, object], kind: str, words: str
) -> None:
    g = make_project(tmp_path)
    folder = g.project_dir("demo")
    (folder / "damaged.safetensors").write_bytes(b'{"not": "a model"}' * 3)
    if kind == "dataset":
        (tmp_path / "dataset" / "painting_01.caption").write_bytes(b"\xff\xfe\x00bad")
    set_config(g, "demo", **change)
    proc = dry_run(g)
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and out["decision"] == "NO-GO"
    assert out["details"]["failure"]["kind"] == kind
    assert words in " ".join(out["reasons"] + out["fixes"])
    _, progress = g.read("progress", "demo")
    assert progress["sections"]["Dry Run (Gate 4)"]["Failure kind"] == kind


def test_without_a_config_it_is_no_go_with_the_fix(tmp_path: Path) -> None:
    g = make_project(tmp_path)
    g.update("config", {"": {"Backend": "", "Config file": ""}}, "demo")
    proc = dry_run(g)
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and "names no backend" in out["reasons"][0]
    # The config comes first (Gate 2 alone would say "no config written"), for the backend
    # the base model needs.
    assert out["fixes"] == [
        "trainwright config --project demo --backend tiny",
        "trainwright gate check demo --gate 2",
    ]


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["dry-run", "nope"], "has no progress.md"),
        (["dry-run", "demo", "--steps", "7"], "7"),
        (["dry-run", "demo", "--timeout", "0"], "0"),
    ],
)
def test_bad_dry_run_requests(tmp_path: Path, args: list[str], fragment: str) -> None:
    g = make_project(tmp_path)
    before = (g.project_dir("demo") / "progress.md").read_bytes()
    assert_one_line_error(run_cli("--grimoire", str(g.root), *args), fragment)
    assert (g.project_dir("demo") / "progress.md").read_bytes() == before
