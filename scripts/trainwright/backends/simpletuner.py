"""Backend `simpletuner`: bghira/SimpleTuner (FLUX.1, SDXL/Pony, SD 1.x, SD3.5 LoRA).

Files: `config/config.json` (keys are SimpleTuner's command-line option names, checked against
the names read from SimpleTuner 3.1.6's own option registry, resources/backends/
simpletuner-names.yaml) and `config/multidatabackend.json` (one image backend reading the
captions from text files, plus the text-embed cache; real JSON booleans). SimpleTuner reads
config/config.json from the folder it starts in, so the command is
`env -C <project folder> simpletuner train KEY=VALUE...`; KEY=VALUE pairs become command-line
flags, which is how the dry-run step limit (max_train_steps) and the batch knob
(train_batch_size, gradient_accumulation_steps) are applied. Checkpoints land in
`<output_dir>/checkpoint-<step>`; resume_from_checkpoint=latest resumes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from trainwright.backends.common import TrainingPlan, data, optimizer_entry
from trainwright.errors import TrainwrightError

NAME = "simpletuner"
CONFIG_FILE = "config/config.json"
BACKENDS_FILE = "config/multidatabackend.json"
LOG_FORMAT = None
HAS_ACCUMULATION = True
CAN_RESUME = True
KINDS = ("image",)
INSTALL = {"packages": ["simpletuner"], "install": "pip install simpletuner"}
CHECKPOINT_GB = 0.25  # a LoRA file per save
OPTIMIZER_KEY = "simpletuner"
FAMILIES = {"sd15": "sd1x", "sdxl": "sdxl", "flux": "flux", "sd3": "sd3"}
STEP_LINE = re.compile(
    r"Epoch \d+/\d+, Steps:.{0,200}?(?<!\d)(?P<step>\d+)/(?P<total>\d+).{0,200}?"
    r"loss=(?P<loss>[0-9.e+-]+)"
)


def names() -> dict[str, Any]:
    return data("simpletuner-names")


def render(plan: TrainingPlan) -> dict[str, str]:
    if not plan.model.is_image:
        raise TrainwrightError("SimpleTuner here trains image models; use torchtune for LLMs")
    if plan.method == "qlora":
        raise TrainwrightError("SimpleTuner has no QLoRA; use method lora")
    opt = optimizer_entry(plan.optimizer, OPTIMIZER_KEY)
    family = FAMILIES.get(plan.model.family or "")
    if family is None:
        raise TrainwrightError(f"SimpleTuner has no model family for {plan.model.name}")
    res = plan.resolution
    cfg: dict[str, Any] = {
        "model_type": "full" if plan.method == "full" else "lora",
        "model_family": family,
        "pretrained_model_name_or_path": plan.base_model_path,
        "output_dir": plan.output_dir,
        "data_backend_config": BACKENDS_FILE,
        "train_batch_size": plan.batch_size,
        "gradient_accumulation_steps": plan.gradient_accumulation,
        "num_train_epochs": plan.epochs,
        "max_train_steps": 0,
        "learning_rate": plan.learning_rate,
        "lr_scheduler": "constant" if plan.optimizer == "prodigy" else "cosine",
        "lr_warmup_steps": plan.warmup_steps,
        "optimizer": opt["name"],
        "mixed_precision": {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}[plan.precision],
        "gradient_checkpointing": plan.gradient_checkpointing,
        "resolution": res,
        "resolution_type": "pixel_area",
        "checkpoint_step_interval": max(1, plan.steps_per_epoch() * plan.save_every_n_epochs),
        "checkpoints_total_limit": 4,
        "resume_from_checkpoint": "latest",
        "seed": plan.seed,
        "report_to": "tensorboard",
        "validation_prompt": f"{plan.trigger_word or 'a test image'}, a test image",
        "validation_step_interval": max(1, plan.steps_per_epoch() * plan.save_every_n_epochs),
        "caption_dropout_probability": plan.caption_dropout,
    }
    if plan.method != "full":
        cfg.update(lora_type="standard", lora_rank=plan.rank, lora_alpha=plan.alpha)
    cfg.update(plan.extra)
    backends = [
        {
            "id": f"{plan.project}-images",
            "type": "local",
            "instance_data_dir": plan.dataset_dir,
            "caption_strategy": "textfile",
            "resolution": res,
            "resolution_type": "pixel_area",
            "minimum_image_size": min(res, 512),
            "crop": False,
            "repeats": max(0, plan.repeats - 1),
            "cache_dir_vae": "cache/vae",
        },
        {
            "id": "text-embeds",
            "dataset_type": "text_embeds",
            "default": True,
            "type": "local",
            "cache_dir": "cache/text",
        },
    ]
    files = {
        CONFIG_FILE: json.dumps(cfg, indent=2) + "\n",
        BACKENDS_FILE: json.dumps(backends, indent=2) + "\n",
    }
    problems = check_keys(files)
    if problems:
        raise TrainwrightError("; ".join(problems))
    return files


def vram_overrides(plan: TrainingPlan) -> dict[str, Any]:
    """base_model_precision (int8-quanto, fp8-torchao, nf4-bnb, ...) stores the base smaller."""
    precision = str(plan.extra.get("base_model_precision", "no_change"))
    for prefix, quant in (("int8", "int8"), ("fp8", "fp8"), ("nf4", "nf4"), ("int4", "nf4")):
        if precision.startswith(prefix):
            return {"base_quant": quant}
    return {}


def check_keys(files: dict[str, str], folder: Path | None = None) -> list[str]:
    """config.json against SimpleTuner's option names and literal choices; the data backends
    against the keys its data-backend code reads; booleans must be JSON booleans."""
    n = names()
    options, aliases = n["options"], set(n.get("aliases", []))
    problems: list[str] = []
    cfg = json.loads(files[CONFIG_FILE])
    for key, value in cfg.items():
        bare = key.removeprefix("--")
        if bare not in options and bare not in aliases:
            problems.append(f"config.json: '{key}' is not a SimpleTuner option")
            continue
        choices = options.get(bare) or []
        if choices and value not in ("", None) and str(value) not in choices:
            problems.append(f"config.json: {key}={value!r} is not one of its choices")
        if isinstance(value, str) and value in ("True", "False", "true", "false"):
            problems.append(f"config.json: {key} is the string {value!r}, not a JSON boolean")
    for backend in json.loads(files[BACKENDS_FILE]):
        for key, value in backend.items():
            if key not in n["data_backend_keys"]:
                problems.append(f"multidatabackend.json: '{key}' is not a data-backend key")
            if isinstance(value, str) and value in ("True", "False", "true", "false"):
                problems.append(f"multidatabackend.json: {key} is a string, not a boolean")
    return problems


def read_config(path: Path) -> dict[str, Any]:
    try:
        cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a SimpleTuner config.json ({exc})") from None
    if not isinstance(cfg, dict):
        raise ValueError("config.json must be a JSON object")
    return {k.removeprefix("--"): v for k, v in cfg.items()}


def _project_dir(config: Path) -> Path:
    config = Path(config)
    return config.parent.parent if config.parent.name == "config" else config.parent


def command(
    config: Path,
    *,
    max_steps: int | None = None,
    batch_size: int | None = None,
    accumulation: int | None = None,
    resume: bool = False,
    save: bool = True,
) -> list[str]:
    cmd = ["env", "-C", str(_project_dir(config)), "CONFIG_BACKEND=json", "simpletuner", "train"]
    if max_steps is not None:
        cmd.append(f"max_train_steps={max_steps}")
    if batch_size is not None:
        cmd.append(f"train_batch_size={batch_size}")
    if accumulation is not None:
        cmd.append(f"gradient_accumulation_steps={accumulation}")
    if not save:
        cmd.append("output_dir=dry-run")
    if not resume:
        cmd.append("resume_from_checkpoint=")
    return cmd


def batch_settings(config: Path) -> tuple[int, int]:
    cfg = read_config(config)
    return int(cfg.get("train_batch_size", 1)), int(cfg.get("gradient_accumulation_steps", 1))


def checkpoint_dir(config: Path) -> Path:
    out = Path(str(read_config(config).get("output_dir", "output")))
    return out if out.is_absolute() else _project_dir(config) / out


def parse_line(line: str) -> dict[str, Any] | None:
    m = STEP_LINE.search(line)
    if not m:
        return None
    return {"step": int(m["step"]), "total": int(m["total"]), "loss": float(m["loss"])}
