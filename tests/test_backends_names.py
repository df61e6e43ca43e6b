"""Generated kohya / ai-toolkit / SimpleTuner files use only names those trainers accept."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import pytest
import tomllib
import yaml

from support import simpletuner_venv
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


def _write_project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def simpletuner_own_check(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every model x optimizer project, plus two broken ones, through SimpleTuner's own code in
    its own venv (support/simpletuner_venv.py builds it once per machine): one subprocess."""
    try:
        python = simpletuner_venv.ensure()
    except simpletuner_venv.BuildError as exc:
        message = f"SimpleTuner's venv could not be built ({simpletuner_venv.venv_dir()}): {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("simpletuner")
    projects = []
    for model in IMAGE_MODELS:
        for optimizer in OPTIMIZERS:
            files = backends.render_settings(
                simpletuner, model=model, project="p", optimizer=optimizer
            )
            projects.append(_write_project(root / f"{model}-{optimizer}", files))
    files = backends.render_settings(simpletuner, model="sdxl", project="p")
    typo = json.loads(files[simpletuner.CONFIG_FILE]) | {"lora_rnak": 4}
    typo_files = {**files, simpletuner.CONFIG_FILE: json.dumps(typo)}
    projects.append(_write_project(root / "typo", typo_files))
    entries = json.loads(files[simpletuner.BACKENDS_FILE])
    entries[0]["maximum_image_size"] = 2048  # without target_downsample_size
    bad = {**files, simpletuner.BACKENDS_FILE: json.dumps(entries)}
    projects.append(_write_project(root / "bad-backend", bad))
    proc = subprocess.run(
        [str(python), str(simpletuner_venv.CHECK_SCRIPT), *map(str, projects)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("SIMPLETUNER-CHECK ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    report = json.loads(lines[-1].split(" ", 1)[1])
    report["by_name"] = {Path(r["project"]).name: r for r in report["projects"]}
    return report


@pytest.mark.slow
@pytest.mark.parametrize("model", IMAGE_MODELS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_simpletuner_own_parser_accepts_the_config(
    simpletuner_own_check: dict, model: str, optimizer: str
) -> None:
    result = simpletuner_own_check["by_name"][f"{model}-{optimizer}"]
    assert result["unknown"] == [] and result["parse_error"] is None, result
    assert [b["id"] for b in result["backends"]] == ["p-images", "text-embeds"]
    assert all(b["error"] is None for b in result["backends"]), result["backends"]


@pytest.mark.slow
def test_simpletuner_own_parser_refuses_what_it_does_not_know(simpletuner_own_check: dict) -> None:
    typo = simpletuner_own_check["by_name"]["typo"]
    assert typo["unknown"] == ["--lora_rnak=4"] and typo["parse_error"], typo
    backend = simpletuner_own_check["by_name"]["bad-backend"]
    assert backend["parse_error"] is None
    assert "target_downsample_size" in (backend["backends"][0]["error"] or ""), backend["backends"]


@pytest.mark.slow
def test_simpletuner_names_agree_with_its_parser(simpletuner_own_check: dict) -> None:
    """The names file trainwright checks against holds exactly the parser's options; its choices
    are the parser's, except the optimizer list (the parser takes any string, SimpleTuner checks
    the name at start) and the precision levels a CUDA machine adds to what this CPU one offers."""
    parser = dict(simpletuner_own_check["parser"])
    parser.pop("help")
    names = data("simpletuner-names")
    assert set(names["options"]) | set(names["aliases"]) == set(parser)
    for option, choices in names["options"].items():
        if option == "optimizer":
            assert parser[option] == [] and choices == names["optimizers"]
        elif "no_change" in choices:
            assert set(parser[option]) < set(choices), option
        else:
            assert sorted(choices) == parser[option], option


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
