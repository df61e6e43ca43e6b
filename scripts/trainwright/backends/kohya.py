"""Backend `kohya`: kohya-ss/sd-scripts (SD 1.x, SDXL/Pony, FLUX.1, SD3.5 LoRA).

Files: `kohya-train.toml` (training arguments, for --config_file; kohya flattens its tables) and
`kohya-dataset.toml` (for --dataset_config: [general], [[datasets]], [[datasets.subsets]], with
`caption_extension` written out: kohya's default is `.caption`, not `.txt`). Command:
`accelerate launch --num_cpu_threads_per_process 1 <sd-scripts>/<script> --config_file ...
--dataset_config ...`; command-line flags override the file, which is how the dry-run step limit
(--max_train_steps) and the batch knob (--train_batch_size, --gradient_accumulation_steps) are
applied. The batch size lives only in the training file, so the flag wins. Checkpoints land in
`output_dir` as `<name>-NNNNNN.safetensors`; `save_state` folders make runs resumable.
The sd-scripts checkout is $TRAINWRIGHT_KOHYA_DIR (default ./sd-scripts).
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

from trainwright.backends.common import (
    PLACEHOLDER,
    TrainingPlan,
    data,
    dump_toml,
    optimizer_entry,
    tomllib,
    unknown_keys,
)
from trainwright.errors import TrainwrightError
from trainwright.run.logs.common import (
    LogState,
    clock_seconds,
    log_lines,
    to_float,
)

NAME = "kohya"
CONFIG_FILE = "kohya-train.toml"
DATASET_FILE = "kohya-dataset.toml"
COMMAND_FILE = "kohya-command.sh"
LOG_FORMAT = "kohya"
HAS_ACCUMULATION = True
CAN_RESUME = True
KINDS = ("image",)
DEFAULT_FOR = ("image",)
ALIASES = ("kohya_ss", "sd_scripts", "sd-scripts")
OPTIMIZER_KEY = "kohya"
ENV_DIR = "TRAINWRIGHT_KOHYA_DIR"
BATCH_KEYS = ("train_batch_size", "gradient_accumulation_steps")
CHECKPOINT_GB = 0.25  # a LoRA file per save
CAPTION_EXTENSION = ".caption"  # what sd-scripts reads when its config names none
INSTALL = {
    "clone": {
        "env": ENV_DIR,
        "default": "sd-scripts",
        "label": "sd-scripts",
        "marker": "train_network.py",
        "modules": "library.train_util",
        "executable": "accelerate",
        "executable_install": "pip install accelerate in sd-scripts' venv",
    },
    "install": "git clone https://github.com/kohya-ss/sd-scripts and set " + ENV_DIR,
}
FAILURE_TEXTS = {
    "dataset": [r"No images were discovered by the bucket manager[^\n]*"],
    "config": [r"voluptuous[^\n]*"],
}


def names() -> dict[str, Any]:
    return data("kohya-names")


def scripts_dir() -> Path:
    """Absolute: the trainer runs in the project folder, not where the person typed the path."""
    return Path(os.path.abspath(os.path.expanduser(os.environ.get(ENV_DIR) or "sd-scripts")))


def _script(plan: TrainingPlan) -> tuple[str, str]:
    family = plan.model.family or "sdxl"
    table = names()["scripts"]
    if family not in table:
        raise TrainwrightError(f"kohya has no training script for {plan.model.name}")
    entry = table[family]
    return entry["full" if plan.method == "full" else "lora"], entry["network_module"]


def render(plan: TrainingPlan) -> dict[str, str]:
    if not plan.model.is_image:
        raise TrainwrightError("kohya trains image models; use torchtune for language models")
    if plan.method == "qlora":
        raise TrainwrightError(
            "kohya has no QLoRA; use method lora (fp8_base=true stores the base in 8 bits)"
        )
    script, network_module = _script(plan)
    opt = optimizer_entry(plan.optimizer, OPTIMIZER_KEY)
    precision = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}[plan.precision]
    family = plan.model.family
    model: dict[str, Any] = {"pretrained_model_name_or_path": plan.base_model_path}
    if family == "flux":
        model.update(clip_l=PLACEHOLDER, t5xxl=PLACEHOLDER, ae=PLACEHOLDER)
    if family == "sd3":
        model.update(clip_l=PLACEHOLDER, clip_g=PLACEHOLDER, t5xxl=PLACEHOLDER)
    network: dict[str, Any] = {}
    if plan.method != "full":
        network = {
            "network_module": network_module,
            "network_dim": plan.rank,
            "network_alpha": plan.alpha,
            "network_train_unet_only": True,
        }
        if plan.lora_dropout:
            network["network_dropout"] = plan.lora_dropout
    optimizer: dict[str, Any] = {
        "optimizer_type": opt["name"],
        "learning_rate": plan.learning_rate,
        "lr_scheduler": "constant" if plan.optimizer == "prodigy" else "cosine",
        "lr_warmup_steps": plan.warmup_steps,
    }
    if plan.method != "full":
        optimizer["unet_lr"] = plan.learning_rate
    if opt.get("args"):
        optimizer["optimizer_args"] = list(opt["args"])
    training: dict[str, Any] = {
        "max_train_epochs": plan.epochs,
        "train_batch_size": plan.batch_size,
        "gradient_accumulation_steps": plan.gradient_accumulation,
        "mixed_precision": precision,
        "gradient_checkpointing": plan.gradient_checkpointing,
        "sdpa": True,
        "cache_latents": plan.cache_latents,
        "cache_latents_to_disk": plan.cache_latents,
        "seed": plan.seed,
        "max_data_loader_n_workers": 2,
        "persistent_data_loader_workers": True,
    }
    if family in ("sdxl", "flux", "sd3") and plan.cache_text_encoder and plan.method != "full":
        training["cache_text_encoder_outputs"] = True
    if family == "flux":
        training.update(
            model_prediction_type="raw",
            timestep_sampling="shift",
            discrete_flow_shift=3.1582,
            guidance_scale=1.0,
        )
    saving = {
        "output_dir": plan.output_dir,
        "output_name": plan.output_name,
        "save_model_as": "safetensors",
        "save_precision": "fp16" if plan.precision != "bf16" else "bf16",
        "save_every_n_epochs": plan.save_every_n_epochs,
        "save_state": True,
        "save_last_n_epochs_state": 1,
    }
    logging = {"logging_dir": "logs", "log_with": "tensorboard", "log_prefix": plan.project}
    tables = {
        "model": model,
        "network": network,
        "optimizer": optimizer,
        "training": training,
        "saving": saving,
        "logging": logging,
    }
    extra_train = {k: v for k, v in plan.extra.items() if not k.startswith("dataset.")}
    for key, value in extra_train.items():
        placed = False
        for table in tables.values():
            if key in table:
                table[key] = value
                placed = True
        if not placed:
            tables["training"][key] = value
    tables = {k: v for k, v in tables.items() if v}
    header = (
        f"# kohya sd-scripts training arguments for '{plan.project}' ({plan.model.name}),\n"
        f"# written by trainwright config (preset {plan.preset}). Pass with --config_file;\n"
        "# command-line flags override these. Script: "
        f"{script}\n"
    )
    subset: dict[str, Any] = {
        "image_dir": plan.dataset_dir,
        "num_repeats": plan.repeats,
        "caption_extension": plan.caption_extension,
        "shuffle_caption": False,
        "keep_tokens": 1 if plan.trigger_word else 0,
    }
    if plan.caption_dropout:
        subset["caption_dropout_rate"] = plan.caption_dropout
    dataset: dict[str, Any] = {
        "resolution": plan.resolution,
        "enable_bucket": True,
        "min_bucket_reso": 256,
        "max_bucket_reso": max(1024, plan.resolution * 2),
        "bucket_reso_steps": 64,
        "bucket_no_upscale": True,
        "subsets": [subset],
    }
    for key, value in plan.extra.items():
        if key.startswith("dataset."):
            subset[key.removeprefix("dataset.")] = value
    dataset_toml = dump_toml(
        {"general": {"caption_extension": plan.caption_extension}, "datasets": [dataset]},
        header=(
            f"# kohya dataset config for '{plan.project}'. caption_extension is explicit: kohya\n"
            "# would otherwise look for .caption files. batch size is set in the training file.\n"
        ),
    )
    files = {CONFIG_FILE: dump_toml(tables, header), DATASET_FILE: dataset_toml}
    files[COMMAND_FILE] = (
        "#!/bin/sh\n# The exact launch line; run it in this folder "
        "(sd-scripts from $TRAINWRIGHT_KOHYA_DIR).\n"
        + shlex.join(_base_command(Path(CONFIG_FILE), script))
        + "\n"
    )
    problems = check_keys(files)
    if problems:
        raise TrainwrightError("; ".join(problems))
    return files


def _base_command(config: Path, script: str) -> list[str]:
    dataset = config.with_name(DATASET_FILE)
    return [
        "accelerate",
        "launch",
        "--num_cpu_threads_per_process",
        "1",
        str(scripts_dir() / script),
        "--config_file",
        str(config),
        "--dataset_config",
        str(dataset),
    ]


def vram_overrides(plan: TrainingPlan) -> dict[str, Any]:
    return {"base_quant": "fp8" if plan.extra.get("fp8_base") else "none"}


def check_keys(files: dict[str, str], folder: Path | None = None) -> list[str]:
    """Every key of the generated files against sd-scripts' argument and dataset-schema names."""
    n = names()
    problems: list[str] = []
    if CONFIG_FILE in files:
        train = tomllib.loads(files[CONFIG_FILE])
        keys = [k for table in train.values() for k in table]
        problems += unknown_keys(keys, set(n["train_args"]), CONFIG_FILE)
        flat = {k: v for table in train.values() for k, v in table.items()}
        if flat.get("optimizer_type") not in n["optimizer_types"]:
            problems.append(f"optimizer_type {flat.get('optimizer_type')!r} is not a kohya one")
        if flat.get("mixed_precision") not in n["mixed_precision"]:
            problems.append(f"mixed_precision {flat.get('mixed_precision')!r} is not a kohya one")
        for key, value in flat.items():
            if isinstance(value, str) and value.lower() in ("true", "false"):
                problems.append(f"{key} is the string {value!r}; kohya needs a TOML boolean")
    if DATASET_FILE in files:
        ds = tomllib.loads(files[DATASET_FILE])
        schema = n["dataset_schema"]
        problems += unknown_keys(list(ds.get("general", {})), set(schema["general"]), "[general]")
        for d in ds.get("datasets", []):
            problems += unknown_keys(list(d), set(schema["dataset"]), "[[datasets]]")
            for s in d.get("subsets", []):
                problems += unknown_keys(list(s), set(schema["subset"]), "[[datasets.subsets]]")
                if "caption_extension" not in s and "caption_extension" not in ds.get(
                    "general", {}
                ):
                    problems.append("no caption_extension: kohya would look for .caption files")
    return problems


def read_config(path: Path) -> dict[str, Any]:
    try:
        tables = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"not a readable kohya TOML ({exc})") from None
    return {k: v for table in tables.values() if isinstance(table, dict) for k, v in table.items()}


def _script_of(config: Path) -> str:
    for line in Path(config).read_text(encoding="utf-8").splitlines()[:6]:
        if "Script: " in line:
            return line.split("Script: ", 1)[1].strip()
    return "train_network.py"


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
    cmd = _base_command(config, _script_of(config))
    if max_steps is not None:
        cmd += ["--max_train_steps", str(max_steps)]
    if batch_size is not None:
        cmd += ["--train_batch_size", str(batch_size)]
    if accumulation is not None:
        cmd += ["--gradient_accumulation_steps", str(accumulation)]
    if not save:
        cmd += ["--output_dir", str(config.parent / "dry-run")]
    if resume:
        states = sorted(
            (p for p in checkpoint_dir(config).glob("*-state") if p.is_dir()),
            key=lambda p: p.stat().st_mtime,
        )
        if states:
            cmd += ["--resume", str(states[-1])]
    return cmd


def checkpoint_dir(config: Path) -> Path:
    out = Path(str(read_config(config).get("output_dir", "output")))
    return out if out.is_absolute() else Path(config).parent / out


# --- its log -----------------------------------------------------------------------------------
LOG_BAR = re.compile(
    r"steps:\s*\d+%\|[^|]*\|\s*(?P<step>\d+)/(?P<total>\d+)\s*"
    r"\[(?P<elapsed>[\d:]+)<(?P<left>[\d:?]+),\s*(?P<rate>[^,\]]*)"
    r"(?:,\s*(?:avr_loss|loss)=(?P<loss>[-+\w.]+))?\]"
)
LOG_EPOCH = re.compile(r"(?:^|\s)epoch (\d+)/(\d+)\s*$")
LOG_SAVED = re.compile(r"saving checkpoint:\s*(?P<path>\S+\.(?:safetensors|ckpt|pt))")
LOG_TOTAL = re.compile(r"total optimization steps[^:=]*[:=]\s*(\d+)")
LOG_EPOCHS = re.compile(r"num epochs[^:=]*[:=]\s*(\d+)")
LOG_ERROR = re.compile(r"^(?:\w*Error|RuntimeError|torch\.\w*Error)\b.*|.*\bout of memory\b.*")
LOG_SIGNATURE = re.compile(r"steps:\s*\d+%\||running training / |\bavr_loss=")
_CKPT_LOG_EPOCH = re.compile(r"-(\d{6})\.(?:safetensors|ckpt|pt)$")
_CKPT_STEP = re.compile(r"-step(\d{8})\.(?:safetensors|ckpt|pt)$")


def parse_log(text: str, state: LogState | None = None) -> LogState:
    """sd-scripts' console: the tqdm `steps:` bar (redrawn with carriage returns, so each `\\r`
    or `\\n` ends a segment), `epoch N/M`, `saving checkpoint:`; `loss=` (older) or `avr_loss=`
    (newer, an average over the epoch) are both read."""
    st = state or LogState("kohya")
    for line in log_lines(text, st, LOG_BAR):
        m = LOG_BAR.search(line)
        if m:
            _bar(st, m)
            continue
        e = LOG_EPOCH.search(line)
        if e:
            st.epoch, st.epochs = int(e.group(1)), int(e.group(2))
            continue
        s = LOG_SAVED.search(line)
        if s:
            path = s.group("path")
            ep, stp = _CKPT_LOG_EPOCH.search(path), _CKPT_STEP.search(path)
            st.checkpoints.append(
                {
                    "path": path,
                    "epoch": int(ep.group(1)) if ep else None,
                    "step": int(stp.group(1)) if stp else st.step,
                    "loss": st.loss,
                }
            )
            continue
        t = LOG_TOTAL.search(line)
        if t:
            st.steps = int(t.group(1))
            continue
        n = LOG_EPOCHS.search(line)
        if n:
            st.epochs = int(n.group(1))
            continue
        if LOG_ERROR.match(line.strip()):
            st.errors.append(line.strip())
            continue
        st.unparsed_lines += 1
    if st.steps and st.step is not None and st.step >= st.steps:
        st.finished = True
    return st


def _bar(st: LogState, m: re.Match[str]) -> None:
    step, total = int(m.group("step")), int(m.group("total"))
    st.steps = total
    elapsed = clock_seconds(m.group("elapsed"))
    if m.group("loss") is not None:
        loss = to_float(m.group("loss"))
        if loss is not None and step > 0:
            st.add_point(step, loss, st.epoch)
    elif step > (st.step or 0):
        st.step = step
    if step > 0:
        st.tick(step, elapsed)
    left = clock_seconds(m.group("left"))
    st.eta_s = left
