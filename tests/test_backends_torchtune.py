"""Every torchtune config trainwright writes passes torchtune's own `tune validate`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trainwright import backends
from trainwright.backends import torchtune as tt
from trainwright.errors import TrainwrightError
from trainwright.hardware import catalog

pytestmark = pytest.mark.skipif(
    shutil.which("tune", path=str(Path(sys.executable).parent)) is None,
    reason="torchtune is not installed (pip install -e '.[tune]')",
)


def _all_configs() -> list[tuple[str, str, int, dict]]:
    out = []
    cat = catalog.load()
    for model_id in cat.ids():
        model = cat.get(model_id)
        builders = model.for_trainer("torchtune")
        if not builders:
            continue
        methods = ["lora", "full"] + (["qlora"] if "qlora" in builders else [])
        for method in methods:
            gpus = 8 if model.main.params > 20e9 else 1
            cfg = tt.torchtune_config(model, method=method, gpus=gpus, checkpoint_dir="/m")
            out.append((model_id, method, gpus, cfg))
    return out


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("tt")
    paths = []
    for model_id, method, gpus, cfg in _all_configs():
        path = folder / f"{model_id}-{method}-{gpus}.yaml"
        path.write_text(tt.to_yaml(cfg))
        paths.append(path)
    custom = tt.torchtune_config(
        "llama-3.2-1b", dataset="/data/train.jsonl", optimizer="adamw8bit", max_seq_len=512
    )
    path = folder / "custom-dataset.yaml"
    path.write_text(tt.to_yaml(custom))
    paths.append(path)
    return paths


@pytest.mark.parametrize(
    "name", ["llama-3.2-1b-lora-1", "llama-3.1-8b-qlora-1", "qwen2.5-72b-full-8"]
)
def test_tune_validate_cli(configs: list[Path], name: str) -> None:
    path = next(p for p in configs if p.stem == name)
    tune = shutil.which("tune", path=str(Path(sys.executable).parent))
    proc = subprocess.run(
        [tune, "validate", str(path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and "Config is well-formed!" in proc.stdout, proc.stderr[-2000:]


def test_every_generated_config_is_well_formed(configs: list[Path]) -> None:
    """What `tune validate` runs (OmegaConf.load + torchtune.config.validate), for all of them
    in one process: one import of torchtune instead of one per file."""
    script = (
        "import sys\n"
        "from omegaconf import OmegaConf\n"
        "from torchtune import config\n"
        "bad = []\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        config.validate(OmegaConf.load(p))\n"
        "    except Exception as e:\n"
        "        bad.append(f'{p}: {e}')\n"
        "print('\\n'.join(bad) or 'all well-formed')\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, configs)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert len(configs) >= 50


def test_shape_follows_torchtune_own_configs() -> None:
    cfg = tt.torchtune_config("qwen2.5-7b", method="lora", checkpoint_dir="/m/q")
    assert cfg["model"]["_component_"] == "torchtune.models.qwen2_5.lora_qwen2_5_7b_base"
    assert cfg["tokenizer"]["merges_file"] == "/m/q/merges.txt"
    assert cfg["checkpointer"]["checkpoint_files"] == {
        "filename_format": "model-{}-of-{}.safetensors",
        "max_filename": "00004",
    }
    assert tt.recipe_for("lora", 1) == "lora_finetune_single_device"
    assert tt.recipe_for("full", 8) == "full_finetune_distributed"


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"method": "qlora", "model": "qwen2.5-7b"}, "no QLoRA builder"),
        ({"optimizer": "lion"}, "not available in torchtune"),
        ({"optimizer": "prodigy"}, "not available in torchtune"),
        ({"lora_attn_modules": ["q", "v"]}, "lora_attn_modules"),
        ({"model": "sdxl"}, "no model builder"),
    ],
)
def test_writer_refuses_what_torchtune_cannot_run(kwargs: dict, fragment: str) -> None:
    model = kwargs.pop("model", "llama-3.2-1b")
    with pytest.raises(TrainwrightError, match=fragment):
        tt.torchtune_config(model, **kwargs)


def test_command_knobs(tmp_path: Path) -> None:
    path = tmp_path / "finetune.yaml"
    files = backends.render_settings(tt, model="llama-3.2-1b", project="p", batch_size=2)
    path.write_text(files["finetune.yaml"])
    assert yaml.safe_load(path.read_text())["batch_size"] == 2
    cmd = tt.command(path, max_steps=3, batch_size=1, accumulation=4, resume=True)
    assert cmd[1:4] == ["run", "lora_finetune_single_device", "--config"]
    assert {"max_steps_per_epoch=3", "epochs=1", "batch_size=1", "gradient_accumulation_steps=4",
            "resume_from_checkpoint=True"} <= set(cmd)  # fmt: skip
    assert backends.batch_settings(tt, path) == (2, 1)
    assert backends.checkpoint_dir(tt, path) == tmp_path / "output"
