"""Silent nonsense that needs more setup than a table row (issue 13, section 5): writes through a
symlinked state file, register's finished-training rule and its override, eval-grid's
contradictions, a run that failed for a lasting reason, and strict JSON on NaN and infinity."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from data.comfyui.fake_server import write_lora
from helpers import assert_one_line_error, run_cli
from trainwright.output import to_json
from trainwright.state.grimoire import Grimoire


def strict(text: str) -> object:
    """json.loads as jq reads it: NaN, Infinity and -Infinity are not JSON."""

    def refuse(word: str) -> object:
        raise AssertionError(f"not JSON: {word}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A project made by `trainwright init`, with training project t1 and its intent."""
    root = tmp_path / "project"
    assert run_cli("init", str(root)).returncode == 0
    assert run_cli("grimoire", "new", "t1", cwd=root).returncode == 0
    proc = run_cli(
        "grimoire", "set", "intent", "--project", "t1", "Type=style", "Base model=tiny",
        "Trigger word=zzq", "Description=flat colour fields", cwd=root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return root


# --- a symlinked state file ---------------------------------------------------------------------


def test_set_writes_through_a_symlinked_state_file_and_keeps_the_link(root: Path) -> None:
    link = root / "grimoire/training/t1/intent.md"
    target = root / "elsewhere" / "intent.md"
    target.parent.mkdir()
    link.rename(target)
    link.symlink_to(os.path.relpath(target, link.parent))
    before_link = os.readlink(link)
    proc = run_cli("grimoire", "set", "intent", "--project", "t1", "Dataset folder=ds", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and os.readlink(link) == before_link
    assert "- **Dataset folder**: ds" in target.read_text().splitlines()
    assert not [p for p in link.parent.iterdir() if p.name.startswith(".intent.md.")]
    kept = target.read_bytes()
    refused = run_cli("grimoire", "set", "intent", "--project", "t1", "Bogus=1", cwd=root)
    assert_one_line_error(refused, "no field 'Bogus'")
    assert link.is_symlink() and target.read_bytes() == kept


# --- register -----------------------------------------------------------------------------------

GATES = (
    ("dataset-report", "Gate 1 Decision"),
    ("config", "Gate 2 Decision"),
    ("environment", "Gate 3 Decision"),
    ("progress", "Dry Run (Gate 4)"),
)


def _finished(root: Path, run_status: str = "COMPLETE", no_go: int | None = None) -> Path:
    g = Grimoire(root / "grimoire")
    for number, (kind, section) in enumerate(GATES, start=1):
        g.update(kind, {section: {"Decision": "NO-GO" if number == no_go else "GO"}}, "t1")
    (g.project_dir("t1") / "run.json").write_text(json.dumps({"status": run_status}))
    return write_lora(root / "out" / "t1.safetensors")


def _register(root: Path, lora: Path, *extra: str, env: dict[str, str] | None = None):
    return run_cli(
        "register", "t1", "--weight", "0.6", "--file", str(lora), *extra, cwd=root, env=env
    )


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted((root / "grimoire").rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "run_status,no_go,fragment",
    [
        ("COMPLETE", 2, "Gate 2 (config) is NO-GO"),
        ("FAILED", None, "its run is FAILED"),
        ("RUNNING", 4, "its run is RUNNING"),
    ],
)
def test_register_refuses_an_unfinished_training(
    root: Path, run_status: str, no_go: int | None, fragment: str
) -> None:
    lora = _finished(root, run_status, no_go)
    before = _tree(root)
    assert_one_line_error(_register(root, lora), fragment, "--override")
    assert _tree(root) == before


def test_register_of_a_finished_training_needs_no_override(root: Path) -> None:
    lora = _finished(root)
    proc = _register(root, lora, "--json")
    assert proc.returncode == 0, proc.stderr
    assert "Override" not in json.loads(proc.stdout)["fields"]


def test_override_records_who_and_why_in_studio(root: Path) -> None:
    lora = write_lora(root / "out" / "t1.safetensors")  # trained by hand: no run, no gates
    why = "trained on the lab machine by hand"
    proc = _register(root, lora, "--override", why, "--json", env={"USER": "alice"})
    assert proc.returncode == 0, proc.stderr
    g = Grimoire(root / "grimoire")
    _, studio = g.read("studio")
    note = studio["sections"]["LoRA: t1"]["Override"]
    assert note.startswith(f"{why} (by alice on ")
    assert "no run" in note and "Gate 1 (dataset) is PENDING" in note
    assert any("--override" in w for w in json.loads(proc.stdout)["warnings"])
    _, status = g.read("status", "t1")
    assert status["sections"][""]["Status"] == "COMPLETE"


# --- eval-grid ----------------------------------------------------------------------------------


def test_eval_grid_refuses_a_lora_of_another_trainer_on_the_tiny_model(root: Path) -> None:
    kohya = write_lora(root / "k.safetensors", metadata={"trainwright_backend": "kohya"})
    tiny = write_lora(root / "t.safetensors", metadata={"trainwright_backend": "tiny"})
    before = _tree(root)
    base = ["eval-grid", "t1", "--no-standard", "--prompt", "x"]
    assert_one_line_error(run_cli(*base, "--lora", str(kohya), cwd=root), "trained by kohya")
    mixed = run_cli(*base, "--lora", str(tiny), "--checkpoints", str(kohya), cwd=root)
    assert_one_line_error(mixed, "one base model")
    assert _tree(root) == before


def test_eval_grid_says_comfyui_is_not_used_when_it_comes_from_the_environment(
    root: Path,
) -> None:
    """TRAINWRIGHT_COMFYUI set for other projects is no contradiction: tiny runs in-process."""
    pytest.importorskip("torch")
    tiny = write_lora(root / "t.safetensors", metadata={"trainwright_backend": "tiny"})
    proc = run_cli(
        "eval-grid", "t1", "--lora", str(tiny), "--no-standard", "--prompt", "x", "--json",
        cwd=root, env={"TRAINWRIGHT_COMFYUI": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert "Traceback" not in proc.stderr
    assert strict(proc.stdout)["generator"] == "tiny"


# --- a run that failed for a lasting reason -------------------------------------------------------

PLAN = """# Runs plan: exp

- **Backend**: tiny

## Runs

| Run | Base model | Method | Dataset | GPUs |
|---|---|---|---|---|
| r1 | tiny | lora | data | cpu |
"""


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    from trainwright.backends.tiny_model.data import write_example_dataset
    from trainwright.cluster.checks import load_plan
    from trainwright.cluster.configs import write_configs
    from trainwright.cluster.dirs import setup_dirs
    from trainwright.cluster.scaffold import scaffold

    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "runs_plan.md").write_text(PLAN)
    write_example_dataset(exp / "data", count=2, size=32)
    scaffold(exp)
    plan = load_plan(exp)
    setup_dirs(exp, plan)
    write_configs(exp, plan)
    return exp


MODEL_ERROR = (
    "=== trainwright: attempt 1 ===\n"
    "tiny: error model: /x/damaged.safetensors is not a readable safetensors file\n"
)


def _decide(exp: Path, entry: dict, retry: bool = False):
    from trainwright.cluster.checks import load_plan
    from trainwright.cluster.runs_launch import decide

    plan = load_plan(exp)
    data = {"runs": {"r1": entry}}
    (decision,) = decide(plan, plan.runs, data, {}, exp, retry)
    return decision


def test_a_lasting_failure_holds_the_run_until_what_it_reads_changes(experiment: Path) -> None:
    from trainwright.cluster import lifecycle
    from trainwright.cluster.checks import load_plan

    (run,) = load_plan(experiment).runs
    entry = {"state": "FAILED", "reason": "exit code 3: tiny: error model: ..."}
    lifecycle.note_lasting(experiment, run, entry, MODEL_ERROR, "3")
    assert entry["lasting_failure"]["kind"] == "model"
    held = _decide(experiment, entry)
    assert held.action == "hold" and "nothing it reads changed" in held.reason
    assert _decide(experiment, entry, retry=True).action == "resume"
    (experiment / "data" / "extra.txt").write_text("a new caption file\n")
    changed = _decide(experiment, entry)
    assert changed.action == "resume" and "changed" in changed.reason


@pytest.mark.parametrize(
    "log,code",
    [
        ("RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried 9 GB\n", "1"),
        ("Traceback (most recent call last):\nZeroDivisionError: division by zero\n", "1"),
        ("", "137"),
    ],
)
def test_a_passing_failure_is_not_held(experiment: Path, log: str, code: str) -> None:
    from trainwright.cluster import lifecycle
    from trainwright.cluster.checks import load_plan

    (run,) = load_plan(experiment).runs
    entry = {"state": "FAILED", "lasting_failure": {"kind": "model", "inputs": "stale"}}
    lifecycle.note_lasting(experiment, run, entry, "=== trainwright: attempt 1 ===\n" + log, code)
    assert "lasting_failure" not in entry
    assert _decide(experiment, {"state": "FAILED"}).action == "resume"


def test_preflight_reads_the_dataset_as_the_trainer_does(experiment: Path) -> None:
    from trainwright.cluster.checks import load_plan
    from trainwright.cluster.runs_launch import preflight

    plan = load_plan(experiment)
    (experiment / "r1" / "finetune.slurm").write_text("#!/bin/bash\n")
    assert preflight(experiment, plan, plan.runs, False, False).problems == []
    caption = next((experiment / "data").glob("*.txt"))
    caption.write_bytes(b"caf\xe9 au lait")
    problems = preflight(experiment, plan, plan.runs, False, False).problems
    assert len(problems) == 1 and "not UTF-8" in problems[0] and caption.name in problems[0]


# --- strict JSON ----------------------------------------------------------------------------------


def test_to_json_turns_every_non_finite_number_into_null_and_says_so() -> None:
    data = {
        "loss": math.nan,
        "eta_s": math.inf,
        "curve": [1.0, -math.inf, np.float32("nan"), np.float64(2.5)],
        "deep": {"x": [{"y": math.nan}]},
        "kept_note": "mine",
        "kept": math.nan,
        "count": 3,
        "flag": True,
    }
    out = strict(to_json(data))
    assert out["loss"] is None and out["loss_note"] == "nan"
    assert out["eta_s"] is None and out["eta_s_note"] == "inf"
    assert out["curve"] == [1.0, None, None, 2.5]
    assert out["deep"]["x"][0] == {"y": None, "y_note": "nan"}
    assert out["kept_note"] == "mine" and out["kept"] is None  # a key of the data is never replaced
    assert out["count"] == 3 and out["flag"] is True
    paths = {d["path"]: d["value"] for d in out["non_finite"]}
    assert paths == {
        "loss": "nan",
        "eta_s": "inf",
        "curve[1]": "-inf",
        "curve[2]": "nan",
        "deep.x[0].y": "nan",
        "kept": "nan",
    }
    assert strict(to_json([math.nan, 1])) == [None, 1]
    assert "non_finite" not in strict(to_json({"a": 1.0}))


TINY_LOG = (
    "tiny: step=1/20 epoch=1/10 loss=0.5 lr=0.001 batch=4 mem_mib=3.0 elapsed_s=1.0\n"
    "tiny: step=2/20 epoch=1/10 loss={loss} lr=0.001 batch=4 mem_mib=3.0 elapsed_s=2.0\n"
)


@pytest.mark.parametrize("loss", ["nan", "inf", "-inf"])
def test_monitor_json_is_strict_on_a_non_finite_loss(root: Path, loss: str) -> None:
    (root / "train.log").write_text(TINY_LOG.format(loss=loss))
    proc = run_cli("monitor", "--log", "train.log", "--json", cwd=root)
    data = strict(proc.stdout)
    assert data["loss"] is None and data["loss_note"] == loss
    (root / "grimoire/training/t1/train.log").write_text(TINY_LOG.format(loss=loss))
    project = strict(run_cli("monitor", "t1", "--json", cwd=root).stdout)
    assert project["loss"] is None and project["loss_note"] == loss
    strict(run_cli("status", "t1", "--json", cwd=root).stdout)
    strict(run_cli("--json", "status", "t1", cwd=root).stdout)


def test_runs_monitor_json_is_strict_on_a_recorded_nan_loss(experiment: Path) -> None:
    status = experiment / "runs_status.yaml"
    data = yaml.safe_load(status.read_text())
    data["runs"]["r1"].update(
        {"state": "FAILED", "job_id": "local-1", "executor": "local",
         "progress": {"step": 2, "total_steps": 20, "loss": float("nan")}}
    )  # fmt: skip
    status.write_text(yaml.safe_dump(data))
    assert ".nan" in status.read_text()
    proc = run_cli("runs", "monitor", str(experiment), "--json", env={"PATH": "/nonexistent"})
    out = strict(proc.stdout)
    assert any(item["value"] == "nan" for item in out["non_finite"]), out


def test_only_the_json_emitter_prints_json() -> None:
    """Every command's --json goes through output.emit (strict: no NaN); a command that printed
    json.dumps itself would bypass it."""
    import re

    scripts = Path(__file__).resolve().parent.parent / "scripts" / "trainwright"
    printing = re.compile(r"(echo|print|write)\(\s*json\.dumps\(")
    # not CLI output: probes whose JSON line is read back over ssh
    allowed = {"output.py", "remote_probe.py", "make_weights.py", "deploy.py", "remote_monitor.py"}
    found = [
        str(p.relative_to(scripts))
        for p in scripts.rglob("*.py")
        if p.name not in allowed and printing.search(p.read_text(encoding="utf-8"))
    ]
    assert found == [], found
