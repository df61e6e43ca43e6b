"""Generated kohya / ai-toolkit / SimpleTuner files use only names those trainers accept."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest
import tomllib
import yaml

from trainwright import backends
from trainwright.backends import ai_toolkit, kohya, simpletuner
from trainwright.backends.common import data
from trainwright.errors import TrainwrightError

IMAGE_MODELS = ["sd-1.5", "sdxl", "pony-v6", "flux-1-dev", "sd-3.5-medium"]
OPTIMIZERS = ["prodigy", "adamw", "adamw8bit", "lion"]


def test_registry_lists_every_backend_module() -> None:
    names = backends.names()
    assert {"kohya", "ai-toolkit", "simpletuner", "torchtune"} <= set(names)
    assert backends.get("ai-toolkit") is ai_toolkit
    with pytest.raises(TrainwrightError, match="unknown backend"):
        backends.get("axolotl")


@pytest.mark.parametrize("model", IMAGE_MODELS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_kohya_files_parse_and_use_sd_scripts_names(model: str, optimizer: str) -> None:
    files = backends.render_settings(kohya, model=model, project="p", optimizer=optimizer)
    assert kohya.check_keys(files) == []
    train = tomllib.loads(files[kohya.CONFIG_FILE])
    flat = {k: v for t in train.values() for k, v in t.items()}
    names = data("kohya-names")
    assert flat["optimizer_type"] in names["optimizer_types"]
    assert isinstance(flat["gradient_checkpointing"], bool)
    ds = tomllib.loads(files[kohya.DATASET_FILE])
    subset = ds["datasets"][0]["subsets"][0]
    assert subset["caption_extension"] == ".txt"  # never kohya's .caption default
    assert "batch_size" not in ds["datasets"][0]  # the training file's train_batch_size rules
    if optimizer == "prodigy":
        assert flat["learning_rate"] == 1.0 and flat["optimizer_args"]


def test_kohya_refuses_unknown_keys_and_string_booleans() -> None:
    with pytest.raises(TrainwrightError, match="not a key the trainer knows"):
        backends.render_settings(kohya, model="sdxl", project="p", network_dimm=8)
    with pytest.raises(TrainwrightError, match="kohya needs a TOML boolean"):
        backends.render_settings(kohya, model="sdxl", project="p", sdpa="true")
    files = backends.render_settings(kohya, model="sdxl", project="p", **{"dataset.flip_aug": True})
    assert tomllib.loads(files[kohya.DATASET_FILE])["datasets"][0]["subsets"][0]["flip_aug"]


@pytest.mark.parametrize("model", IMAGE_MODELS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_ai_toolkit_job_uses_its_names(model: str, optimizer: str) -> None:
    files = backends.render_settings(ai_toolkit, model=model, project="p", optimizer=optimizer)
    assert ai_toolkit.check_keys(files) == []
    proc = yaml.safe_load(files[ai_toolkit.CONFIG_FILE])["config"]["process"][0]
    assert proc["type"] == "sd_trainer" and proc["network"]["type"] == "lora"
    assert proc["datasets"][0]["caption_ext"] == "txt"
    assert proc["train"]["noise_scheduler"] == ("flowmatch" if "flux" in model or "3.5" in model
                                                else "ddpm")  # fmt: skip


def _simpletuner_parser() -> argparse.ArgumentParser:
    """An argparse parser from the option names and choices read from SimpleTuner's registry."""
    names = data("simpletuner-names")
    parser = argparse.ArgumentParser(exit_on_error=False)
    for option, choices in names["options"].items():
        kwargs: dict = {"choices": choices} if choices else {}
        flags = [f"--{option}"]
        parser.add_argument(*flags, **kwargs)
    for alias in names["aliases"]:
        parser.add_argument(f"--{alias}")
    return parser


def _as_flags(cfg: dict) -> list[str]:
    out = []
    for key, value in cfg.items():
        out.append(
            f"--{key.removeprefix('--')}={str(value).lower() if isinstance(value, bool) else value}"
        )
    return out


@pytest.mark.parametrize("model", IMAGE_MODELS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_simpletuner_config_parses_with_its_option_names(model: str, optimizer: str) -> None:
    files = backends.render_settings(simpletuner, model=model, project="p", optimizer=optimizer)
    assert simpletuner.check_keys(files) == []
    cfg = json.loads(files[simpletuner.CONFIG_FILE])
    _simpletuner_parser().parse_args(_as_flags(cfg))
    backends_json = json.loads(files[simpletuner.BACKENDS_FILE])
    assert (
        backends_json[-1]["dataset_type"] == "text_embeds" and backends_json[-1]["default"] is True
    )
    assert isinstance(backends_json[0]["crop"], bool)


def test_simpletuner_refuses_unknown_option() -> None:
    with pytest.raises(TrainwrightError, match="not a SimpleTuner option"):
        backends.render_settings(simpletuner, model="sdxl", project="p", lora_rnak=4)


def test_simpletuner_names_come_from_the_package() -> None:
    names = data("simpletuner-names")
    assert names["version"] == "3.1.6" and "simpletuner-3.1.6" in names["read_from"]
    assert {"train_batch_size", "lora_rank", "data_backend_config"} <= set(names["options"])
    assert {"sdxl", "flux", "sd3", "sd1x"} <= set(names["options"]["model_family"])


@pytest.mark.skipif(
    importlib.util.find_spec("simpletuner") is None,
    reason="simpletuner is not installable beside torchtune: SimpleTuner 3.1.6 (the last release "
    "for Python 3.11) requires torchao>=0.14.1, torchtune 0.6.1 needs torchao 0.10.0",
)
def test_simpletuner_own_parser_accepts_the_config() -> None:  # pragma: no cover - not installed
    from simpletuner.helpers.configuration.cmd_args import get_argument_parser

    files = backends.render_settings(simpletuner, model="sdxl", project="p")
    get_argument_parser().parse_args(_as_flags(json.loads(files[simpletuner.CONFIG_FILE])))


@pytest.mark.parametrize("mod", [kohya, ai_toolkit, simpletuner])
def test_step_limit_and_batch_knob(tmp_path: Path, mod: object) -> None:
    files = backends.render_settings(mod, model="sdxl", project="p", batch_size=3)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    config = tmp_path / mod.CONFIG_FILE
    assert backends.batch_settings(mod, config) == (3, 1)
    cmd = " ".join(mod.command(config, max_steps=2, batch_size=1, accumulation=3))
    if mod is ai_toolkit:
        override = yaml.safe_load((tmp_path / ai_toolkit.OVERRIDE_FILE).read_text())
        train = override["config"]["process"][0]["train"]
        assert (train["steps"], train["batch_size"], train["gradient_accumulation_steps"]) == (
            2,
            1,
            3,
        )
        assert (
            yaml.safe_load(config.read_text())["config"]["process"][0]["train"]["batch_size"] == 3
        )
    elif mod is kohya:
        assert "--max_train_steps 2" in cmd and "--train_batch_size 1" in cmd
        assert "--gradient_accumulation_steps 3" in cmd and "--dataset_config" in cmd
    else:
        assert "max_train_steps=2" in cmd and "train_batch_size=1" in cmd
        assert cmd.startswith(f"env -C {tmp_path}")
    assert backends.checkpoint_dir(mod, config).name
