"""Backend `trl`: Hugging Face TRL 1.16 (SFT and DPO) with PEFT LoRA, QLoRA (bitsandbytes 4-bit,
GPU only) or a full fine-tune; flavour `unsloth` loads the model with Unsloth (GPU only).

What it writes: `trl.yaml`, the YAML that `trl sft --config trl.yaml` / `trl dpo --config
trl.yaml` read. Every key is a field of TRL's own dataclasses (ScriptArguments, SFTConfig or
DPOConfig, ModelConfig, DatasetMixtureConfig), so the file is TRL's documented interface and
nothing of trainwright runs inside the trainer: a person can read it, change it, and run it
with TRL alone. A generated script would be one more program to review and would drift from
TRL's own; the YAML changes only when TRL's field names do, and those are checked here.

The trainer (`sft`, the default, or `dpo`) and the flavour are chosen with overrides,
`trainer=dpo` and `flavour=unsloth` (`trainwright config ... trainer=dpo flavour=unsloth`), and
recorded in the file's first line (`# trl dpo (unsloth) config ...`), which `command()` reads:
TRL refuses keys it does not know, so they cannot live among the settings. The method comes
from the plan (lora, qlora: `load_in_4bit`, full: no PEFT).

Unsloth has no command line: its loader (`FastLanguageModel`) must run before TRL's trainer
sees the model. The flavour therefore runs this module, `python -m trainwright.backends.trl
unsloth sft --config trl.yaml`, which imports unsloth first, parses the same YAML with TRL's
own parser, loads the model and the LoRA with Unsloth and hands both to TRL's trainer. It is
code in the package rather than a script written beside the config so that a local launch, a
SLURM run and the tests run the same lines, and the YAML stays the same file for both flavours.

Checks before TRL sees the file (`check_keys`, Gate 2): every key against TRL's dataclasses
(read from the installed TRL when its version differs from resources/backends/trl-names.yaml,
else that list), and a local dataset's columns (DPO needs `chosen` / `rejected`, SFT `text`,
`messages` or `prompt` / `completion`). TRL's own messages for these are an `accelerate launch`
usage screen and a bare `KeyError: 'chosen'`. A hub dataset name cannot be checked offline.

Logs: TRL prints each logging step as a dict (`{'loss': '1.234', ..., 'epoch': '0.5'}`)
between tqdm bars (`12/100 [00:30<03:40, 2.50s/it]`); `parse_log` reads those, and also the
`log_history` of a checkpoint's `trainer_state.json` (exact steps). Checkpoints:
`output_dir/checkpoint-N/`; the final adapter or model lands in `output_dir` itself.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import sys
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from trainwright.backends.common import (
    PLACEHOLDER,
    SRUN_PER_NODE,
    Launch,
    TrainingPlan,
    data,
    optimizer_entry,
    sibling_executable,
)
from trainwright.dataset.text_columns import DATA_SUFFIXES, NEEDS, columns_of
from trainwright.dataset.text_columns import missing_columns as _missing
from trainwright.errors import TrainwrightError
from trainwright.run.logs.common import (
    LogState,
    clock_seconds,
    log_lines,
)
from trainwright.shell_words import Raw, Word

NAME = "trl"
KINDS = ("llm",)
CONFIG_FILE = "trl.yaml"
OPTIMIZER_KEY = "trl"
FRAMEWORK = "trl"  # TRL 1.16's fused LM head: logits in tiles, never the whole vocabulary
RUNS_ON_CPU = True  # LoRA and full fine-tunes run on the CPU; see runs_on_cpu(config)
HAS_ACCUMULATION = True
CAN_RESUME = True
BATCH_KEYS = ("per_device_train_batch_size", "gradient_accumulation_steps")
OUTPUT_KEY = "output_dir"
INSTALL = {
    "packages": ["trl", "peft", "transformers", "accelerate"],
    "executable": "trl",
    "install": "pip install 'trainwright[trl]'",
}
TRAINERS = ("sft", "dpo")
FLAVOURS = ("hf", "unsloth")
# Unsloth's get_peft_model takes module names; TRL's "all-linear" means these in a decoder.
LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
HEADER = re.compile(r"^# trl (?P<trainer>sft|dpo)\b(?: \((?P<flavour>unsloth)\))?", re.M)
NAMES_FILE = "trl-names"  # resources/backends/trl-names.yaml


# --- the names TRL knows ---------------------------------------------------------------------


def names_from_installed() -> dict[str, Any]:
    """Every config key of the installed TRL, by where it goes (needs trl; slow: imports it)."""
    import dataclasses

    import trl
    from trl.scripts.utils import DatasetConfig

    def fields(cls: Any) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    return {
        "trl_version": metadata.version("trl"),
        "transformers_version": metadata.version("transformers"),
        "common": sorted(
            {"env"}
            | set(fields(trl.ScriptArguments))
            | set(fields(trl.ModelConfig))
            | set(fields(trl.DatasetMixtureConfig))
        ),
        "sft": fields(trl.SFTConfig),
        "dpo": fields(trl.DPOConfig),
        "dataset_entry": fields(DatasetConfig),
    }


@cache
def known_names() -> dict[str, Any]:
    """TRL's names: the data file when it was made from the installed TRL and transformers
    (whose TrainingArguments the configs extend), or TRL is not installed; else read from the
    installed TRL's dataclasses."""
    kept = data(NAMES_FILE)
    trl_version, hf_version = _version("trl"), _version("transformers")
    if trl_version is None or (
        trl_version == kept.get("trl_version") and hf_version == kept.get("transformers_version")
    ):
        return kept
    return names_from_installed()


def keys_for(trainer: str) -> set[str]:
    names = known_names()
    return set(names["common"]) | set(names[trainer])


# --- writing the config ----------------------------------------------------------------------


def _is_local(value: str) -> bool:
    path = Path(value).expanduser()
    return (
        path.is_absolute()
        or value.startswith((".", "~"))
        or path.suffix.lower() in DATA_SUFFIXES
        or path.exists()
    )


def dataset_keys(dataset: str | None) -> dict[str, Any]:
    """The dataset part of the config: a local file or folder as a `datasets` entry, anything
    else as a hub name (`dataset_name`)."""
    if not dataset or dataset == PLACEHOLDER:
        return {"dataset_name": PLACEHOLDER}
    if not _is_local(dataset):
        return {"dataset_name": dataset}
    path = Path(dataset).expanduser()
    builder = DATA_SUFFIXES.get(path.suffix.lower())
    if builder:
        entry = {"path": builder, "data_files": str(path), "split": "train"}
    else:
        entry = {"path": str(path), "split": "train"}
    return {"datasets": [entry]}


def trl_config(
    *,
    model_path: str,
    dataset: str | None,
    trainer: str = "sft",
    method: str = "lora",
    output_dir: str = "output",
    epochs: int = 1,
    batch_size: int = 4,
    gradient_accumulation_steps: int = 1,
    learning_rate: float = 2e-4,
    lora_rank: int = 16,
    lora_alpha: float = 32,
    lora_dropout: float = 0.05,
    max_length: int | None = 2048,
    seed: int = 42,
    precision: str = "bf16",
    gradient_checkpointing: bool = True,
    optimizer: str = "adamw",
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """A TRL config (the YAML `trl sft|dpo --config` reads) as a dict, in TRL's own names."""
    if trainer not in TRAINERS:
        raise TrainwrightError(f"trainer must be sft or dpo, not {trainer!r}")
    if method not in ("lora", "qlora", "full"):
        raise TrainwrightError(f"method must be lora, qlora or full, not {method!r}")
    if precision not in ("bf16", "fp16", "fp32"):
        raise TrainwrightError(f"precision must be bf16, fp16 or fp32, not {precision!r}")
    dtype = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[precision]
    if precision == "fp16" and method == "full":
        dtype = "float32"  # fp16 weights cannot be trained under fp16 autocast; AMP needs fp32
    cfg: dict[str, Any] = {"model_name_or_path": model_path, "dtype": dtype}
    cfg.update(dataset_keys(dataset))
    if method != "full":
        cfg.update(
            use_peft=True,
            lora_r=int(lora_rank),
            lora_alpha=int(lora_alpha) if float(lora_alpha).is_integer() else float(lora_alpha),
            lora_dropout=float(lora_dropout),
            lora_target_modules="all-linear",
        )
    if method == "qlora":
        cfg.update(load_in_4bit=True, bnb_4bit_quant_type="nf4", use_bnb_nested_quant=True)
    cfg.update(
        output_dir=output_dir,
        num_train_epochs=int(epochs),
        per_device_train_batch_size=int(batch_size),
        gradient_accumulation_steps=int(gradient_accumulation_steps),
        learning_rate=float(learning_rate),
        lr_scheduler_type="cosine",
        warmup_steps=int(warmup_steps),
        weight_decay=float(weight_decay),
        optim=optimizer_entry(optimizer, OPTIMIZER_KEY)["name"],
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        max_length=max_length,
        seed=int(seed),
        logging_steps=1,
        log_level="info",  # the step totals, a resume's step and each checkpoint, for monitor
        save_strategy="epoch",
        report_to="none",
    )
    # transformers 5.25 renamed gradient_checkpointing (the old name still works, with a warning)
    renamed = "activation_checkpointing" in keys_for(trainer)
    cfg["activation_checkpointing" if renamed else "gradient_checkpointing"] = bool(
        gradient_checkpointing
    )
    if max_steps:
        cfg["max_steps"] = int(max_steps)
    if trainer == "dpo":
        cfg["beta"] = 0.1
    return cfg


def header(trainer: str, flavour: str, what: str, file: str = CONFIG_FILE) -> str:
    label = f"{trainer} (unsloth)" if flavour == "unsloth" else trainer
    run = (
        f"python -m trainwright.backends.trl unsloth {trainer}"
        if flavour == "unsloth"
        else (f"trl {trainer}")
    )
    return (
        f"# trl {label} config for {what}, written by trainwright.\n"
        f"# Keys: TRL {known_names().get('trl_version', '?')}'s ScriptArguments, "
        f"{'DPOConfig' if trainer == 'dpo' else 'SFTConfig'}, ModelConfig and "
        "DatasetMixtureConfig fields.\n"
        f"# Run: {run} --config {file} (paths are relative to the folder it runs in)\n"
    )


def _choice(extra: dict[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = str(extra.pop(key, default) or default).strip().lower()
    if value not in allowed:
        raise TrainwrightError(f"{key} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def to_yaml(cfg: dict[str, Any], head: str) -> str:
    return head + yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)


def render(plan: TrainingPlan) -> dict[str, str]:
    """trl.yaml from the neutral plan; `trainer`, `flavour` and `dataset` overrides are
    trainwright's, every other override must be a TRL key."""
    if plan.model.is_image:
        raise TrainwrightError("trl trains language models; use kohya, ai-toolkit or simpletuner")
    extra = dict(plan.extra)
    trainer = _choice(extra, "trainer", TRAINERS, "sft")
    flavour = _choice(extra, "flavour", FLAVOURS, "hf")
    dataset = extra.pop("dataset", None) or plan.dataset_dir
    model_path = str(extra.pop("model_name_or_path", plan.base_model_path))
    cfg = trl_config(
        model_path=model_path,
        dataset=str(dataset),
        trainer=trainer,
        method=plan.method,
        output_dir=plan.output_dir,
        epochs=plan.epochs,
        batch_size=plan.batch_size,
        gradient_accumulation_steps=plan.gradient_accumulation,
        learning_rate=plan.learning_rate,
        lora_rank=plan.rank,
        lora_alpha=plan.alpha,
        lora_dropout=plan.lora_dropout,
        max_length=plan.seq_len,
        seed=plan.seed,
        precision=plan.precision,
        gradient_checkpointing=plan.gradient_checkpointing,
        optimizer=plan.optimizer,
        weight_decay=plan.weight_decay,
        warmup_steps=plan.warmup_steps,
    )
    known = keys_for(trainer)
    unknown = [k for k in extra if k not in known]
    if unknown:
        raise TrainwrightError(_unknown_text(unknown, trainer))
    cfg.update(extra)
    what = f"'{plan.project}' ({plan.model.name}, {plan.method}, preset {plan.preset})"
    return {CONFIG_FILE: to_yaml(cfg, header(trainer, flavour, what))}


def _unknown_text(keys: list[str], trainer: str) -> str:
    import difflib

    known = sorted(keys_for(trainer))
    parts = []
    for key in keys:
        close = difflib.get_close_matches(key, known, n=1)
        parts.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    version = known_names().get("trl_version", "?")
    return (
        f"{', '.join(parts)} {'is not a key' if len(keys) == 1 else 'are not keys'} that "
        f"TRL {version}'s {trainer} config knows (its dataclasses' fields)"
    )


def framework(plan: TrainingPlan) -> str:
    """The loss head the VRAM estimate assumes: Unsloth's for that flavour, else TRL's own fused
    head (SFTTrainer and DPOTrainer both add it; they turn Liger's fused cross-entropy off)."""
    if str(plan.extra.get("flavour", "")).lower() == "unsloth":
        return "unsloth"
    return FRAMEWORK


def vram_overrides(plan: TrainingPlan) -> dict[str, Any]:
    """LoRA on every linear layer (TRL's `all-linear`), which is what render() writes."""
    return {"targets": "all"}


# --- reading a config ------------------------------------------------------------------------


def read_config(path: Path) -> dict[str, Any]:
    try:
        cfg = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"not a readable TRL config ({exc})") from None
    if not isinstance(cfg, dict):
        raise ValueError("a TRL config is a YAML mapping of TRL's argument names")
    return cfg


def kind_of(text: str, cfg: dict[str, Any] | None = None) -> tuple[str, str]:
    """(trainer, flavour) from the first line trainwright wrote; without it, DPO when a key
    only DPO has is set."""
    m = HEADER.search("\n".join(text.splitlines()[:3]))
    if m:
        return m["trainer"], m["flavour"] or "hf"
    names = known_names()
    dpo_only = set(names["dpo"]) - set(names["sft"])
    return ("dpo" if cfg and dpo_only & set(cfg) else "sft"), "hf"


def config_kind(config: Path) -> tuple[str, str]:
    text = Path(config).read_text(encoding="utf-8")
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError:
        cfg = None
    return kind_of(text, cfg if isinstance(cfg, dict) else None)


def check_keys(files: dict[str, str], folder: Path | None = None) -> list[str]:
    """Unknown keys, a missing model or dataset, and a local dataset without the columns the
    trainer needs: each a plain sentence naming the key or the columns. `folder`: where the
    trainer starts (relative dataset paths are read from there)."""
    text = files.get(CONFIG_FILE, "")
    try:
        cfg = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        return [f"{CONFIG_FILE}: not valid YAML ({exc})"]
    if not isinstance(cfg, dict):
        return [f"{CONFIG_FILE}: a TRL config is a mapping of TRL's argument names"]
    return config_problems(cfg, text, folder, CONFIG_FILE)


def config_problems(
    cfg: dict[str, Any], text: str, base: Path | None, where: str, missing_ok: bool = False
) -> list[str]:
    """Every problem of a parsed config; `base` is the folder the trainer runs in (None when
    unknown: a relative dataset path is then checked only where it is found from here).
    `missing_ok`: a missing dataset is named by the caller's own input check."""
    trainer, flavour = kind_of(text, cfg)
    problems = []
    unknown = [str(k) for k in cfg if str(k) not in keys_for(trainer)]
    if unknown:
        problems.append(f"{where}: {_unknown_text(unknown, trainer)}")
    entry_keys = set(known_names()["dataset_entry"])
    for entry in cfg.get("datasets") or []:
        bad = sorted(set(entry) - entry_keys) if isinstance(entry, dict) else ["(not a mapping)"]
        if bad:
            problems.append(
                f"{where}: datasets entry {entry!r} has {', '.join(bad)}; an entry takes "
                f"{', '.join(sorted(entry_keys))}"
            )
    if not cfg.get("model_name_or_path"):
        problems.append(f"{where}: model_name_or_path is missing (a hub id or a local folder)")
    if not cfg.get("datasets") and not cfg.get("dataset_name"):
        problems.append(f"{where}: no dataset: set dataset_name or a datasets entry")
    if cfg.get("load_in_4bit") and not cfg.get("use_peft"):
        problems.append(f"{where}: load_in_4bit (QLoRA) trains an adapter: set use_peft: true")
    problems += [f"{where}: {p}" for p in dataset_problems(cfg, trainer, base, missing_ok)]
    return problems


# --- the dataset's columns (rules: dataset/text_columns.py) ---------------------------------


def _files(entry_path: Path) -> list[Path]:
    if entry_path.is_dir():
        found = sorted(
            p for p in entry_path.rglob("*") if p.suffix.lower() in DATA_SUFFIXES and p.is_file()
        )
        return found[:1]
    return [entry_path]


def _local_sources(cfg: dict[str, Any], base: Path | None) -> list[tuple[Path, list[str] | None]]:
    """(local file or folder, the columns it selects) for every dataset this config reads."""
    out = []

    def local(raw: Any) -> Path | None:
        if not isinstance(raw, str) or not raw.strip() or raw == PLACEHOLDER:
            return None
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
            if base is None and not path.exists():
                return None  # relative to a folder not known here
        return path if _is_local(raw) or path.exists() else None

    for entry in cfg.get("datasets") or []:
        if not isinstance(entry, dict):
            continue
        files = entry.get("data_files")
        if isinstance(files, dict):
            files = files.get(entry.get("split") or "train") or next(iter(files.values()), None)
        if isinstance(files, list):
            files = files[0] if files else None
        path = local(files) or (None if files else local(entry.get("path")))
        if path is not None:
            out.append((path, entry.get("columns")))
    path = local(cfg.get("dataset_name"))
    if path is not None and not cfg.get("datasets"):
        out.append((path, None))
    return out


def dataset_problems(
    cfg: dict[str, Any], trainer: str, base: Path | None, missing_ok: bool = False
) -> list[str]:
    """What a local dataset lacks for the trainer (a hub name is not checked: offline)."""
    problems = []
    text_field = str(cfg.get("dataset_text_field") or "text")
    for path, selected in _local_sources(cfg, base):
        if not path.exists():
            if not missing_ok:
                problems.append(f"the dataset {path} does not exist")
            continue
        for file in _files(path):
            try:
                cols = columns_of(file)
            except (OSError, ValueError) as exc:
                problems.append(f"the dataset {file} cannot be read: {exc}")
                continue
            if cols is None:
                continue
            if selected:
                cols = cols & set(selected)
            missing = _missing(trainer, cols, text_field)
            if missing:
                problems.append(
                    f"the {trainer} dataset {file} lacks {', '.join(missing)}: {trainer} needs "
                    f"{NEEDS[trainer]}; its columns are {', '.join(sorted(cols)) or 'none'}"
                )
    return problems


# --- running ---------------------------------------------------------------------------------


def trl_executable() -> str:
    return (
        sibling_executable(sys.executable, "trl")
        if Path(sys.executable).is_absolute()
        else (shutil.which("trl") or "trl")
    )


def latest_checkpoint(folder: Path) -> Path | None:
    found = []
    for path in Path(folder).glob("checkpoint-*"):
        step = path.name.removeprefix("checkpoint-")
        if step.isdigit() and (path / "trainer_state.json").is_file():
            found.append((int(step), path))
    return max(found)[1] if found else None


def command(
    config: Path,
    *,
    max_steps: int | None = None,
    batch_size: int | None = None,
    accumulation: int | None = None,
    resume: bool = False,
    save: bool = True,
) -> list[str]:
    """`trl sft|dpo --config FILE` (or the Unsloth launcher) with TRL's own command-line
    overrides, which win over the file: --max_steps, the batch knob, --resume_from_checkpoint
    (the newest checkpoint-N, when there is one), and for a dry run an output folder of its
    own with saving off."""
    trainer, flavour = config_kind(config)
    if flavour == "unsloth":
        cmd = [sys.executable, "-u", "-m", "trainwright.backends.trl", "unsloth", trainer]
    else:
        cmd = [trl_executable(), trainer]
    cmd += ["--config", str(config)]
    if max_steps is not None:
        cmd += ["--max_steps", str(max_steps)]
    if batch_size is not None:
        cmd += ["--per_device_train_batch_size", str(batch_size)]
    if accumulation is not None:
        cmd += ["--gradient_accumulation_steps", str(accumulation)]
    if resume:
        last = latest_checkpoint(checkpoint_dir(config))
        if last is not None:
            cmd += ["--resume_from_checkpoint", str(last)]
    if not save:
        cmd += ["--output_dir", str(Path(config).parent / "dry-run"), "--save_strategy", "no"]
    return cmd


def checkpoint_dir(config: Path) -> Path:
    out = Path(str(read_config(config).get(OUTPUT_KEY) or "output"))
    return out if out.is_absolute() else Path(config).parent / out


def runs_on_cpu(config: Path) -> bool:
    """LoRA and full fine-tunes run on the CPU; 4/8-bit loading, bitsandbytes optimizers and
    Unsloth need an NVIDIA GPU."""
    cfg = read_config(config)
    if config_kind(config)[1] == "unsloth" or cfg.get("load_in_4bit") or cfg.get("load_in_8bit"):
        return False
    optim = str(cfg.get("optim") or "")
    return not ("8bit" in optim or "bnb" in optim or optim.startswith("paged_"))


def _nvidia_gpu() -> bool:
    return bool(shutil.which("nvidia-smi")) or Path("/proc/driver/nvidia/version").exists()


def installed(config: Path | None = None) -> tuple[bool, str]:
    """What the INSTALL data cannot say: peft that refuses the installed torchao, and for a
    config, what its flavour and method need (Unsloth and bitsandbytes on an NVIDIA GPU)."""
    versions = {p: _version(p) for p in ("trl", "peft", "torchao", "bitsandbytes", "unsloth")}
    if not versions["trl"] or not versions["peft"]:
        return False, f"trl and peft are needed: {INSTALL['install']}"
    peft, torchao = versions["peft"], versions["torchao"]
    if torchao and _older(torchao, "0.16") and not _older(peft, "0.19"):
        return False, (
            f"peft {peft} refuses torchao {torchao} (installed for torchtune) on every LoRA "
            "layer: pip install 'peft<0.19', or keep TRL and torchtune in separate environments"
        )
    detail = f"trl {versions['trl']}, peft {peft}"
    if config is None:
        return True, detail
    cfg = read_config(config)
    if config_kind(config)[1] == "unsloth":
        if not _nvidia_gpu():
            return (
                False,
                "the unsloth flavour needs an NVIDIA GPU (Unsloth runs on CUDA only); "
                "none was found here: drop flavour=unsloth to train with TRL alone",
            )
        if not versions["unsloth"]:
            return False, "unsloth is not installed: pip install unsloth"
        detail += f", unsloth {versions['unsloth']}"
    if cfg.get("load_in_4bit") or cfg.get("load_in_8bit"):
        if not _nvidia_gpu():
            return (
                False,
                "QLoRA (load_in_4bit) needs an NVIDIA GPU: bitsandbytes quantizes on "
                "CUDA; use method=lora on this machine",
            )
        if not versions["bitsandbytes"]:
            return False, "QLoRA (load_in_4bit) needs bitsandbytes: pip install bitsandbytes"
    return True, detail


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _older(version: str, than: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", v)[:3])

    return parts(version) < parts(than)


FAILURE_TEXTS = {
    "config": [
        r"Accelerate launch command: error: unrecognized arguments[^\n]*",
        r"Unknown arguments from config file[^\n]*",
    ],
    "dataset": [
        r"KeyError: '(?:chosen|rejected|prompt|completion|messages|text)'",
        r"Either `datasets` or `dataset_name` must be provided\.?",
    ],
    "package": [r"Found an incompatible version of torchao[^\n]*"],
}


# --- its log ---------------------------------------------------------------------------------

LOG_DICT = re.compile(r"\{'(?:loss|train_runtime)'[^{}]*\}")
PAIR = re.compile(r"'([\w/.-]+)':\s*'?([^,'}]*)'?")
# the trainer's own bar has no description before the percentage (dataset maps do)
BAR = re.compile(
    r"^\s*\d+%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)\s*\[(?P<elapsed>[\d:]+)<(?P<left>[\d:?]+)"
)
# transformers' Trainer at log_level info (which render() writes)
INFO = re.compile(
    r"(?:Total optimization steps = (?P<steps>[\d,]+)"
    r"|Num Epochs = (?P<epochs>[\d,]+)"
    r"|Num update steps per epoch = (?P<per_epoch>[\d,]+)"
    r"|Resuming training from checkpoint with epoch \d+ and global step (?P<resumed>\d+)"
    r"|Continuing training from global step (?P<continued>\d+)"
    r"|Saving model checkpoint to (?P<saved>\S*checkpoint-(?P<saved_step>\d+)))"
)
ERROR = re.compile(r"^(?:[\w.]*(?:Error|Exception)): .+")
LOG_SIGNATURE = re.compile(r"\{'(?:loss|train_runtime)': |\"log_history\": \[", re.M)


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def _epoch(value: float | None) -> int | None:
    """TRL logs the fraction of epochs done (1.33); the epoch under way is its ceiling."""
    if value is None or not math.isfinite(value):
        return None
    return max(1, math.ceil(value - 1e-9))


def _step(last: int, epoch: float | None, per_epoch: int | None) -> int:
    """A dict line carries no step. trainwright writes logging_steps: 1, so it is the one after
    the last; where the fraction of epochs done says otherwise (another logging_steps), that
    (exact to its four digits) wins."""
    step = last + 1
    if per_epoch and epoch is not None and math.isfinite(epoch):
        from_epoch = round(epoch * per_epoch)
        if abs(from_epoch - step) > max(1.0, step * 2e-4):
            return max(from_epoch, last + 1)
    return step


def parse_log(text: str, state: LogState | None = None) -> LogState:
    """The console: dict lines (stdout), tqdm bars and transformers' info lines (stderr), in
    one file; or a trainer_state.json, whose log_history has exact steps."""
    st = state or LogState(NAME)
    if text.lstrip().startswith("{") and '"log_history"' in text[: 1 << 20]:
        return _trainer_state(text, st)
    last = st.step or 0
    attempts = st.attempts
    for line in log_lines(text, st, BAR):
        if st.attempts != attempts:  # a new attempt counts its steps afresh
            attempts, last = st.attempts, 0
        b = BAR.search(line)
        if b:
            st.steps = int(b["total"])
            if int(b["n"]):
                st.tick(int(b["n"]), clock_seconds(b["elapsed"]))
        i = INFO.search(line)
        if i:
            _info(st, i)
            if i["resumed"] or i["continued"]:
                last = int(i["resumed"] or i["continued"])
            continue
        found = False
        for d in LOG_DICT.finditer(line):
            found = True
            fields = {k: _number(v) for k, v in PAIR.findall(d.group(0))}
            if "train_runtime" in fields:
                st.finished = True
                continue
            loss = fields.get("loss")
            if loss is None:
                continue
            last = _step(last, fields.get("epoch"), st.steps_per_epoch)
            st.add_point(last, loss, _epoch(fields.get("epoch")))
        if found or b:
            continue
        if "Training completed" in line:
            st.finished = True
        elif ERROR.match(line.strip()):
            if line.strip() not in st.errors:
                st.errors.append(line.strip())
        else:
            st.unparsed_lines += 1
    return st


def _info(st: LogState, m: re.Match[str]) -> None:
    def num(group: str) -> int:
        return int(m[group].replace(",", ""))

    if m["steps"]:
        st.steps = num("steps")
    elif m["epochs"]:
        st.epochs = num("epochs")
    elif m["per_epoch"]:
        st.steps_per_epoch = num("per_epoch")
    elif m["saved"]:
        step = num("saved_step")
        st.checkpoints.append(
            {"path": m["saved"], "epoch": st.epoch, "step": step, "loss": st.loss}
        )


def _trainer_state(text: str, st: LogState) -> LogState:
    try:
        state = json.loads(text)
    except ValueError:
        st.notes.append("trainer_state.json is not valid JSON (still being written?)")
        return st
    for entry in state.get("log_history") or []:
        if not isinstance(entry, dict):
            continue
        if "train_runtime" in entry:
            st.finished = True
        loss, step = entry.get("loss"), entry.get("step")
        if isinstance(loss, (int, float)) and isinstance(step, int):
            st.add_point(step, float(loss), _epoch(entry.get("epoch")))
    if isinstance(state.get("max_steps"), int) and state["max_steps"] > 0:
        st.steps = state["max_steps"]
        if isinstance(state.get("global_step"), int) and state["global_step"] >= st.steps:
            st.finished = True  # the last checkpoint is written before the closing summary
    if isinstance(state.get("num_train_epochs"), int):
        st.epochs = state["num_train_epochs"]
    return st


# --- on a cluster (`trainwright runs ... --backend trl`) ----------------------------------------

CLUSTER_DEFAULTS = {"model": "qwen2.5-0.5b", "dataset": "data/train.jsonl", "gpus": "1"}
PLAN_COLUMNS = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "learning_rate": "learning_rate",
    "lora_rank": "lora_rank",
    "lora_alpha": "lora_alpha",
    "max_seq_len": "max_length",
    "seed": "seed",
    "max_steps": "max_steps",
}


def _plan_path(value: str, experiment_dir: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (experiment_dir / path).resolve())


def model_path(model: str, experiment_dir: Path | None = None) -> str:
    """What TRL loads for a plan's model: a local folder, a catalog model's hub id, or the
    name as given (a hub id)."""
    from trainwright.hardware import catalog

    if experiment_dir is not None and _is_local(model):
        return _plan_path(model, experiment_dir)
    try:
        entry = catalog.load().get(model)
    except TrainwrightError:
        return model
    hub = next((a for a in entry.aliases if "/" in a), None)
    return hub or model


def model_problem(model: str) -> str | None:
    """TRL loads any Hugging Face causal LM: a catalog LLM, a hub id (org/name) or a folder."""
    from trainwright.hardware import catalog

    try:
        entry = catalog.load().get(model)
    except TrainwrightError:
        if "/" in model or _is_local(model):
            return None
        return (
            f"model {model!r} is neither a catalog model nor a hub id (org/name) or a local "
            "folder with config.json"
        )
    if entry.kind != "llm":
        return f"trl trains language models; {entry.name} is an {entry.kind} model"
    return None


def cluster_config(run: Any, experiment_dir: Path) -> str:
    """The run's finetune.yaml (TRL keys) from a runs_plan.md row; `Trainer` (sft / dpo),
    `Flavour` and `Model path` columns are read when the plan has them."""
    if run.method not in ("lora", "qlora", "full"):
        raise TrainwrightError(f"trl cannot run method {run.method!r}: lora, qlora or full")
    trainer = (run.extra_value("trainer") or "sft").strip().lower()
    flavour = (run.extra_value("flavour", "flavor") or "hf").strip().lower()
    for key, value, allowed in (("Trainer", trainer, TRAINERS), ("Flavour", flavour, FLAVOURS)):
        if value not in allowed:
            raise TrainwrightError(f"{key} must be one of {', '.join(allowed)}, not {value!r}")
    path = run.extra_value("model path", "weights", "checkpoint dir")
    args: dict[str, Any] = {
        "model_path": _plan_path(path, experiment_dir)
        if path
        else model_path(run.model, experiment_dir),
        "dataset": _plan_path(run.dataset, experiment_dir)
        if _is_local(run.dataset) or (experiment_dir / run.dataset).exists()
        else run.dataset,
        "trainer": trainer,
        "method": run.method,
        "output_dir": "output",
        "precision": (run.extra_value("precision") or ("bf16" if run.gpus else "fp32")).lower(),
    }
    for column, argument in PLAN_COLUMNS.items():
        if column in run.params:
            args[argument] = run.params[column]
    cfg = trl_config(**args)
    if not run.gpus:
        cfg["use_cpu"] = True
    what = f"run '{run.name}' ({run.model})"
    return to_yaml(cfg, header(trainer, flavour, what, "finetune.yaml"))


def cluster_problems(config: dict[str, Any], path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    # a missing dataset: the pre-flight's input check (run_inputs) names it already
    found = config_problems(config, text, path.parent, str(path), missing_ok=True)
    if PLACEHOLDER in str(config.get("model_name_or_path", "")):
        found.append(f"{path}: model_name_or_path is {PLACEHOLDER}: add a 'Model path' column")
    return found


def cluster_launch(
    run: Any, run_dir: Path, config: dict[str, Any], python: str, launcher: str | None
) -> Launch:
    """One process: `trl sft|dpo --config finetune.yaml`. Several GPUs: `accelerate launch`
    on TRL's own script module; several nodes: one accelerate per node under srun, meeting at
    the first node (c10d), each with its own machine rank. Python's output unbuffered, so the
    log keeps TRL's loss lines (stdout) in order with transformers' lines (stderr)."""
    unbuffered: list[Word] = [shutil.which("env") or "/usr/bin/env", "PYTHONUNBUFFERED=1"]
    config_file = run_dir / "finetune.yaml"
    text = config_file.read_text(encoding="utf-8") if config_file.is_file() else ""
    trainer, flavour = kind_of(text, config)
    gpus = run.gpus or 1
    if flavour == "unsloth":
        if gpus > 1:
            raise TrainwrightError("the unsloth flavour trains on one GPU; give the run 1 GPU")
        words: list[Word] = [python, "-u", "-m", "trainwright.backends.trl", "unsloth", trainer]
    elif gpus == 1:
        words = [*unbuffered, sibling_executable(python, "trl"), trainer]
    else:
        accelerate = sibling_executable(python, "accelerate")
        common: list[Word] = ["--num_processes", str(gpus), "--num_machines", str(run.nodes)]
        if run.nodes > 1:
            # $SLURM_NODEID differs per node: expanded by the shell srun starts there
            words = [
                *SRUN_PER_NODE,
                *unbuffered,
                "bash",
                "-c",
                'exec "$0" launch --machine_rank "$SLURM_NODEID" "$@"',
                accelerate,
                *common,
            ]
            words += [
                "--main_process_ip",
                Raw('"$MASTER_ADDR"'),
                "--main_process_port",
                Raw('"$MASTER_PORT"'),
                "--rdzv_backend",
                "c10d",
            ]
        else:
            words = [*unbuffered, accelerate, "launch", *common, "--multi_gpu"]
        words += ["-m", f"trl.scripts.{trainer}"]
    words += ["--config", "finetune.yaml"]
    out = Path(str(config.get(OUTPUT_KEY) or "output"))
    out = out if out.is_absolute() else run_dir / out
    latest = (
        f'"$({shlex.quote(python)} -m trainwright.backends.trl latest {shlex.quote(str(out))})"'
    )
    return Launch(
        words,
        ["--resume_from_checkpoint", Raw(latest)],
        out,
        "checkpoint-*/trainer_state.json",
    )


def cluster_vram(run: Any, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """What the VRAM estimate needs from a run's config, and its schedule."""
    precision = "bf16" if config.get("bf16") else "fp16" if config.get("fp16") else "fp32"
    settings = {
        "precision": precision,
        "rank": int(config.get("lora_r") or 16),
        "targets": "all",
        "batch": int(config.get(BATCH_KEYS[0]) or 1),
        "seq_len": int(config.get("max_length") or 1024),
        "gradient_accumulation": int(config.get(BATCH_KEYS[1]) or 1),
        "gradient_checkpointing": bool(
            config.get("activation_checkpointing", config.get("gradient_checkpointing", True))
        ),
    }
    schedule = {"epochs": int(config.get("num_train_epochs") or 1)}
    return settings, schedule


def run_inputs(config: dict[str, Any], folder: Path) -> dict[str, Path]:
    """The local dataset and model folder a run reads (hub names are not paths)."""
    found: dict[str, Path] = {}
    sources = _local_sources(config, folder)
    if sources:
        found["dataset"] = sources[0][0]
    model = config.get("model_name_or_path")
    if isinstance(model, str) and model.strip() and _is_local(model):
        path = Path(model).expanduser()
        found["model"] = path if path.is_absolute() else folder / path
    return found


def validate(path: Path | str, timeout: float = 300) -> tuple[bool, str]:
    """TRL's own parser on the file (its dataclasses' types and choices), in a child process."""
    import subprocess

    trainer, _ = config_kind(Path(path))
    code = (
        f"import sys; from trl.scripts import {trainer} as m; "
        "m.make_parser().parse_args_and_config(['--config', sys.argv[1]]); print('ok')"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"TRL's parser took over {timeout:g} s"
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    return proc.returncode == 0, lines[-1] if lines else f"exit {proc.returncode}"


# --- the unsloth flavour's launcher ----------------------------------------------------------


def unsloth_main(trainer: str, argv: list[str]) -> int:
    """Load the model with Unsloth, then train with TRL's trainer on the same YAML."""
    import trl
    import unsloth  # noqa: F401  first: it patches transformers, peft and trl on import
    from datasets import load_dataset
    from unsloth import FastLanguageModel

    config_cls = {"sft": trl.SFTConfig, "dpo": trl.DPOConfig}[trainer]
    trainer_cls = {"sft": trl.SFTTrainer, "dpo": trl.DPOTrainer}[trainer]
    parser = trl.TrlParser(
        (trl.ScriptArguments, config_cls, trl.ModelConfig, trl.DatasetMixtureConfig)
    )
    script, args, model_args, mixture = parser.parse_args_and_config(argv)
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=model_args.model_name_or_path,
        max_seq_length=args.max_length or 2048,
        load_in_4bit=bool(model_args.load_in_4bit),
        dtype=None,
    )
    checkpointing = bool(
        getattr(args, "activation_checkpointing", None) or args.gradient_checkpointing
    )
    if model_args.use_peft:
        targets = model_args.lora_target_modules
        if targets in (None, "all-linear", ["all-linear"]):
            targets = LINEAR
        model = FastLanguageModel.get_peft_model(
            model,
            r=model_args.lora_r,
            lora_alpha=model_args.lora_alpha,
            lora_dropout=model_args.lora_dropout,
            target_modules=targets,
            use_gradient_checkpointing="unsloth" if checkpointing else False,
            random_state=args.seed,
        )
        for name in ("activation_checkpointing", "gradient_checkpointing"):
            if hasattr(args, name):  # Unsloth's own checkpointing is in place
                setattr(args, name, False)
    if mixture.datasets:
        dataset = trl.get_dataset(mixture)
    else:
        dataset = load_dataset(script.dataset_name, name=script.dataset_config)
    run = trainer_cls(
        model=model,
        args=args,
        train_dataset=dataset[script.dataset_train_split],
        processing_class=tokenizer,
    )
    run.train(resume_from_checkpoint=args.resume_from_checkpoint)
    print("✅ Training completed.", flush=True)
    run.save_model(args.output_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m trainwright.backends.trl unsloth sft|dpo --config FILE [--key value ...]`;
    `... names` prints resources/backends/trl-names.yaml from the installed TRL; `... latest
    FOLDER` the newest checkpoint-N in FOLDER (a batch script's resume)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["names"]:
        import datetime as dt

        names = names_from_installed()
        head = (
            "# The config keys TRL knows, by where they go; generated from the installed TRL by\n"
            "# `python -m trainwright.backends.trl names` (its dataclasses' fields). Used by the\n"
            "# trl backend's key check when that version is installed, or TRL is not.\n"
        )
        body = {"generated": dt.date.today().isoformat(), **names}
        print(head + yaml.safe_dump(body, sort_keys=False, width=100), end="")
        return 0
    if len(args) == 2 and args[0] == "latest":  # for a resume in a batch script
        last = latest_checkpoint(Path(args[1]))
        print(last if last is not None else "")
        return 0 if last is not None else 1
    if len(args) >= 2 and args[0] == "unsloth" and args[1] in TRAINERS:
        return unsloth_main(args[1], args[2:])
    print(
        "usage: python -m trainwright.backends.trl unsloth {sft,dpo} --config FILE | names"
        " | latest FOLDER",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
