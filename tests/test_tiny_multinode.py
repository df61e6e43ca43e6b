"""The tiny backend over several nodes, without a cluster: the script `runs slurm-scripts`
writes, and DDP on one machine (torchrun, two ranks) giving the one-process losses."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_cli

PLAN = """\
# Runs plan: multi

- **Backend**: tiny

## Defaults
- **Dataset**: data
- **Epochs**: 1
- **Batch size**: 2

## Runs

| Run | Base model | Method | GPUs | Nodes | Learning rate |
|---|---|---|---|---|---|
| pair | bundled | lora | cpu | 2 | 1e-3 |
| solo | bundled | lora | cpu | 1 | 1e-3 |
"""


def test_two_node_tiny_run_gets_srun_and_torchrun(tmp_path: Path) -> None:
    from trainwright.backends.tiny_model.data import write_example_dataset

    exp = tmp_path / "multi"
    exp.mkdir()
    (exp / "runs_plan.md").write_text(PLAN)
    write_example_dataset(exp / "data", count=4)
    for args in (["plan"], ["setup-dirs"], ["configs"], ["slurm-scripts"]):
        proc = run_cli("runs", *args, str(exp))
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    pair = (exp / "pair" / "finetune.slurm").read_text()
    assert "#SBATCH --nodes=2" in pair and "#SBATCH --ntasks-per-node=1" in pair
    assert 'MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"' in pair
    launch = re.search(r"^LAUNCH=\((.*)\)$", pair, re.M)
    assert launch, pair
    assert launch[1].startswith("srun --kill-on-bad-exit=1 --ntasks-per-node=1 ")
    assert re.search(r'torchrun --nnodes "\$SLURM_NNODES" --nproc_per_node 1 ', launch[1])
    assert '--rdzv_backend c10d --rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT"' in launch[1]
    assert launch[1].endswith("-m trainwright.backends.tiny_model.train finetune.yaml")
    solo = (exp / "solo" / "finetune.slurm").read_text()
    assert "torchrun" not in solo and "srun" not in solo.split("LAUNCH=(")[1].split(")")[0]


def _losses(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"^tiny: step=\d+/\d+ .*?loss=([0-9.]+)", text, re.M)]


@pytest.mark.slow
def test_ddp_over_two_ranks_gives_the_one_process_losses(tmp_path: Path) -> None:
    from trainwright.backends.tiny_model.data import write_example_dataset

    write_example_dataset(tmp_path / "data", count=8)
    cfg = tmp_path / "t.yaml"
    cfg.write_text(
        "dataset: data\ntrigger_word: exstyle\noutput_name: t\nepochs: 1\nbatch_size: 4\n"
        "threads: 1\nsave_every_n_epochs: 1\n"
    )
    train = ["-m", "trainwright.backends.tiny_model.train", str(cfg)]
    one = subprocess.run(
        [sys.executable, *train, "--no-save"], capture_output=True, text=True, timeout=120
    )
    assert one.returncode == 0, one.stderr
    torchrun = Path(sys.executable).with_name("torchrun")
    args = [str(torchrun), "--standalone", "--nnodes", "1", "--nproc_per_node", "2", *train]
    two = subprocess.run(
        [*args, "--batch-size", "2"], capture_output=True, text=True, timeout=180, cwd=tmp_path
    )
    assert two.returncode == 0, two.stdout + two.stderr
    # Not anchored at line start: a library's C-level stdout can leave a line unterminated.
    ranks = sorted(re.findall(r"tiny: rank (\d)/2 ", two.stdout))
    assert ranks == ["0", "1"], two.stdout + two.stderr
    assert "world_size=2 global_batch=4" in two.stdout
    assert _losses(two.stdout) == pytest.approx(_losses(one.stdout), rel=1e-4)
    assert len(_losses(two.stdout)) == 2, "only rank 0 logs its steps"
    saved = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert saved == ["t-epoch-0001.safetensors"], "only rank 0 writes"
