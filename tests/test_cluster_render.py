"""Rendered sbatch scripts: golden files (like submitit), sorted quoted options, no injection.

Regenerate the golden files after an intended change with
`TRAINWRIGHT_UPDATE_GOLDEN=1 pytest tests/test_cluster_render.py` and review the diff.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import REPO, assert_one_line_error, run_cli
from trainwright.backends.tiny_model.data import write_example_dataset
from trainwright.cluster.checks import load_plan
from trainwright.cluster.generate import Settings, write_scripts
from trainwright.cluster.render import checkpoint_glob, sbatch_line
from trainwright.cluster.sizing import Overrides

GOLDEN = REPO / "tests" / "data" / "cluster"
PLACEHOLDER = "/experiments/golden"
PYTHON = "/opt/venv/bin/python"  # does not exist: `tune`/`torchrun` come from PATH
TORCHTUNE_CONFIG = "output_dir: output\nbatch_size: 4\ngradient_accumulation_steps: 2\n"
TINY_CONFIG = "output_dir: checkpoints\nbatch_size: 4\ngradient_accumulation_steps: 1\n"


def make_experiment(root: Path) -> Path:
    exp = root / "golden"
    exp.mkdir()
    shutil.copy(GOLDEN / "golden_plan.md", exp / "runs_plan.md")
    plan = load_plan(exp).require_valid()
    for run in plan.runs:
        (exp / run.name).mkdir()
        if run.trains:
            config = TINY_CONFIG if run.backend == "tiny" else TORCHTUNE_CONFIG
            (exp / run.name / "finetune.yaml").write_text(config)
    return exp


def render_all(root: Path) -> dict[str, str]:
    exp = make_experiment(root)
    plan = load_plan(exp)
    out: dict[str, str] = {}
    settings = Settings(partition="gpu", account="lab", python=PYTHON)
    result = write_scripts(exp, plan, settings)
    for item in [*result["runs"], *result["sweeps"]]:
        if "script" in item:
            name = item.get("sweep") or item["run"]
            prefix = "sweep-" if "sweep" in item else ""
            text = Path(item["script"]).read_text()
            out[f"{prefix}{name}.slurm"] = text.replace(str(exp), PLACEHOLDER)
    torchrun = Settings(
        partition="gpu",
        python=PYTHON,
        launcher="torchrun",
        gpu_type="a100",
        setup=["module load cuda/12.4"],
        overrides=Overrides(mem="480G", cpus_per_gpu=12),
    )
    result = write_scripts(exp, plan, torchrun, only=("multinode", "node4"), dry_run=False)
    for item in result["runs"]:
        text = Path(item["script"]).read_text()
        out[f"{item['run']}-torchrun.slurm"] = text.replace(str(exp), PLACEHOLDER)
    return out


def test_rendered_scripts_match_the_golden_files(tmp_path: Path) -> None:
    rendered = render_all(tmp_path)
    assert set(rendered) == {
        "single.slurm",
        "node4.slurm",
        "multinode.slurm",
        "cpu.slurm",
        "lr-a.slurm",
        "lr-b.slurm",
        "lr-c.slurm",
        "sweep-lr.slurm",
        "multinode-torchrun.slurm",
        "node4-torchrun.slurm",
    }
    if os.environ.get("TRAINWRIGHT_UPDATE_GOLDEN") == "1":
        for name, text in rendered.items():
            (GOLDEN / name).write_text(text)
    for name, text in rendered.items():
        golden = GOLDEN / name
        assert golden.exists(), f"no golden file {golden}; run with TRAINWRIGHT_UPDATE_GOLDEN=1"
        assert text == golden.read_text(), f"{name} differs from its golden file"


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.glob("*.slurm")))
def test_golden_scripts_are_valid_bash_with_sorted_options(name: str) -> None:
    path = GOLDEN / name
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    options = [ln for ln in path.read_text().splitlines() if ln.startswith("#SBATCH")]
    keys = [re.match(r"#SBATCH --([a-z-]+)", ln).group(1) for ln in options]
    assert keys == sorted(keys)
    for key in ("open-mode", "requeue", "signal", "time", "job-name", "output"):
        assert key in keys, (name, key)
    assert "#SBATCH --signal=B:USR2@90" in options
    assert "#SBATCH --open-mode=append" in options


def test_golden_forms_differ_where_they_should() -> None:
    single = (GOLDEN / "single.slurm").read_text()
    assert "lora_finetune_single_device --config finetune.yaml" in single
    assert "--gpus-per-node=1" in single and "--partition=gpu" in single
    node4 = (GOLDEN / "node4.slurm").read_text()
    assert "tune run --nproc_per_node 4 full_finetune_distributed" in node4
    multi = (GOLDEN / "multinode.slurm").read_text()
    assert "#SBATCH --nodes=2" in multi and "--gpus-per-node=8" in multi
    assert (
        'srun --kill-on-bad-exit=1 --ntasks-per-node=1 tune run --nnodes "$SLURM_NNODES"' in multi
    )
    assert 'MASTER_ADDR="$(scontrol show hostnames' in multi
    torchrun = (GOLDEN / "multinode-torchrun.slurm").read_text()
    assert "torchrun --nnodes" in torchrun and '"$RECIPE_FILE"' in torchrun
    assert "#SBATCH --gpus-per-node=a100:8" in torchrun and "module load cuda/12.4" in torchrun
    assert "#SBATCH --cpus-per-task=96" in torchrun and "#SBATCH --mem=480G" in torchrun
    cpu = (GOLDEN / "cpu.slurm").read_text()
    assert "gpus-per-node" not in cpu and "trainwright.backends.tiny_model.train" in cpu
    sweep = (GOLDEN / "sweep-lr.slurm").read_text()
    assert "#SBATCH --array=0-2" in sweep and "SLURM_ARRAY_TASK_ID" in sweep
    assert all(f"{PLACEHOLDER}/lr-{x}" in sweep for x in "abc")
    assert "%A_%a" in sweep


def test_sbatch_values_are_shell_quoted() -> None:
    assert sbatch_line("job-name", "a b'c") == "#SBATCH --job-name='a b'\"'\"'c'"
    assert sbatch_line("requeue", True) == "#SBATCH --requeue"
    assert sbatch_line("time", "01:00:00") == "#SBATCH --time=01:00:00"
    assert checkpoint_glob("/x/a*b [1]", "*.pt") == "/x/a\\*b \\[1\\]/*.pt"


EVIL_EXPERIMENT = "exp with space 'q' \"dq\" $(touch pwned-dir)"
EVIL_RUN = "$(touch pwned-xyz) `touch pwned-tick` it's; touch pwned-semi"


def _evil_plan(run_name: str) -> str:
    return f"""# Runs plan: evil

- **Backend**: tiny

## Runs

| Run | Base model | Method | Dataset | GPUs |
|---|---|---|---|---|
| {run_name} | bundled | lora | data | cpu |
"""


def test_names_and_paths_with_quotes_and_substitutions_are_not_executed(tmp_path: Path) -> None:
    exp = tmp_path / EVIL_EXPERIMENT
    exp.mkdir()
    (exp / "runs_plan.md").write_text(_evil_plan(EVIL_RUN))
    write_example_dataset(exp / "data", count=2, size=32)  # pre-flight reads it, as the trainer
    assert run_cli("runs", "setup-dirs", str(exp)).returncode == 0
    assert run_cli("runs", "configs", str(exp)).returncode == 0
    # /bin/true as the interpreter: the script runs for real, the trainer returns at once.
    proc = run_cli("runs", "slurm-scripts", str(exp), "--python", "/bin/true", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_dir = exp / EVIL_RUN
    script = run_dir / "finetune.slurm"
    assert f"--job-name={EVIL_EXPERIMENT}/{EVIL_RUN}" not in script.read_text()  # quoted
    res = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "trainwright: end" in res.stdout and "exit=0" in res.stdout
    assert not [p for p in tmp_path.rglob("pwned-*")], "a name was executed by the shell"


def test_a_run_name_with_a_slash_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "runs_plan.md").write_text(_evil_plan("a/b $(touch x)"))
    before = sorted(p.name for p in exp.iterdir())
    proc = run_cli("runs", "setup-dirs", str(exp))
    assert_one_line_error(proc, "runs_plan.md:9", "slash")
    assert sorted(p.name for p in exp.iterdir()) == before


def test_slurm_scripts_needs_the_configs_first(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path)
    (exp / "single" / "finetune.yaml").unlink()
    proc = run_cli("runs", "slurm-scripts", str(exp))
    assert_one_line_error(proc, "single", "finetune.yaml", "runs configs")
    assert not (exp / "single" / "finetune.slurm").exists()


def test_bad_time_option_is_one_line_error(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path)
    assert_one_line_error(run_cli("runs", "slurm-scripts", str(exp), "--time", "soon"), "--time")
    assert_one_line_error(run_cli("runs", "slurm-scripts", str(exp), "--mem", "lots"), "memory")
    assert not list(exp.glob("*/finetune.slurm"))


def test_rerender_keeps_the_previous_script(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path)
    assert run_cli("runs", "slurm-scripts", str(exp), "--only", "single").returncode == 0
    script = exp / "single" / "finetune.slurm"
    script.write_text(script.read_text() + "# my edit\n")
    proc = run_cli("runs", "slurm-scripts", str(exp), "--only", "single", "--time", "3h", "--json")
    assert proc.returncode == 0, proc.stderr
    backups = list((exp / "single").glob("finetune.slurm.*.bak"))
    assert len(backups) == 1 and backups[0].read_text().endswith("# my edit\n")
    assert "#SBATCH --time=03:00:00" in script.read_text()
