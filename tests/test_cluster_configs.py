"""finetune.yaml per run through the backends' writers; torchtune's checked by `tune validate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import assert_one_line_error, run_cli

PLAN = """\
# Runs plan: tt

- **Backend**: torchtune

## Defaults
- **Dataset**: alpaca_cleaned
- **Epochs**: 1

## Run: base
- **Base model**: llama3.2-1b
- **Method**: base

## Run: lora1
- **Base model**: llama3.2-1b
- **Method**: lora
- **GPUs**: 1
- **LR**: 3e-4
- **Batch size**: 8
- **LoRA rank**: 32
- **Packed**: yes
- **Max seq len**: 1024
- **Max steps**: 500

## Run: full4
- **Base model**: llama3.1-8b
- **Method**: full
- **GPUs**: 4
- **LR**: 1e-5
- **Batch size**: 2

## Run: small
- **Base model**: bundled
- **Backend**: tiny
- **Method**: lora
- **GPUs**: cpu
- **LR**: 1e-3
- **Batch size**: 4
"""


@pytest.fixture
def exp(tmp_path: Path) -> Path:
    folder = tmp_path / "tt"
    folder.mkdir()
    (folder / "runs_plan.md").write_text(PLAN)
    assert run_cli("runs", "setup-dirs", str(folder)).returncode == 0
    return folder


def test_torchtune_configs_are_written_for_torchtune_runs_and_pass_tune_validate(
    exp: Path,
) -> None:
    proc = run_cli("runs", "torchtune-configs", str(exp), "--validate", "--json")
    out = json.loads(proc.stdout)
    actions = {c["run"]: c["action"] for c in out["configs"]}
    assert actions == {
        "base": "skipped",
        "lora1": "created",
        "full4": "created",
        "small": "skipped",
    }
    # validated by torchtune itself; the only problem left is the weights folder to fill in
    for item in out["configs"]:
        if item["action"] == "created":
            assert item["validated"] is True
            assert [p for p in item["problems"] if "SET-ME" not in p] == [], item
    assert proc.returncode == 1  # checkpoint_dir still says SET-ME
    assert not (exp / "small" / "finetune.yaml").exists()
    lora = yaml.safe_load((exp / "lora1" / "finetune.yaml").read_text())
    assert lora["model"]["_component_"] == "torchtune.models.llama3_2.lora_llama3_2_1b"
    assert (lora["batch_size"], lora["model"]["lora_rank"], lora["max_steps_per_epoch"]) == (
        8,
        32,
        500,
    )
    assert lora["optimizer"]["lr"] == 3e-4
    assert lora["dataset"]["packed"] is True and lora["tokenizer"]["max_seq_len"] == 1024
    full = yaml.safe_load((exp / "full4" / "finetune.yaml").read_text())
    assert "lora_rank" not in full["model"] and full["batch_size"] == 2
    assert "full_finetune_distributed" in (exp / "full4" / "finetune.yaml").read_text()


def test_configs_writes_every_backend_and_keeps_edited_ones(exp: Path) -> None:
    out = json.loads(run_cli("runs", "configs", str(exp), "--json").stdout)
    actions = {c["run"]: c["action"] for c in out["configs"]}
    assert actions == {
        "base": "skipped",
        "lora1": "created",
        "full4": "created",
        "small": "created",
    }
    tiny = yaml.safe_load((exp / "small" / "finetune.yaml").read_text())
    assert tiny["dataset"] == str(exp / "alpaca_cleaned") and tiny["batch_size"] == 4
    config = exp / "lora1" / "finetune.yaml"
    edited = config.read_text().replace("checkpoint_dir: SET-ME", "checkpoint_dir: /models/l1")
    config.write_text(edited)
    again = json.loads(run_cli("runs", "configs", str(exp), "--json").stdout)
    assert {c["run"]: c["action"] for c in again["configs"]}["lora1"] == "kept"
    assert config.read_text() == edited
    forced = json.loads(run_cli("runs", "configs", str(exp), "--force", "--json").stdout)
    assert {c["run"]: c["action"] for c in forced["configs"]}["lora1"] == "rewritten"
    (backup,) = (exp / "lora1").glob("finetune.yaml.*.bak")
    assert backup.read_text() == edited


def test_packing_without_a_length_is_caught_in_a_written_config(exp: Path) -> None:
    run_cli("runs", "torchtune-configs", str(exp), "--only", "lora1")
    config = exp / "lora1" / "finetune.yaml"
    config.write_text(config.read_text().replace("max_seq_len: 1024", "max_seq_len: null"))
    no_slurm = {"PATH": str(exp)}  # no sbatch: the local executor's pre-flight
    proc = run_cli(
        "runs", "launch", str(exp), "--only", "lora1", "--dry-run", "--json", env=no_slurm
    )
    assert proc.returncode == 1
    problems = json.loads(proc.stdout)["preflight"]["problems"]
    assert any("dataset.packed is true but tokenizer.max_seq_len is not set" in p for p in problems)
    assert any("checkpoint_dir is SET-ME" in p for p in problems)


def test_configs_need_the_run_folders(tmp_path: Path) -> None:
    folder = tmp_path / "nofolders"
    folder.mkdir()
    (folder / "runs_plan.md").write_text(PLAN)
    proc = run_cli("runs", "torchtune-configs", str(folder))
    assert_one_line_error(proc, "run folders missing", "runs setup-dirs")
    assert sorted(p.name for p in folder.iterdir()) == ["runs_plan.md"]


def test_the_vram_estimate_sizes_the_script_and_flags_a_run_too_big_for_the_card(
    exp: Path,
) -> None:
    assert run_cli("runs", "configs", str(exp)).returncode == 1  # SET-ME: weights not given
    proc = run_cli(
        "runs", "slurm-scripts", str(exp), "--gpu-type", "T4", "--only", "full4,lora1", "--json"
    )
    out = json.loads(proc.stdout)
    runs = {r["run"]: r for r in out["runs"]}
    assert runs["lora1"]["vram_gb"] and runs["full4"]["vram_gb"]
    assert runs["lora1"]["fits"] is True  # a 1B LoRA on a 16 GB card
    assert runs["lora1"]["notes"]["time"].startswith("estimate")  # Max steps + a known card
    assert runs["full4"]["fits"] is False  # a full 8B fine-tune does not fit 16 GB
    assert runs["full4"]["vram_gb"] > 16
    assert proc.returncode == 1 and out["too_big"] == ["full4"]
    assert runs["full4"]["mem"] == "128G"  # 32G per GPU x 4 (twice the 16 GB of weights is less)
    script = (exp / "lora1" / "finetune.slurm").read_text()
    assert "#SBATCH --gpus-per-node=T4:1" in script
    assert f"#SBATCH --time={runs['lora1']['time']}" in script
