"""`trainwright diagnose`: symptom -> cause -> fix -> next step, from the failure-modes data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import REPO, assert_one_line_error, run_cli
from trainwright.evaluate import diagnose as dg
from trainwright.state.grimoire import Grimoire

DATA = REPO / "resources" / "training" / "failure-modes.yaml"


def test_the_data_holds_the_five_failures_of_the_spec_with_their_actions() -> None:
    expected = {
        "blurry": "checkpoint",
        "ignores-trigger": "epochs",
        "copies-training-images": "checkpoint",
        "wrong-colours": "recaption",
        "only-works-at-full-weight": "rank",
    }
    modes = {m["id"]: m for m in dg.load_modes()}
    for mode_id, kind in expected.items():
        assert modes[mode_id]["action"]["kind"] == kind
    raw = yaml.safe_load(DATA.read_text())
    assert raw["version"] == 1 and len(raw["symptoms"]) == len(modes)


def test_every_monitor_anomaly_kind_has_a_diagnosis() -> None:
    # the monitor (trainwright/run/anomalies.py) names its findings nan, spike, divergence,
    # plateau; each must be diagnosable as given
    for kind, mode_id in {
        "nan": "loss-nan",
        "spike": "loss-spike",
        "divergence": "loss-diverging",
        "plateau": "loss-plateau",
    }.items():
        assert [m["id"] for m in dg.match(kind)] == [mode_id]


@pytest.mark.parametrize(
    "words, mode_id",
    [
        ("blurry", "blurry"),
        ("Blurry!", "blurry"),
        ("the faces melt at 0.8", "distorted-faces"),
        ("it ignores trigger completely", "ignores-trigger"),
        ("copies training images", "copies-training-images"),
        ("wrong colors", "wrong-colours"),
        ("only works at 1.0", "only-works-at-full-weight"),
        ("Loss hasn't improved in 5 epochs", "loss-plateau"),
    ],
)
def test_symptoms_in_plain_words(words: str, mode_id: str) -> None:
    assert mode_id in [m["id"] for m in dg.match(words)]


def test_the_answer_explains_in_plain_words_and_names_the_next_command() -> None:
    out = dg.diagnose(["copies training images"], dg.Context("inkwash"))
    (item,) = out["diagnoses"]
    assert "memorised" in item["explanation"] and "halfway" in item["explanation"]
    assert item["cause"].startswith("Overfit")
    assert item["action"]["command"].startswith("trainwright eval-grid inkwash")


def test_the_checkpoint_action_names_a_real_earlier_checkpoint() -> None:
    ctx = dg.Context("inkwash", ["c/e5.safetensors", "c/e10.safetensors", "c/e15.safetensors"])
    (item,) = dg.diagnose(["blurry"], ctx)["diagnoses"]
    assert item["action"]["suggested_checkpoint"] == "c/e10.safetensors"
    assert item["action"]["command"] == (
        "trainwright eval-grid inkwash --lora c/e15.safetensors --checkpoints c/e10.safetensors"
    )


def test_unknown_symptom_suggests_close_ones() -> None:
    from trainwright.errors import TrainwrightError

    with pytest.raises(TrainwrightError, match="did you mean: blurry"):
        dg.diagnose(["blury"])


def test_cli_diagnose_json_and_text() -> None:
    proc = run_cli("diagnose", "blurry", "wrong colours", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [d["id"] for d in data["diagnoses"]] == ["blurry", "wrong-colours"]
    proc = run_cli("diagnose", "only works at 1.0")
    assert proc.returncode == 0
    assert "likely cause: Weak training signal" in proc.stdout
    assert "trainwright gate check NAME --gate 2" in proc.stdout
    listing = run_cli("diagnose", "--list")
    assert listing.returncode == 0 and len(listing.stdout.splitlines()) == len(dg.load_modes())


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["purple elephants"], "no known failure matches 'purple elephants'"),
        ([], "no symptom given"),
        (["--from-progress"], "give --project"),
        (["blurry", "--project", "../x"], "looks like a path"),
        (["blurry", "--project", "ghost"], "no training project 'ghost'"),
    ],
)
def test_cli_diagnose_bad_input(args: list[str], fragment: str, tmp_path: Path) -> None:
    proc = run_cli("--grimoire", str(tmp_path), "diagnose", *args)
    assert_one_line_error(proc, fragment)


def test_cli_diagnoses_the_anomalies_in_progress_md(tmp_path: Path) -> None:
    g = Grimoire(tmp_path / "grimoire")
    g.ensure_base()
    g.new_project("inkwash")
    g.update(  # the fields `trainwright monitor` writes under Anomalies
        "progress",
        {
            "Anomalies": {
                "Found": 2,
                "Summary": "spike at step 120 | divergence at step 300",
                "Latest": "Loss has been rising since about step 300 (up 35% over the last 60 "
                "steps): something may be wrong.",
            }
        },
        "inkwash",
    )
    ckpts = g.project_dir("inkwash") / "checkpoints"
    ckpts.mkdir()
    for epoch in (10, 5, 15):
        (ckpts / f"inkwash-epoch-{epoch}.safetensors").write_bytes(b"")
    proc = run_cli("--grimoire", str(g.root), "diagnose", "blurry", "--project", "inkwash",
                   "--from-progress", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [d["id"] for d in data["diagnoses"]] == ["blurry", "loss-diverging", "loss-spike"]
    blurry = data["diagnoses"][0]["action"]
    assert blurry["suggested_checkpoint"].endswith("inkwash-epoch-10.safetensors")
    assert "--lora " + str(ckpts / "inkwash-epoch-15.safetensors") in blurry["command"]


def test_cli_says_when_progress_md_records_no_anomaly(tmp_path: Path) -> None:
    g = Grimoire(tmp_path / "grimoire")
    g.ensure_base()
    g.new_project("inkwash")
    g.update("progress", {"Anomalies": {"Found": 0, "Summary": "none"}}, "inkwash")
    proc = run_cli("--grimoire", str(g.root), "diagnose", "--project", "inkwash",
                   "--from-progress")  # fmt: skip
    assert proc.returncode == 0 and "records no loss anomalies" in proc.stdout
