"""Backend `torchtune`: pytorch/torchtune 0.6.1 recipes for LLM LoRA, QLoRA and full fine-tunes.

`torchtune_config(...)` is the writer, a plain library function (the SLURM experiment runs use
it too): it returns the recipe config as a dict in the shape of torchtune's own shipped configs
(recipes/configs/<model>/<size>_lora_single_device.yaml), with each component named explicitly;
`to_yaml` renders it; `validate` runs `tune validate` on a file. The model, tokenizer and
checkpoint facts come from the catalog (read from torchtune 0.6.1's recipe configs).

Command: `tune run <recipe> --config finetune.yaml KEY=VALUE...` (with --nproc_per_node N for
several GPUs). The dry-run step limit is `max_steps_per_epoch=N epochs=1`, the batch knob
`batch_size=B gradient_accumulation_steps=G`, resume `resume_from_checkpoint=True`.
Checkpoints land in `output_dir` (epoch_N/ folders); the DiskLogger writes output_dir/logs.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from trainwright.backends.common import (
    PLACEHOLDER,
    RENDEZVOUS,
    SRUN_PER_NODE,
    Launch,
    TrainingPlan,
    optimizer_entry,
    sibling_executable,
)
from trainwright.errors import TrainwrightError
from trainwright.hardware import catalog
from trainwright.hardware.catalog import Model
from trainwright.run.logs.common import (
    LogState,
    clock_seconds,
    log_lines,
    to_float,
)
from trainwright.shell_words import Raw, Word

NAME = "torchtune"
CONFIG_FILE = "finetune.yaml"
LOG_FORMAT = "torchtune"
HAS_ACCUMULATION = True
CAN_RESUME = True
KINDS = ("llm",)
DEFAULT_FOR = ("llm",)
OPTIMIZER_KEY = "torchtune"
FRAMEWORK = "torchtune"  # chunked cross-entropy (LOSS below): the logits are never whole
BATCH_KEYS = ("batch_size", "gradient_accumulation_steps")
INSTALL = {
    "packages": ["torchtune"],
    "executable": "tune",
    "install": "pip install 'trainwright[tune]'",
}
FAILURE_TEXTS = {"config": [r"Config is not well-formed[^\n]*"]}
LOSS = "torchtune.modules.loss.CEWithChunkedOutputLoss"
ATTN_MODULES = ("q_proj", "k_proj", "v_proj", "output_proj")


def recipe_for(method: str, gpus: int = 1) -> str:
    kind = "full_finetune" if method == "full" else "lora_finetune"
    return f"{kind}_{'distributed' if gpus > 1 else 'single_device'}"


def _model(model: Model | str) -> Model:
    m = model if isinstance(model, Model) else catalog.load().get(str(model))
    if not m.for_trainer(NAME):
        raise TrainwrightError(f"torchtune 0.6.1 has no model builder for {m.name}")
    return m


def component_widths(m: Model, max_seq_len: int | None) -> dict[str, Any]:
    """The component builder's size arguments (torchtune.models.qwen2.qwen2's names)."""
    part = m.part("decoder")
    return {
        "vocab_size": part.vocab,
        "num_layers": part.layers,
        "num_heads": part.heads,
        "num_kv_heads": part.kv_heads,
        "embed_dim": part.hidden,
        "intermediate_dim": part.intermediate,
        "max_seq_len": int(max_seq_len or m.max_seq_len or 2048),
        "tie_word_embeddings": bool(part.tied_embeddings),
    }


def model_runs_on_cpu(model: Model | str) -> bool:
    """A model small enough for the CPU: one written as a component builder (tiny-llm)."""
    return _model(model).for_trainer(NAME).get("builder") == "component"


def runs_on_cpu(config: Path) -> bool:
    """A config written with `device: cpu` asks Gate 3 for no GPU."""
    return str(read_config(config).get("device", "cuda")) == "cpu"


def device_for(model: Model | str) -> str:
    """`cpu` for a model small enough for the CPU on a machine where nvidia-smi finds no GPU;
    `cuda` otherwise."""
    if not model_runs_on_cpu(model):
        return "cuda"
    from trainwright.hardware.gpu import probe_gpus

    return "cuda" if probe_gpus().found else "cpu"


def checkpoint_files(m: Model) -> Any:
    tt = m.for_trainer(NAME)
    if tt.get("checkpoint_shards"):
        return {"filename_format": tt["checkpoint_files"], "max_filename": tt["checkpoint_shards"]}
    return [tt["checkpoint_files"]]


def torchtune_config(
    model: Model | str,
    *,
    method: str = "lora",
    gpus: int = 1,
    checkpoint_dir: str = PLACEHOLDER,
    output_dir: str = "output",
    dataset: str | dict[str, Any] | None = None,
    epochs: int = 1,
    batch_size: int = 4,
    gradient_accumulation_steps: int = 1,
    learning_rate: float = 2e-4,
    lora_rank: int = 16,
    lora_alpha: float = 32,
    lora_dropout: float = 0.0,
    lora_attn_modules: tuple[str, ...] | list[str] = ("q_proj", "v_proj", "output_proj"),
    apply_lora_to_mlp: bool = True,
    max_seq_len: int | None = 2048,
    seed: int | None = 42,
    packed: bool = False,
    activation_checkpointing: bool = True,
    compile: bool = False,
    dtype: str = "bf16",
    optimizer: str = "adamw",
    weight_decay: float = 0.01,
    warmup_steps: int = 100,
    max_steps_per_epoch: int | None = None,
    device: str = "cuda",
) -> dict[str, Any]:
    """A torchtune recipe config for `model` as a dict (key order as torchtune's own). A
    catalog model with `builder: component` (tiny-llm) is written as the family's component
    builder with the catalog's widths and its own special-tokens file."""
    m = _model(model)
    tt = m.for_trainer(NAME)
    if method not in ("lora", "qlora", "full"):
        raise TrainwrightError(f"method must be lora, qlora or full, not {method!r}")
    if gpus < 1:
        raise TrainwrightError("gpus must be at least 1")
    if method == "qlora" and "qlora" not in tt:
        raise TrainwrightError(f"torchtune 0.6.1 has no QLoRA builder for {m.name}; use lora")
    bad = [x for x in lora_attn_modules if x not in ATTN_MODULES]
    if bad:
        raise TrainwrightError(
            f"torchtune's lora_attn_modules are {', '.join(ATTN_MODULES)}, not {', '.join(bad)}"
        )
    if dtype not in ("bf16", "fp32"):
        raise TrainwrightError("torchtune recipes train in bf16 or fp32")
    module = tt["module"]
    builder = {"lora": tt["lora"], "qlora": tt.get("qlora"), "full": tt["model"]}[method]
    model_cfg: dict[str, Any] = {"_component_": f"{module}.{builder}"}
    if tt.get("builder") == "component":
        model_cfg.update(component_widths(m, max_seq_len))
    if method == "qlora" and tt.get("builder") == "component":
        model_cfg["quantize_base"] = True
    if method != "full":
        model_cfg.update(
            lora_attn_modules=list(lora_attn_modules),
            apply_lora_to_mlp=bool(apply_lora_to_mlp),
            lora_rank=int(lora_rank),
            lora_alpha=float(lora_alpha),
            lora_dropout=float(lora_dropout),
        )
    ckpt = str(checkpoint_dir).rstrip("/")
    tokenizer: dict[str, Any] = {
        "_component_": tt["tokenizer"],
        "path": f"{ckpt}/{tt['tokenizer_file']}",
        "max_seq_len": max_seq_len,
    }
    if tt.get("merges_file"):
        tokenizer["merges_file"] = f"{ckpt}/{tt['merges_file']}"
    if tt.get("special_tokens_file"):
        tokenizer["special_tokens_path"] = f"{ckpt}/{tt['special_tokens_file']}"
    if isinstance(dataset, dict):
        dataset_cfg = dict(dataset)
    elif dataset and dataset not in ("alpaca", "alpaca_cleaned"):
        dataset_cfg = {
            "_component_": "torchtune.datasets.instruct_dataset",
            "source": "json",
            "data_files": str(dataset),
            "split": "train",
            "packed": packed,
        }
    else:
        dataset_cfg = {"_component_": "torchtune.datasets.alpaca_cleaned_dataset", "packed": packed}
    opt = optimizer_entry(optimizer, OPTIMIZER_KEY)
    optimizer_cfg = {"_component_": opt["component"], **opt.get("args", {})}
    optimizer_cfg["weight_decay"] = weight_decay
    optimizer_cfg["lr"] = learning_rate
    cfg: dict[str, Any] = {
        "output_dir": output_dir,
        "model": model_cfg,
        "tokenizer": tokenizer,
        "checkpointer": {
            "_component_": "torchtune.training.FullModelHFCheckpointer",
            "checkpoint_dir": ckpt,
            "checkpoint_files": checkpoint_files(m),
            "recipe_checkpoint": None,
            "output_dir": "${output_dir}",
            "model_type": tt["model_type"],
        },
        "resume_from_checkpoint": False,
    }
    if method != "full":
        cfg["save_adapter_weights_only"] = False
    cfg.update(
        {
            "dataset": dataset_cfg,
            "seed": seed,
            "shuffle": True,
            "batch_size": int(batch_size),
            "optimizer": optimizer_cfg,
            "lr_scheduler": {
                "_component_": "torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup",
                "num_warmup_steps": int(warmup_steps),
            },
            "loss": {"_component_": LOSS},
            "epochs": int(epochs),
            "max_steps_per_epoch": max_steps_per_epoch,
            "gradient_accumulation_steps": int(gradient_accumulation_steps),
            "clip_grad_norm": None,
            "compile": bool(compile),
            "metric_logger": {
                "_component_": "torchtune.training.metric_logging.DiskLogger",
                "log_dir": "${output_dir}/logs",
            },
            "log_every_n_steps": 1,
            "log_peak_memory_stats": True,
            "device": device,
            "dtype": dtype,
            "enable_activation_checkpointing": bool(activation_checkpointing),
            "enable_activation_offloading": False,
        }
    )
    if method == "full":
        cfg["optimizer_in_bwd"] = False
    return cfg


def to_yaml(cfg: dict[str, Any], header: str = "") -> str:
    return header + yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)


def render(plan: TrainingPlan) -> dict[str, str]:
    if plan.model.is_image:
        raise TrainwrightError(
            "torchtune trains language models; use kohya, ai-toolkit or "
            "simpletuner for image models"
        )
    extra = dict(plan.extra)
    attn = extra.pop("lora_attn_modules", ("q_proj", "v_proj", "output_proj"))
    if isinstance(attn, str):
        attn = [a.strip() for a in attn.split(",") if a.strip()]
    cfg = torchtune_config(
        plan.model,
        method=plan.method,
        gpus=plan.gpus,
        checkpoint_dir=extra.pop("checkpoint_dir", plan.base_model_path),
        output_dir=plan.output_dir,
        dataset=extra.pop("dataset", None if plan.dataset_dir == PLACEHOLDER else plan.dataset_dir),
        epochs=plan.epochs,
        batch_size=plan.batch_size,
        gradient_accumulation_steps=plan.gradient_accumulation,
        learning_rate=plan.learning_rate,
        lora_rank=plan.rank,
        lora_alpha=plan.alpha,
        lora_dropout=plan.lora_dropout,
        lora_attn_modules=attn,
        apply_lora_to_mlp=bool(extra.pop("apply_lora_to_mlp", True)),
        max_seq_len=plan.seq_len,
        seed=plan.seed,
        packed=bool(extra.pop("packed", False)),
        activation_checkpointing=plan.gradient_checkpointing,
        compile=bool(extra.pop("compile", False)),
        dtype="fp32" if plan.precision == "fp32" else "bf16",
        optimizer=plan.optimizer,
        weight_decay=plan.weight_decay,
        warmup_steps=plan.warmup_steps,
        device=device_for(plan.model),
    )
    for key, value in extra.items():
        if key not in cfg:
            raise TrainwrightError(f"'{key}' is not a key of torchtune's recipe config")
        cfg[key] = value
    header = (
        f"# torchtune {recipe_for(plan.method, plan.gpus)} config for '{plan.project}' "
        f"({plan.model.name}),\n# written by trainwright config (preset {plan.preset}). "
        f"Run: tune run {recipe_for(plan.method, plan.gpus)} --config {CONFIG_FILE}\n"
    )
    return {CONFIG_FILE: to_yaml(cfg, header)}


def check_keys(files: dict[str, str], folder: Path | None = None) -> list[str]:
    """Cheap structural check; the real one is `tune validate` (validate() below)."""
    cfg = yaml.safe_load(files[CONFIG_FILE])
    needed = ("model", "tokenizer", "checkpointer", "dataset", "optimizer", "loss", "epochs")
    return [f"{CONFIG_FILE}: '{k}' is missing" for k in needed if k not in cfg]


def validate(path: Path | str, timeout: float = 300) -> tuple[bool, str]:
    """`tune validate PATH`: (well-formed, its last line)."""
    tune = shutil.which("tune", path=str(Path(sys.executable).parent)) or shutil.which("tune")
    if not tune:
        return False, "torchtune is not installed: pip install 'trainwright[tune]'"
    proc = subprocess.run(
        [tune, "validate", str(path)], capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    return proc.returncode == 0, lines[-1] if lines else f"exit {proc.returncode}"


def read_config(path: Path) -> dict[str, Any]:
    try:
        cfg = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"not a readable torchtune config ({exc})") from None
    if not isinstance(cfg, dict):
        raise ValueError("a torchtune config is a YAML mapping")
    return cfg


def _recipe_of(config: Path) -> str:
    first = Path(config).read_text(encoding="utf-8").split("\n", 1)[0]
    for word in first.split():
        if word.endswith(("_single_device", "_distributed")):
            return word
    cfg = read_config(config)
    return recipe_for("lora" if "lora_rank" in cfg.get("model", {}) else "full")


def command(
    config: Path,
    *,
    max_steps: int | None = None,
    batch_size: int | None = None,
    accumulation: int | None = None,
    resume: bool = False,
    save: bool = True,
    gpus: int = 1,
) -> list[str]:
    recipe = _recipe_of(config)
    tune = shutil.which("tune", path=str(Path(sys.executable).parent)) or shutil.which("tune")
    if not tune:
        raise TrainwrightError(
            f"torchtune's `tune` command is not installed beside {sys.executable} or on PATH: "
            f"{INSTALL['install']}"
        )
    cmd = [tune, "run"]
    if gpus > 1 or recipe.endswith("_distributed"):
        cmd += ["--nproc_per_node", str(max(gpus, 2))]
    cmd += [recipe, "--config", str(config)]
    if max_steps is not None:
        cmd += [f"max_steps_per_epoch={max_steps}", "epochs=1"]
    if batch_size is not None:
        cmd.append(f"batch_size={batch_size}")
    if accumulation is not None:
        cmd.append(f"gradient_accumulation_steps={accumulation}")
    if resume:
        cmd.append("resume_from_checkpoint=True")
    if not save:
        cmd.append(f"output_dir={Path(config).parent / 'dry-run'}")
    return cmd


# --- its log -----------------------------------------------------------------------------------
DISK = re.compile(r"^Step (?P<step>\d+) \| (?P<rest>.*)$")
BAR = re.compile(
    r"(?<!\d)(?P<epoch>\d+)\|(?P<step>\d+)\|Loss: (?P<loss>[-+\w.]+):\s*\d+%\|[^|]*\|\s*"
    r"(?P<n>\d+)/(?P<total>\d+)\s*\[(?P<elapsed>[\d:]+)<(?P<left>[\d:?]+)[^\]]*\]"
)
PAIR = re.compile(r"(\w+):(\S+)")
ERROR = re.compile(r"^(?:\w*Error|torch\.\w*Error)\b.*|.*\bout of memory\b.*")
EPOCHS = re.compile(r"^epochs: (?P<n>\d+)$")  # from the resolved config the recipe prints first
LOG_SIGNATURE = re.compile(r"^Step \d+ \| loss:|(?<!\d)\d+\|\d+\|Loss: ", re.M)


def parse_log(text: str, state: LogState | None = None) -> LogState:
    """DiskLogger files (`Step 12 | loss:1.234 lr:0.0003 ...`; no epoch, no clock, memory in GiB)
    and the recipe's tqdm bar (`1|12|Loss: 1.2345:  12%|...| 12/100 [00:30<03:40, ...]`)."""
    st = state or LogState("torchtune")
    for line in log_lines(text, st, BAR):
        d = DISK.match(line)
        if d:
            _disk(st, int(d.group("step")), dict(PAIR.findall(d.group("rest"))))
            continue
        b = BAR.search(line)
        if b:
            step, loss = int(b.group("step")), to_float(b.group("loss"))
            epoch = int(b.group("epoch"))
            if loss is not None and step > 0:
                st.add_point(step, loss, epoch)
                st.tick(step, clock_seconds(b.group("elapsed")), per_bar=True)
            st.epoch = epoch
            st.steps_per_epoch = int(b.group("total"))
            if st.epochs:
                st.steps = st.epochs * st.steps_per_epoch
            continue
        e = EPOCHS.match(line)
        if e:
            st.epochs = int(e.group("n"))
            continue
        if ERROR.match(line.strip()):
            st.errors.append(line.strip())
            continue
        st.unparsed_lines += 1
    if st.epochs and st.epoch and st.steps and st.step and st.step >= st.steps:
        st.finished = True
    return st


def _disk(st: LogState, step: int, fields: dict[str, str]) -> None:
    loss = to_float(fields.get("loss", ""))
    if loss is None:
        st.unparsed_lines += 1
        return
    prev = st.points.get(step)
    st.add_point(step, loss, prev.epoch if prev else None)
    for key in ("peak_memory_reserved", "peak_memory_active", "peak_memory_alloc"):
        mem = to_float(fields.get(key, ""))
        if mem is not None:
            st.vram_used_gib = round(mem, 2)
            break


# --- on a cluster (`trainwright runs ... --backend torchtune`) -----------------------------------
CLUSTER_DEFAULTS = {"model": "llama3.2-1b", "dataset": "alpaca_cleaned", "gpus": "1"}
LAUNCHERS = ("tune", "torchrun")  # `tune run`, or torchrun on the recipe file
VALIDATOR = "tune validate"
# runs_plan.md column -> torchtune_config() argument
PLAN_COLUMNS = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "learning_rate": "learning_rate",
    "lora_rank": "lora_rank",
    "lora_alpha": "lora_alpha",
    "max_seq_len": "max_seq_len",
    "seed": "seed",
    "packed": "packed",
    "max_steps": "max_steps_per_epoch",
}
BUILTIN_DATASETS = ("alpaca", "alpaca_cleaned")
# torchrun needs the recipe's file; torchtune installs its recipes as plain files, not a package.
RECIPE_FILE = (
    "RECIPE_FILE=\"$({python} -c 'import importlib.util, os; "
    'print(os.path.join(importlib.util.find_spec("recipes").submodule_search_locations[0], '
    '"{recipe}.py"))\')"'
)


def model_problem(name: str) -> str | None:
    """Why torchtune cannot train `name`, or None when the catalog has a torchtune builder."""
    try:
        model = catalog.load().get(name)
    except TrainwrightError as exc:
        return str(exc).split(" (see ")[0]
    if not model.for_trainer(NAME):
        return f"torchtune 0.6.1 has no model builder for {model.name}"
    return None


def cpu_problem(name: str) -> str | None:
    """Why a `GPUs: cpu` run of `name` cannot train (None for tiny-llm and its kind)."""
    if not model_problem(name) and model_runs_on_cpu(name):
        return None
    return (
        f"torchtune needs GPUs for {name}; on the CPU it trains only a small model written as a "
        "component builder (tiny-llm)"
    )


def plan_gpus(name: str) -> str | None:
    """The GPUs cell of a new plan: `cpu` for a CPU-sized model where no GPU is found."""
    if model_problem(name) or device_for(name) != "cpu":
        return None
    return "cpu"


def _plan_dataset(run: Any, experiment_dir: Path) -> str:
    if run.dataset in BUILTIN_DATASETS:
        return run.dataset
    path = Path(run.dataset).expanduser()
    return str(path if path.is_absolute() else (experiment_dir / path).resolve())


def _plan_checkpoint(run: Any, experiment_dir: Path) -> str:
    """The 'Checkpoint dir' cell, relative to the experiment folder like the dataset."""
    raw = run.extra_value("checkpoint dir", "model dir", "weights")
    if not raw:
        return PLACEHOLDER
    path = Path(raw).expanduser()
    return str(path if path.is_absolute() else (experiment_dir / path).resolve())


def plan_arguments(run: Any, experiment_dir: Path) -> dict[str, Any]:
    """torchtune_config() arguments from a runs_plan.md row."""
    args: dict[str, Any] = {
        "method": run.method,
        "gpus": run.gpus or 1,
        "checkpoint_dir": _plan_checkpoint(run, experiment_dir),
        "output_dir": "output",
        "dataset": _plan_dataset(run, experiment_dir),
    }
    for column, argument in PLAN_COLUMNS.items():
        if column in run.params:
            args[argument] = run.params[column]
    return args


def cluster_config(run: Any, experiment_dir: Path) -> str:
    args = plan_arguments(run, experiment_dir)
    if not run.gpus:  # on the CPU: bf16 is emulated there, and memory is not what runs out
        args.update(device="cpu", dtype="fp32", activation_checkpointing=False)
    cfg = torchtune_config(run.model, **args)
    recipe = recipe_for(run.method, run.gpus or 1)
    header = (
        f"# torchtune {recipe} config for run '{run.name}' ({run.model}), written by\n"
        "# `trainwright runs torchtune-configs` from runs_plan.md. checkpoint_dir must point at\n"
        "# the downloaded weights (`tune download ...`); a 'Checkpoint dir' column sets it.\n"
    )
    return to_yaml(cfg, header)


def missing_files(config: dict[str, Any], where: str) -> list[str]:
    """The checkpoint folder and tokenizer files the config names that do not exist (a
    placeholder is reported elsewhere)."""
    found = []
    checkpointer = config.get("checkpointer") or {}
    ckpt = str(checkpointer.get("checkpoint_dir") or "")
    if ckpt and PLACEHOLDER not in ckpt and not Path(ckpt).is_dir():
        found.append(f"{where}: checkpointer.checkpoint_dir {ckpt} does not exist")
    elif ckpt and PLACEHOLDER not in ckpt:
        files = checkpointer.get("checkpoint_files")
        names = files if isinstance(files, list) else []
        for name in names:
            if not (Path(ckpt) / str(name)).is_file():
                found.append(
                    f"{where}: checkpointer.checkpoint_files: {Path(ckpt) / name} does not exist"
                )
    tokenizer = config.get("tokenizer") or {}
    for key in ("path", "merges_file", "special_tokens_path"):
        value = str(tokenizer.get(key) or "")
        if value and PLACEHOLDER not in value and not Path(value).is_file():
            found.append(f"{where}: tokenizer.{key} {value} does not exist")
    return found


def cluster_problems(config: dict[str, Any], path: Path) -> list[str]:
    """What stops this config from running: placeholders left, packing without a length."""
    found = []
    checkpointer = config.get("checkpointer") or {}
    if PLACEHOLDER in str(checkpointer.get("checkpoint_dir", "")):
        found.append(
            f"{path}: checkpointer.checkpoint_dir is {PLACEHOLDER} (no local checkpoint of the "
            "base model): download the weights "
            "(`tune download ORG/MODEL --output-dir DIR`) and set it, or add a 'Checkpoint dir' "
            "column to the plan"
        )
    else:
        found += missing_files(config, str(path))
    dataset = config.get("dataset") or {}
    tokenizer = config.get("tokenizer") or {}
    if isinstance(dataset, dict) and dataset.get("packed") and not tokenizer.get("max_seq_len"):
        found.append(
            f"{path}: dataset.packed is true but tokenizer.max_seq_len is not set; packing "
            "needs a block length"
        )
    return found


def cluster_launch(
    run: Any, run_dir: Path, config: dict[str, Any], python: str, launcher: str | None
) -> Launch:
    """`tune run` (or torchrun with the recipe file, `launcher="torchrun"`), under srun with a
    rendezvous on several nodes."""
    gpus = run.gpus or 1
    recipe = recipe_for(run.method, gpus)
    prelude: tuple[str, ...] = ()
    if launcher == "torchrun" and gpus > 1:
        torchrun = sibling_executable(python, "torchrun")
        nnodes: Word = Raw('"$SLURM_NNODES"') if run.nodes > 1 else "1"
        words: list[Word] = [*SRUN_PER_NODE] if run.nodes > 1 else []
        words += [torchrun, "--nnodes", nnodes, "--nproc_per_node", str(run.gpus_per_node)]
        words += [*RENDEZVOUS] if run.nodes > 1 else ["--standalone"]
        words += [Raw('"$RECIPE_FILE"')]
        prelude = (RECIPE_FILE.format(python=shlex.quote(python), recipe=recipe),)
    elif run.nodes > 1:
        tune = sibling_executable(python, "tune")
        words = [*SRUN_PER_NODE, tune, "run", "--nnodes", Raw('"$SLURM_NNODES"')]
        words += ["--nproc_per_node", str(run.gpus_per_node), *RENDEZVOUS, recipe]
    elif gpus > 1:
        words = [sibling_executable(python, "tune"), "run", "--nproc_per_node", str(gpus), recipe]
    else:
        words = [sibling_executable(python, "tune"), "run", recipe]
    words += ["--config", "finetune.yaml"]
    out = Path(str(config.get("output_dir") or "output"))
    out = out if out.is_absolute() else run_dir / out
    return Launch(
        words, ["resume_from_checkpoint=True"], out, "recipe_state/recipe_state.pt", prelude
    )


def framework(plan: TrainingPlan) -> str:
    """Its loss head for the VRAM estimate: chunked cross-entropy, compiled when asked."""
    compiled = str(plan.extra.get("compile", False)).lower() in ("true", "1", "yes")
    return "torchtune-compile" if compiled else FRAMEWORK


def cluster_vram(run: Any, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """What the VRAM estimate needs from a run's config (vram.Setup fields, method aside), and
    its schedule (steps per epoch, epochs) for the time estimate."""
    lora = config.get("model") or {}
    tokenizer = config.get("tokenizer") or {}
    settings = {
        "framework": "torchtune-compile" if config.get("compile") else FRAMEWORK,
        "precision": "fp32" if config.get("dtype") == "fp32" else "bf16",
        "rank": int(lora.get("lora_rank") or 16),
        "targets": "all" if lora.get("apply_lora_to_mlp") else "attn",
        "batch": int(config.get("batch_size") or 1),
        "seq_len": int(tokenizer.get("max_seq_len") or 2048),
        "gradient_accumulation": int(config.get("gradient_accumulation_steps") or 1),
        "gradient_checkpointing": bool(config.get("enable_activation_checkpointing", True)),
        "optimizer_in_backward": bool(config.get("optimizer_in_bwd", False)),
        "offload_activations": bool(config.get("enable_activation_offloading", False)),
    }
    optimizer = config.get("optimizer")
    if isinstance(optimizer, dict) and optimizer.get("fused") is True:
        settings["foreach"] = False
    schedule = {"epochs": int(config.get("epochs") or 1)}
    if config.get("max_steps_per_epoch"):
        schedule["steps_per_epoch"] = int(config["max_steps_per_epoch"])
    return settings, schedule


def run_inputs(config: dict[str, Any], folder: Path) -> dict[str, Path]:
    """The dataset file the config reads, relative to `folder` where the trainer starts (a hub
    name such as alpaca is not a path: a `source` counts only when absolute)."""
    dataset = config.get("dataset")
    files = dataset.get("data_files") if isinstance(dataset, dict) else None
    if isinstance(files, str) and files.strip():
        path = Path(files.strip()).expanduser()
        return {"dataset": path if path.is_absolute() else folder / path}
    if isinstance(dataset, dict):
        dataset = dataset.get("source")
    if not isinstance(dataset, str) or not dataset.strip():
        return {}
    path = Path(dataset.strip()).expanduser()
    return {"dataset": path} if path.is_absolute() else {}
