"""tiny-llm, the catalog's CPU-sized Qwen2, through torchtune for real (issue 15 §1).

Quick tests: what the config writer emits for it (component builders at the catalog's widths,
the special-tokens file, device cpu) and which plans may run on the CPU. Slow tests: the model
built by `python -m trainwright.backends.torchtune_tiny`, the configs that `trainwright config
--backend torchtune` writes run by the real `tune run` (LoRA, full, QLoRA) from a `trainwright init`
project, and `trainwright dry-run` (Gate 4) on it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers import run_cli
from support.tune_project import make_tune_project, ok
from trainwright.backends import torchtune as tt
from trainwright.hardware import catalog

pytestmark = pytest.mark.skipif(
    not __import__("importlib").util.find_spec("torchtune"),
    reason="torchtune is not installed (pip install '.[tune]')",
)


def test_writer_emits_component_builder_with_catalog_widths() -> None:
    part = catalog.load().get("tiny-llm").part("decoder")
    cfg = tt.torchtune_config("tiny-llm", checkpoint_dir="/m", max_seq_len=128, device="cpu")
    model = cfg["model"]
    assert model["_component_"] == "torchtune.models.qwen2.lora_qwen2"
    assert (model["embed_dim"], model["num_layers"], model["vocab_size"]) == (
        part.hidden, part.layers, part.vocab,
    )  # fmt: skip
    assert (model["num_heads"], model["num_kv_heads"], model["intermediate_dim"]) == (4, 2, 512)
    assert model["max_seq_len"] == 128 and model["tie_word_embeddings"] is True
    assert cfg["tokenizer"]["special_tokens_path"] == "/m/special_tokens.json"
    assert cfg["device"] == "cpu"
    full = tt.torchtune_config("tiny-llm", method="full", checkpoint_dir="/m")["model"]
    assert full["_component_"] == "torchtune.models.qwen2.qwen2" and "lora_rank" not in full
    qlora = tt.torchtune_config("tiny-llm", method="qlora", checkpoint_dir="/m")["model"]
    assert qlora["quantize_base"] is True and qlora["embed_dim"] % 256 == 0  # torchao NF4 blocks
    named = tt.torchtune_config("llama3.2-1b")
    assert named["model"]["_component_"].endswith("lora_llama3_2_1b")  # size builders unchanged
    assert "embed_dim" not in named["model"] and named["device"] == "cuda"


def test_only_cpu_sized_models_may_plan_cpu() -> None:
    assert tt.cpu_problem("tiny-llm") is None
    assert "needs GPUs for llama3.2-1b" in (tt.cpu_problem("llama3.2-1b") or "")


def test_missing_checkpoint_and_tokenizer_files_are_named(tmp_path: Path) -> None:
    cfg = tt.torchtune_config("tiny-llm", checkpoint_dir=str(tmp_path / "none"))
    found = tt.missing_files(cfg, "finetune.yaml")
    assert any("checkpointer.checkpoint_dir" in f and "does not exist" in f for f in found)
    assert any(f.startswith("finetune.yaml: tokenizer.path ") for f in found)
    placeholder = tt.cluster_problems(tt.torchtune_config("tiny-llm"), Path("r/finetune.yaml"))
    assert any("no local checkpoint" in p and "'Checkpoint dir'" in p for p in placeholder)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_tune_project(tmp_path / "studio")


def _tune_run(root: Path, steps: int) -> tuple[subprocess.CompletedProcess[str], float]:
    folder = root / "grimoire" / "training" / "demo"
    header = (folder / "finetune.yaml").read_text().split("\n")[1]
    recipe = re.search(r"tune run (\S+)", header).group(1)  # the command the header prints
    start = time.monotonic()
    proc = subprocess.run(
        [str(Path(tt.command(folder / "finetune.yaml")[0])), "run", recipe, "--config",
         "finetune.yaml", f"max_steps_per_epoch={steps}"],
        cwd=folder, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return proc, time.monotonic() - start


@pytest.mark.slow
def test_built_model_loads_with_torchtunes_own_classes(project: Path) -> None:
    from torchtune.models.qwen2 import qwen2_tokenizer

    model = project / "llm" / "model"
    config = json.loads((model / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"]) == (256, 2)
    assert (model / "model.safetensors").stat().st_size < 8_000_000  # a few MB
    tok = qwen2_tokenizer(
        str(model / "vocab.json"), str(model / "merges.txt"),
        special_tokens_path=str(model / "special_tokens.json"),
    )  # fmt: skip
    ids = tok.encode("What is 3 plus 4?")
    assert ids and max(ids) < config["vocab_size"] and tok.eos_id < config["vocab_size"]
    assert tok.decode(ids[:-1]) == "What is 3 plus 4?"
    rows = json.loads((project / "llm" / "data" / "instruct.json").read_text())
    assert len(rows) >= 300 and set(rows[0]) == {"input", "output"}


@pytest.mark.slow
def test_lora_full_and_qlora_configs_train_for_real_on_the_cpu(project: Path) -> None:
    """The configs `trainwright config --backend torchtune` writes, run by `tune run`."""
    root, folder = project, project / "grimoire" / "training" / "demo"
    timings = {}
    for method in ("lora", "full", "qlora"):
        ok(run_cli("config", "--project", "demo", "--backend", "torchtune", "--preset", "quick",
                   f"method={method}", "precision=fp32", cwd=root))  # fmt: skip
        cfg = yaml.safe_load((folder / "finetune.yaml").read_text())
        written = cfg["checkpointer"]["checkpoint_dir"]  # relative to the folder tune runs in
        assert cfg["device"] == "cpu" and not Path(written).is_absolute()
        assert (folder / written).resolve() == (root / "llm" / "model").resolve()
        proc, timings[method] = _tune_run(root, 24)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = proc.stdout + proc.stderr
        assert "1|24|Loss: " in out and "Model checkpoint of size" in out
        state = tt.parse_log(out)
        assert state.step == state.steps == 24 and state.finished
        epoch = folder / "output" / "epoch_0"
        assert (epoch / "model-00001-of-00001.safetensors").stat().st_size > 1_000_000
        if method != "full":
            assert (epoch / "adapter_model.safetensors").is_file()
        disk = "".join(p.read_text() for p in (folder / "output" / "logs").glob("log_*.txt"))
        rates = [float(x) for x in re.findall(r"tokens_per_second_per_gpu:([\d.]+)", disk)]
        assert rates and all(r > 0 for r in rates)
        timings[f"{method} tokens/s (median)"] = sorted(rates)[len(rates) // 2]
        shutil.rmtree(folder / "output")  # the next method starts clean
    print("tune run, 24 steps on tiny-llm:", timings)


@pytest.mark.slow
def test_dry_run_runs_torchtune_for_a_few_steps(project: Path) -> None:
    root = project
    ok(run_cli("config", "--project", "demo", "--backend", "torchtune", cwd=root))
    ok(run_cli("gate", "check", "demo", "--gate", "2", cwd=root), "GO", "runs on the CPU")
    ok(run_cli("gate", "check", "demo", "--gate", "3", cwd=root), "GO")
    start = time.monotonic()
    out = ok(run_cli("dry-run", "demo", cwd=root, timeout=600), "Gate 4 GO", "3 training steps ran")
    print(f"dry-run on tiny-llm: {time.monotonic() - start:.1f} s")
    log = (root / "grimoire" / "training" / "demo" / "dry-run.log").read_text()
    assert "1|3|Loss: " in log and "LoRAFinetuneRecipeSingleDevice" in log, out
    assert not (root / "grimoire" / "training" / "demo" / "output").exists()


@pytest.mark.slow
def test_tune_missing_is_a_clear_error(project: Path, tmp_path: Path) -> None:
    """An interpreter of the same environment with no `tune` beside it, and none on PATH."""
    import os
    import sys

    if sys.prefix == sys.base_prefix:
        pytest.skip("needs a virtual environment to make a copy without tune")
    bare = tmp_path / "bare"
    (bare / "bin").mkdir(parents=True)
    (bare / "bin" / "python").symlink_to(sys.executable)
    shutil.copy(Path(sys.prefix) / "pyvenv.cfg", bare / "pyvenv.cfg")
    (bare / "lib").symlink_to(Path(sys.prefix) / "lib")
    ok(run_cli("config", "--project", "demo", "--backend", "torchtune", cwd=project))
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [str(bare / "bin" / "python"), "-m", "trainwright", "dry-run", "demo"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"trainwright: error: torchtune's `tune` command is not installed beside "
        f"{bare / 'bin' / 'python'} or on PATH: pip install 'trainwright[tune]'"
    ]
