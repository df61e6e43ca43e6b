"""Backend `ai-toolkit`: ostris/ai-toolkit (FLUX.1, SDXL/Pony, SD 1.5, SD3.5 LoRA).

File: `ai-toolkit.yaml`, one job (`job: extension`, one `sd_trainer` process). Command:
`python <ai-toolkit>/run.py <yaml>`. ai-toolkit takes no command-line overrides, so the dry-run
step limit and the batch knob are applied to a generated copy beside the config
(`ai-toolkit.override.yaml`, rewritten on each call; the person's file is never touched).
It trains in steps: epochs x images x repeats / (batch x accumulation). Checkpoints land in
`<training_folder>/<name>/<name>_<step>.safetensors`; rerunning the same job resumes from the
newest. The checkout is $TRAINWRIGHT_AI_TOOLKIT_DIR (default ./ai-toolkit).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from trainwright.backends.common import TrainingPlan, data, optimizer_entry, set_yaml_keys
from trainwright.errors import TrainwrightError
from trainwright.state.atomic import atomic_write_text

NAME = "ai-toolkit"
CONFIG_FILE = "ai-toolkit.yaml"
OVERRIDE_FILE = "ai-toolkit.override.yaml"
LOG_FORMAT = None  # tqdm lines; see parse_line
HAS_ACCUMULATION = True
CAN_RESUME = True
KINDS = ("image",)
FAMILIES = ("sd15", "sdxl", "sd3", "flux")
OPTIMIZER_KEY = "ai-toolkit"
ENV_DIR = "TRAINWRIGHT_AI_TOOLKIT_DIR"
CHECKPOINT_GB = 0.25  # a LoRA file per save
ALIASES = ("aitoolkit", "ai_toolkit")
INSTALL = {
    "clone": {
        "env": ENV_DIR,
        "default": "ai-toolkit",
        "label": "ai-toolkit",
        "marker": "run.py",
        "modules": "toolkit.job",
    },
    "install": "git clone https://github.com/ostris/ai-toolkit and set " + ENV_DIR,
}
STEP_LINE = re.compile(
    r"(?<!\d)(?P<step>\d+)/(?P<total>\d+) \[.*?lr: (?P<lr>[0-9.e+-]+) loss: (?P<loss>[0-9.e+-]+)"
)


def names() -> dict[str, Any]:
    return data("ai-toolkit-names")


def render(plan: TrainingPlan) -> dict[str, str]:
    if not plan.model.is_image:
        raise TrainwrightError("ai-toolkit trains image models; use torchtune for language models")
    if plan.method != "lora":
        raise TrainwrightError("the ai-toolkit backend here writes LoRA jobs only (method lora)")
    opt = optimizer_entry(plan.optimizer, OPTIMIZER_KEY)
    family = plan.model.family
    flow = family in ("flux", "sd3")
    model: dict[str, Any] = {"name_or_path": plan.base_model_path}
    if family == "flux":
        model.update(is_flux=True, quantize=True)
    elif family == "sdxl":
        model["is_xl"] = True
    elif family == "sd3":
        model["is_v3"] = True
    dtype = {"bf16": "bf16", "fp16": "fp16", "fp32": "float32"}[plan.precision]
    train: dict[str, Any] = {
        "batch_size": plan.batch_size,
        "steps": plan.total_steps(),
        "gradient_accumulation_steps": plan.gradient_accumulation,
        "train_unet": True,
        "train_text_encoder": False,
        "gradient_checkpointing": plan.gradient_checkpointing,
        "noise_scheduler": "flowmatch" if flow else "ddpm",
        "optimizer": opt["name"],
        "lr": plan.learning_rate,
        "dtype": dtype,
    }
    if opt.get("args"):
        train["optimizer_params"] = dict(opt["args"])
    if plan.cache_text_encoder:
        train["cache_text_embeddings"] = True
    res = plan.resolution
    process: dict[str, Any] = {
        "type": "sd_trainer",
        "training_folder": plan.output_dir,
        "device": "cuda:0",
        "network": {"type": "lora", "linear": plan.rank, "linear_alpha": plan.alpha},
        "save": {
            "dtype": "float16",
            "save_every": max(1, plan.steps_per_epoch() * plan.save_every_n_epochs),
            "max_step_saves_to_keep": 4,
        },
        "datasets": [
            {
                "folder_path": plan.dataset_dir,
                "caption_ext": plan.caption_extension.lstrip("."),
                "caption_dropout_rate": plan.caption_dropout,
                "shuffle_tokens": False,
                "cache_latents_to_disk": plan.cache_latents,
                "resolution": sorted({max(256, res // 2), (res * 3) // 4, res}),
                "num_repeats": plan.repeats,
            }
        ],
        "train": train,
        "model": model,
        "sample": {
            "sampler": "flowmatch" if flow else "ddpm",
            "sample_every": max(1, plan.steps_per_epoch() * plan.save_every_n_epochs),
            "width": res,
            "height": res,
            "prompts": [f"{plan.trigger_word or '[trigger]'}, a test image"],
            "seed": plan.seed,
            "walk_seed": True,
            "guidance_scale": 4 if flow else 7,
            "sample_steps": 20 if flow else 25,
        },
    }
    if plan.trigger_word:
        process["trigger_word"] = plan.trigger_word
    for key, value in plan.extra.items():
        section, _, leaf = key.rpartition(".")
        target = process.get(section) if section else process
        if isinstance(target, list):
            target = target[0]
        if not isinstance(target, dict):
            raise TrainwrightError(f"ai-toolkit has no section {section!r} for {key}")
        target[leaf] = value
    job = {
        "job": "extension",
        "config": {"name": plan.project, "process": [process]},
        "meta": {"name": "[name]", "version": "1.0"},
    }
    header = (
        f"# ai-toolkit job for '{plan.project}' ({plan.model.name}), written by trainwright\n"
        f"# config (preset {plan.preset}: {plan.epochs} epochs = {plan.total_steps()} steps).\n"
        "# Run: python run.py <this file>\n"
    )
    files = {CONFIG_FILE: header + yaml.safe_dump(job, sort_keys=False)}
    problems = check_keys(files)
    if problems:
        raise TrainwrightError("; ".join(problems))
    return files


def vram_overrides(plan: TrainingPlan) -> dict[str, Any]:
    """FLUX jobs are written with `quantize: true` (8-bit base and T5)."""
    quant = plan.extra.get("model.quantize", plan.model.family == "flux")
    return {"base_quant": "fp8" if quant else "none"}


def check_keys(files: dict[str, str], folder: Path | None = None) -> list[str]:
    n = names()
    job = yaml.safe_load(files[CONFIG_FILE])
    problems = [f"top: '{k}' is unknown" for k in job if k not in n["top"]]
    problems += [f"config: '{k}' is unknown" for k in job["config"] if k not in n["config"]]
    for proc in job["config"]["process"]:
        problems += [f"process: '{k}' is unknown" for k in proc if k not in n["process"]]
        for section in ("network", "save", "train", "model", "sample"):
            problems += [
                f"{section}: '{k}' is not an ai-toolkit key"
                for k in proc.get(section, {})
                if k not in n[section]
            ]
        for ds in proc.get("datasets", []):
            problems += [
                f"datasets: '{k}' is not an ai-toolkit key" for k in ds if k not in n["dataset"]
            ]
        opt = proc.get("train", {}).get("optimizer")
        if opt not in n["optimizers"]:
            problems.append(f"optimizer {opt!r} is not an ai-toolkit optimizer")
    return problems


def read_config(path: Path) -> dict[str, Any]:
    try:
        job = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return job["config"]["process"][0]
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"not an ai-toolkit job ({exc})") from None


def toolkit_dir() -> Path:
    """Absolute: the trainer runs in the project folder, not where the person typed the path."""
    return Path(os.path.abspath(os.path.expanduser(os.environ.get(ENV_DIR) or "ai-toolkit")))


def command(
    config: Path,
    *,
    max_steps: int | None = None,
    batch_size: int | None = None,
    accumulation: int | None = None,
    resume: bool = False,
    save: bool = True,
) -> list[str]:
    config = Path(config)
    updates: dict[str, Any] = {}
    if max_steps is not None:
        updates["steps"] = max_steps
    if batch_size is not None:
        updates["batch_size"] = batch_size
    if accumulation is not None:
        updates["gradient_accumulation_steps"] = accumulation
    if not save:
        updates["training_folder"] = str(config.parent / "dry-run")
    target = config
    if updates:
        target = config.with_name(OVERRIDE_FILE)
        atomic_write_text(target, set_yaml_keys(config.read_text(encoding="utf-8"), updates))
    return [sys.executable, str(toolkit_dir() / "run.py"), str(target)]


def batch_settings(config: Path) -> tuple[int, int]:
    train = read_config(config).get("train", {})
    return int(train.get("batch_size", 1)), int(train.get("gradient_accumulation_steps", 1))


def checkpoint_dir(config: Path) -> Path:
    cfg = read_config(config)
    name = yaml.safe_load(Path(config).read_text(encoding="utf-8"))["config"]["name"]
    out = Path(str(cfg.get("training_folder", "output"))) / name
    return out if out.is_absolute() else Path(config).parent / out


def parse_line(line: str) -> dict[str, Any] | None:
    """A progress line `name:  12%|#  | 120/1000 [..., lr: 1.0e-04 loss: 4.1e-01]`."""
    m = STEP_LINE.search(line)
    if not m:
        return None
    return {
        "step": int(m["step"]),
        "total": int(m["total"]),
        "loss": float(m["loss"]),
        "lr": float(m["lr"]),
    }
