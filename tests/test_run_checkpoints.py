"""Checkpoints: listing with epoch/step/loss/size for each trainer's naming, and the retention
rule (newest K; never the best, the only, or one still being written)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from helpers import run_cli
from support.tiny_project import make_project
from trainwright.backends import tiny
from trainwright.backends.tiny_model import lora
from trainwright.backends.tiny_model.model import TinyDenoiser
from trainwright.run.checkpoints import retention, scan


def write_tiny_checkpoint(folder: Path, epoch: int, loss: float, age_s: float = 3600) -> Path:
    layers = lora.inject(TinyDenoiser(), rank=2, alpha=2)
    path = folder / f"demo-epoch-{epoch:04d}.safetensors"
    folder.mkdir(parents=True, exist_ok=True)
    lora.save(path, layers, {"epoch": str(epoch), "step": str(epoch * 2), "loss": str(loss)})
    t = time.time() - age_s + epoch
    os.utime(path, (t, t))
    return path


@pytest.mark.parametrize(
    "names,expected",
    [
        (
            ["my-000001.safetensors", "my-000002.safetensors", "my.safetensors"],
            [(1, None), (2, None), (None, None)],
        ),  # kohya: epochs, then the final one
        (["my-step00000250.safetensors"], [(None, 250)]),  # kohya save_every_n_steps
        (["my_000000250.safetensors", "my_000000500.safetensors"], [(None, 250), (None, 500)]),
        (
            ["epoch_0/adapter_model.safetensors", "epoch_1/adapter_model.safetensors"],
            [(0, None), (1, None)],
        ),  # torchtune
        (["checkpoint-500/pytorch_lora_weights.safetensors"], [(None, 500)]),  # SimpleTuner
    ],
)
def test_names_of_each_trainer(
    tmp_path: Path, names: list[str], expected: list[tuple[int | None, int | None]]
) -> None:
    for i, name in enumerate(names):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * (i + 1))
        os.utime(path, (1000 + i, 1000 + i))
    found = scan(tmp_path)
    assert [(c.epoch, c.step) for c in found] == expected


def test_retention_rule(tmp_path: Path) -> None:
    losses = {1: 0.30, 2: 0.12, 3: 0.20, 4: 0.25, 5: 0.22, 6: 0.21}
    for epoch, loss in losses.items():
        write_tiny_checkpoint(tmp_path, epoch, loss)
    (tmp_path / "demo-epoch-0007.safetensors.partial").write_bytes(b"half")
    found = scan(tmp_path, tiny.checkpoint_info)
    assert [c.epoch for c in found if not c.writing] == [1, 2, 3, 4, 5, 6]
    assert found[1].loss == pytest.approx(0.12) and found[1].step == 4
    kept, removable = retention(found, keep=2, live=False)
    assert sorted(c.path.name for c in removable) == [
        "demo-epoch-0001.safetensors",
        "demo-epoch-0003.safetensors",
        "demo-epoch-0004.safetensors",
    ]
    reasons = {c.path.name: c.keep_reasons for c in kept}
    assert reasons["demo-epoch-0002.safetensors"] == ["best loss"]
    assert reasons["demo-epoch-0007.safetensors.partial"] == ["still being written"]
    assert reasons["demo-epoch-0006.safetensors"] == ["among the newest 2"]


def test_the_only_one_and_recent_ones_while_live_are_kept(tmp_path: Path) -> None:
    only = write_tiny_checkpoint(tmp_path / "a", 1, 0.3)
    kept, removable = retention(scan(tmp_path / "a", tiny.checkpoint_info), keep=1, live=False)
    assert [c.path for c in kept] == [only] and not removable
    for epoch in (1, 2, 3):
        write_tiny_checkpoint(tmp_path / "b", epoch, 0.1 * epoch, age_s=5)  # all fresh
    found = scan(tmp_path / "b", tiny.checkpoint_info)
    _, removable = retention(found, keep=1, live=True)
    assert removable == []
    _, removable = retention(found, keep=1, live=False)
    assert [c.epoch for c in removable] == [2]  # 1 is the best, 3 the newest


def test_cli_lists_and_prunes_only_by_the_rule(tmp_path: Path) -> None:
    g = make_project(tmp_path)
    folder = g.project_dir("demo") / "checkpoints"
    for epoch, loss in {1: 0.3, 2: 0.1, 3: 0.25, 4: 0.2, 5: 0.22}.items():
        write_tiny_checkpoint(folder, epoch, loss)
    (folder / "notes.txt").write_text("mine")
    root = str(g.root)
    proc = run_cli("--grimoire", root, "checkpoints", "demo", "--keep", "2")
    assert proc.returncode == 0 and "would be removed by --prune" in proc.stdout
    assert len(list(folder.glob("*.safetensors"))) == 5  # listing deletes nothing
    out = json.loads(run_cli("--grimoire", root, "checkpoints", "demo", "--json").stdout)
    assert [c["label"] for c in out["checkpoints"]] == [f"epoch-{i}" for i in range(1, 6)]
    assert out["checkpoints"][0]["size"] > 0 and out["removed"] == []
    proc = run_cli("--grimoire", root, "checkpoints", "demo", "--keep", "2", "--prune", "--json")
    out = json.loads(proc.stdout)
    assert sorted(Path(p).name for p in out["removed"]) == [
        "demo-epoch-0001.safetensors",
        "demo-epoch-0003.safetensors",
    ]
    left = sorted(p.name for p in folder.iterdir())
    assert left == [
        "demo-epoch-0002.safetensors",
        "demo-epoch-0004.safetensors",
        "demo-epoch-0005.safetensors",
        "notes.txt",
    ]


def test_no_checkpoints_yet_and_bad_requests(tmp_path: Path) -> None:
    g = make_project(tmp_path)
    proc = run_cli("--grimoire", str(g.root), "checkpoints", "demo")
    assert proc.returncode == 0 and "no checkpoints yet" in proc.stdout
    proc = run_cli("--grimoire", str(g.root), "checkpoints", "demo", "--keep", "0")
    assert proc.returncode == 2 and "0" in proc.stderr
    proc = run_cli("--grimoire", str(g.root), "checkpoints", "nope")
    assert proc.returncode == 2 and "no project 'nope'" in proc.stderr


def test_a_checkpoint_folder_is_one_checkpoint_and_never_pruned_file_by_file(
    tmp_path: Path,
) -> None:
    """HF Trainer (TRL) and torchtune save a folder per checkpoint (weights, adapter, optimizer
    state): listed once, by its number, and no file inside it is ever removed."""
    from trainwright.run.checkpoints import prune, retention, scan

    out = tmp_path / "output"
    for step in (3, 6, 9):
        sub = out / f"checkpoint-{step}"
        sub.mkdir(parents=True)
        for name in (
            "adapter_model.safetensors",
            "optimizer.pt",
            "scheduler.pt",
            "rng_state.pth.bin",
        ):
            (sub / name).write_bytes(b"x" * step)
    found = scan(out)
    assert [c.path.name for c in found] == ["checkpoint-3", "checkpoint-6", "checkpoint-9"]
    assert [c.step for c in found] == [3, 6, 9] and found[0].size == 4 * 3
    kept, removable = retention(found, keep=1, live=False)
    assert removable == [] and all(c.keep_reasons for c in kept)
    before = sorted(p for p in out.rglob("*") if p.is_file())
    assert prune(removable) == []
    assert sorted(p for p in out.rglob("*") if p.is_file()) == before
