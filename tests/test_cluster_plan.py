"""runs_plan.md: tables and `## Run:` sections, every problem reported with its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import assert_one_line_error, run_cli
from trainwright.cluster.checks import load_plan
from trainwright.cluster.timelimit import parse_time

GOOD = """\
# Runs plan: sweep-test

- **Experiment**: sweep-test
- **Backend**: torchtune

## Defaults
- **Dataset**: alpaca_cleaned
- **Epochs**: 2

## Runs

| Run | Base model | Method | GPUs | Nodes | LR | Batch size | Packed | Max seq len | Time | Notes |
|---|---|---|---|---|---|---|---|---|---|---|
| base | llama3.2-1b | base | - | | | | | | | baseline |
| r1 | llama3.2-1b | lora | 1 | | 3e-4 | 4 | yes | 2048 | 4h | packed |
| r2 | llama3.1-8b | full | 16 | 2 | 1e-5 | 2 | no | | 1-12:00:00 | |

## Run: tiny-one
- **Base model**: bundled
- **Method**: lora
- **Backend**: tiny
- **GPUs**: cpu
- **Trigger word**: zq_style
- **Dataset**: data
"""


def write_plan(tmp_path: Path, text: str) -> Path:
    exp = tmp_path / "exp"
    exp.mkdir(exist_ok=True)
    (exp / "runs_plan.md").write_text(text)
    return exp


def test_a_table_a_section_and_defaults_make_one_plan(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path, GOOD))
    assert plan.problems == []
    assert plan.experiment == "sweep-test"
    runs = {r.name: r for r in plan.runs}
    assert list(runs) == ["base", "r1", "r2", "tiny-one"]
    assert runs["base"].trains is False and runs["base"].gpus is None
    r1 = runs["r1"]
    assert (r1.model, r1.method, r1.dataset, r1.gpus, r1.nodes) == (
        "llama3.2-1b",
        "lora",
        "alpaca_cleaned",
        1,
        1,
    )
    assert r1.params == {
        "epochs": 2,
        "batch_size": 4,
        "max_seq_len": 2048,
        "learning_rate": 3e-4,
        "packed": True,
    }
    assert r1.time == "04:00:00"
    r2 = runs["r2"]
    assert (r2.gpus, r2.nodes, r2.gpus_per_node, r2.time) == (16, 2, 8, "1-12:00:00")
    tiny = runs["tiny-one"]
    assert (tiny.backend, tiny.gpus, tiny.dataset) == ("tiny", None, "data")
    assert tiny.extra_value("trigger word") == "zq_style"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("90", "01:30:00"),
        ("30:00", "00:30:00"),
        ("2:00:00", "02:00:00"),
        ("1-0", "1-00:00:00"),
        ("2d", "2-00:00:00"),
        ("45m", "00:45:00"),
        ("1.5h", "01:30:00"),
    ],
)
def test_time_formats(text: str, expected: str) -> None:
    assert parse_time(text) == expected


BAD = """\
# Runs plan: bad

- **Backend**: torchtune

## Runs

| Run | Base model | Method | Dataset | GPUs | Batch size | Packed |
|---|---|---|---|---|---|---|
| r1 | llama3.2-1b | lora | alpaca | 1 | 4 | no |
| r1 | llama3.2-1b | lora | alpaca | 1 | 4 | no |
| r3 | llama3.2-1b | lora | alpaca | 0 | 4 | no |
| r4 | bundled | lora | data | cpu | 4 | no |
| r5 | llama3.2-1b | dpo | alpaca | 1 | four | no |
| r6 | llama3.2-1b | lora | alpaca | 3 | 4 | yes |
| r7 | llama3.2-1b | lora | alpaca | 1 |
"""


def test_validate_lists_every_problem_with_its_line(tmp_path: Path) -> None:
    exp = write_plan(tmp_path, BAD)
    proc = run_cli("runs", "validate", str(exp), "--json")
    assert proc.returncode == 1, proc.stderr
    problems = json.loads(proc.stdout)["problems"]
    by_line: dict[int, list[str]] = {}
    for p in problems:
        by_line.setdefault(p["line"], []).append(p["message"])
    assert any("duplicate run name 'r1' (first at line 9)" in m for m in by_line[10])
    assert any("GPU count is 0" in m for m in by_line[11])
    assert any("needs GPUs" in m for m in by_line[12])
    assert any("unknown model 'bundled'" in m for m in by_line[12])
    assert any("method 'dpo' is unknown" in m for m in by_line[13])
    assert any("Batch size 'four' is not a whole number" in m for m in by_line[13])
    assert any("packing needs a maximum sequence length" in m for m in by_line[14])
    assert any("row has 5 cells but the header has 7" in m for m in by_line[15])
    human = run_cli("runs", "validate", str(exp))
    assert human.returncode == 1
    assert f"{exp}/runs_plan.md:11: run 'r3': GPU count is 0" in human.stdout


def test_a_missing_column_is_reported_at_the_header(tmp_path: Path) -> None:
    exp = write_plan(
        tmp_path,
        "# p\n\n| Run | Base model | Method | GPUs |\n|---|---|---|---|\n"
        "| a | llama3.2-1b | lora | 1 |\n",
    )
    proc = run_cli("runs", "validate", str(exp), "--json")
    assert proc.returncode == 1
    (problem,) = json.loads(proc.stdout)["problems"]
    assert problem["line"] == 3 and "column 'Dataset' is missing" in problem["message"]


def test_an_unknown_model_is_reported_on_its_own_line(tmp_path: Path) -> None:
    exp = write_plan(
        tmp_path,
        "# p\n\n## Run: a\n- **Backend**: tiny\n- **Method**: lora\n- **Dataset**: d\n"
        "- **GPUs**: cpu\n- **Base model**: gpt-17\n",
    )
    proc = run_cli("runs", "validate", str(exp), "--json")
    assert proc.returncode == 1
    (problem,) = json.loads(proc.stdout)["problems"]
    assert problem["line"] == 8 and "model 'gpt-17' is unknown" in problem["message"]


def test_sweep_runs_must_share_their_resources(tmp_path: Path) -> None:
    exp = write_plan(
        tmp_path,
        "# p\n\n| Run | Base model | Method | Dataset | GPUs | Sweep |\n|---|---|---|---|---|---|\n"
        "| a | llama3.2-1b | lora | d | 1 | s |\n| b | llama3.2-1b | lora | d | 2 | s |\n",
    )
    proc = run_cli("runs", "validate", str(exp), "--json")
    (problem,) = json.loads(proc.stdout)["problems"]
    assert problem["line"] == 6 and "same gpus" in problem["message"]


def test_no_runs_at_all(tmp_path: Path) -> None:
    exp = write_plan(tmp_path, "# nothing planned yet\n")
    proc = run_cli("runs", "validate", str(exp), "--json")
    assert proc.returncode == 1
    assert "no runs found" in json.loads(proc.stdout)["problems"][0]["message"]


def test_other_commands_refuse_an_invalid_plan_in_one_line_and_create_nothing(
    tmp_path: Path,
) -> None:
    exp = write_plan(tmp_path, BAD)
    before = sorted(p.name for p in exp.rglob("*"))
    for cmd in ("setup-dirs", "configs", "slurm-scripts", "launch"):
        proc = run_cli("runs", cmd, str(exp))
        assert_one_line_error(proc, "runs_plan.md:10", "duplicate run name", "and 7 more problems")
    assert sorted(p.name for p in exp.rglob("*")) == before


def test_missing_plan_is_a_one_line_error(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("runs", "validate", str(tmp_path)), "runs_plan.md", "runs plan")


def test_plan_scaffolds_once_then_only_validates(tmp_path: Path) -> None:
    exp = tmp_path / "my exp"
    proc = run_cli("runs", "plan", str(exp), "--runs", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["created"] and out["valid"]
    assert [r["name"] for r in out["runs"]] == ["base", "run1", "run2", "run3"]
    status = yaml.safe_load((exp / "runs_status.yaml").read_text())
    assert status["experiment"] == "my exp"
    assert status["runs"]["base"]["state"] == "SKIPPED"
    assert {status["runs"][f"run{i}"]["state"] for i in (1, 2, 3)} == {"PLANNED"}

    plan = exp / "runs_plan.md"
    plan.write_text(plan.read_text().replace("| run3 |", "| run3b |") + "\nmy notes\n")
    edited = plan.read_text()
    proc = run_cli("runs", "plan", str(exp), "--json")
    out = json.loads(proc.stdout)
    assert not out["created"] and out["status_added"] == ["run3b"]
    assert plan.read_text() == edited
    status = yaml.safe_load((exp / "runs_status.yaml").read_text())
    assert "run3" in status["runs"] and status["runs"]["run3b"]["state"] == "PLANNED"


def test_setup_dirs_creates_only_folders_and_a_readme_and_is_idempotent(tmp_path: Path) -> None:
    exp = write_plan(tmp_path, GOOD)
    proc = run_cli("runs", "setup-dirs", str(exp), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["verified"] and len(out["created"]) == 5
    for run in ("base", "r1", "r2", "tiny-one"):
        assert (exp / run / "evaluations").is_dir()
        assert sorted(p.name for p in (exp / run).iterdir()) == ["evaluations"]
    readme = exp / "README.md"
    assert "| r2 | llama3.1-8b | full | alpaca_cleaned | 16 |" in readme.read_text()
    readme.write_text(readme.read_text() + "my notes\n")
    (exp / "r1" / "evaluations" / "keep.txt").write_text("x")
    again = json.loads(run_cli("runs", "setup-dirs", str(exp), "--json").stdout)
    assert again["created"] == [] and len(again["existing"]) == 5
    assert readme.read_text().endswith("my notes\n")
    assert (exp / "r1" / "evaluations" / "keep.txt").exists()


def test_setup_dirs_dry_run_creates_nothing(tmp_path: Path) -> None:
    exp = write_plan(tmp_path, GOOD)
    out = json.loads(run_cli("runs", "setup-dirs", str(exp), "--dry-run", "--json").stdout)
    assert len(out["created"]) == 5
    assert sorted(p.name for p in exp.iterdir()) == ["runs_plan.md"]
