"""Backend `tiny`: the embedded trainer (backends/tiny_model), LoRA on a bundled 0.5 M-parameter
image denoiser. It runs anywhere PyTorch does (two CPU cores: about a minute for the demo; CUDA
when present) and writes what the big trainers write: a YAML config, a `.safetensors` LoRA per
saved epoch, and a line-per-step log. It is the default for the demo and the tests, and the
honest stand-in for kohya / ai-toolkit / SimpleTuner / torchtune where those cannot run.

Config: `tiny.yaml` in the project folder (keys in tiny_model/train.py DEFAULTS). Command:
`python -m trainwright.backends.tiny_model.train tiny.yaml` plus overrides: `--max-steps N`
(dry run), `--batch-size`, `--accumulation` (the batch knob), `--resume latest`. Checkpoints:
`<output_dir>/<output_name>-epoch-NNNN.safetensors`, epoch/step/loss in the file's metadata.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from trainwright.backends.common import RENDEZVOUS, SRUN_PER_NODE, Launch, sibling_executable
from trainwright.backends.tiny_model import log as _log
from trainwright.errors import TrainwrightError
from trainwright.shell_words import Raw, Word

NAME = "tiny"
CONFIG_FILE = "tiny.yaml"
LOG_FORMAT = "tiny"
BASE_MODEL = "tiny-denoiser (bundled)"
HAS_ACCUMULATION = True
CAN_RESUME = True
RUNS_ON_CPU = True  # Gate 3 does not ask for a GPU
FRAMEWORK = "none"
CHECKPOINT_GB = 0.001  # its LoRA files are a few hundred kB
BATCH_KEYS = ("batch_size", "gradient_accumulation_steps")
DEFAULT_SAVE_EVERY = 5
INSTALL = {
    "packages": ["torch", "safetensors"],
    "bundled": "backends/tiny_model/base.safetensors",
    "bundled_fix": "python -m trainwright.backends.tiny_model.make_weights",
    "install": "pip install 'trainwright[torch]'",
}
LOG_SIGNATURE = _log.SIGNATURE  # its log: `tiny: ...` lines, read by tiny_model/log.py
parse_log = _log.parse
EVAL_BASE_MODELS = ("tiny",)  # its LoRAs fit only its bundled model: the grid is made here
# its model: 64 px, deterministic DDIM on a cosine schedule, no CFG or negative prompt
EVAL_SAMPLING = {
    "width": 64,
    "height": 64,
    "steps": 25,
    "cfg": 0.0,
    "sampler": "ddim",
    "scheduler": "cosine",
    "negative": "",
}
MODELS = ("bundled", "tiny", "tiny-denoiser")  # what a runs plan may name as its base model
# The trainer's own refusals (tiny_model/train.py prints `tiny: error KIND: ...`).
FAILURE_TEXTS = {
    "oom": [r"tiny: error oom: [^\n]+"],
    "model": [r"tiny: error model: [^\n]+"],
    "dataset": [r"tiny: error dataset: [^\n]+"],
    "config": [r"tiny: error config: [^\n]+"],
}


def files_from_settings(
    *,
    dataset: Path | str,
    trigger_word: str,
    output_name: str,
    epochs: int = 10,
    batch_size: int = 4,
    gradient_accumulation_steps: int = 1,
    learning_rate: float = 1e-3,
    rank: int = 4,
    alpha: int = 4,
    resolution: int = 64,
    save_every_n_epochs: int = DEFAULT_SAVE_EVERY,
    output_dir: str = "checkpoints",
    seed: int = 42,
    **extra: Any,
) -> dict[str, str]:
    """The backend's files, name -> text (written into the project folder by the caller)."""
    from trainwright.backends.tiny_model.train import DEFAULTS

    unknown = sorted(set(extra) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"the tiny backend has no setting {', '.join(unknown)}")
    cfg = {
        "base_model": "bundled",
        "dataset": str(dataset),
        "trigger_word": trigger_word,
        "output_name": output_name,
        "output_dir": output_dir,
        "epochs": epochs,
        "batch_size": batch_size,
        "gradient_accumulation_steps": gradient_accumulation_steps,
        "learning_rate": learning_rate,
        "rank": rank,
        "alpha": alpha,
        "resolution": resolution,
        "save_every_n_epochs": save_every_n_epochs,
        "seed": seed,
        **extra,
    }
    head = (
        "# trainwright tiny backend: LoRA on the bundled denoiser.\n"
        "# Keys: scripts/trainwright/backends/tiny_model/train.py (DEFAULTS). Paths are relative\n"
        "# to this file.\n"
    )
    return {CONFIG_FILE: head + yaml.safe_dump(cfg, sort_keys=False)}


def read_config(path: Path) -> dict[str, Any]:
    from trainwright.backends.tiny_model.train import TinyError, load_config

    try:
        return load_config(path)
    except TinyError as exc:
        raise ValueError(str(exc)) from None


def command(
    config: Path,
    *,
    max_steps: int | None = None,
    batch_size: int | None = None,
    accumulation: int | None = None,
    resume: bool = False,
    save: bool = True,
) -> list[str]:
    cmd = [sys.executable, "-u", "-m", "trainwright.backends.tiny_model.train", str(config)]
    if max_steps is not None:
        cmd += ["--max-steps", str(max_steps)]
    if batch_size is not None:
        cmd += ["--batch-size", str(batch_size)]
    if accumulation is not None:
        cmd += ["--accumulation", str(accumulation)]
    if resume:
        cmd += ["--resume", "latest"]
    if not save:
        cmd.append("--no-save")
    return cmd


def checkpoint_dir(config: Path) -> Path:
    return Path(read_config(config)["output_dir"])


def checkpoint_info(path: Path) -> dict[str, Any]:
    """Epoch, step and loss from a checkpoint's safetensors metadata."""
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError:  # listing checkpoints must work without the torch extra
        return {}

    try:
        with safe_open(str(path), "np") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError):
        return {}

    def num(key: str, kind: type) -> Any:
        try:
            return kind(meta[key])
        except (KeyError, ValueError):
            return None

    return {"epoch": num("epoch", int), "step": num("step", int), "loss": num("loss", float)}


def write_project_config(grimoire: Any, project: str, **params: Any) -> Path:
    """Write tiny.yaml into the project folder from intent.md, and record it in config.md.

    The fallback for when `trainwright config` cannot render a tiny config: the dataset folder
    and trigger word come from intent.md, `params` override the defaults of files_from_settings.
    """
    from trainwright.state.atomic import atomic_write_text

    preset = str(params.get("preset", "custom"))
    _, intent = grimoire.read("intent", project)
    top = intent["sections"][""]
    folder, trigger = top.get("Dataset folder"), top.get("Trigger word")
    if not folder or not trigger:
        raise TrainwrightError(
            f"intent.md of '{project}' needs a Dataset folder and a Trigger word first"
        )
    params.pop("preset", None)
    files = files_from_settings(
        dataset=str(grimoire.resolve(folder)), trigger_word=trigger, output_name=project, **params
    )
    from trainwright.backends.tiny_model.train import TinyError, validate

    try:
        validate(yaml.safe_load(files[CONFIG_FILE]), CONFIG_FILE)
    except TinyError as exc:
        raise TrainwrightError(str(exc)) from None
    target = grimoire.project_dir(project)
    for name, text in files.items():
        atomic_write_text(target / name, text)
    cfg = yaml.safe_load(files[CONFIG_FILE])
    grimoire.update(
        "config",
        {
            "": {
                "Backend": NAME,
                "Base model": BASE_MODEL,
                "Preset": preset,
                "Key parameters": (
                    f"lr={cfg['learning_rate']}, epochs={cfg['epochs']}, "
                    f"batch={cfg['batch_size']}, rank={cfg['rank']}"
                ),
                "Estimated VRAM": "none (CPU); under 1 GB on a GPU",
                "Config file": CONFIG_FILE,
            }
        },
        project,
    )
    return target / CONFIG_FILE


# --- for `trainwright config` (a TrainingPlan from backends/common.py) ----------------------
KINDS = ("image",)
FAMILIES = ("tiny",)  # it trains its own bundled model and no other
OPTIMIZER_KEY = "tiny"  # the tiny trainer has AdamW only


def render(plan: Any) -> dict[str, str]:
    """tiny.yaml from a backend-neutral TrainingPlan."""
    from trainwright.backends.tiny_model.train import DEFAULTS

    unknown = sorted(set(plan.extra) - set(DEFAULTS))
    if unknown:  # a typo is refused, not dropped
        raise TrainwrightError(
            f"the tiny backend has no setting {', '.join(unknown)}; "
            f"its own settings are: {', '.join(DEFAULTS)}"
        )
    if plan.optimizer != "adamw":
        raise ValueError(f"the tiny backend trains with AdamW only, not {plan.optimizer}")
    return files_from_settings(
        dataset=plan.dataset_dir,
        trigger_word=plan.trigger_word or plan.project,
        output_name=plan.output_name,
        output_dir=plan.output_dir or "checkpoints",
        epochs=plan.epochs,
        batch_size=plan.batch_size,
        gradient_accumulation_steps=plan.gradient_accumulation,
        learning_rate=plan.learning_rate,
        rank=plan.rank,
        alpha=int(plan.alpha),
        resolution=min(int(plan.resolution), 64),
        repeats=plan.repeats,
        save_every_n_epochs=plan.save_every_n_epochs,
        seed=plan.seed,
        **plan.extra,
    )


def vram_overrides(plan: Any) -> dict[str, Any]:
    """What the trainer really does, whatever the plan's generic settings say: fp32, LoRA on
    every conv / linear layer, no checkpointing, nothing cached, the side render() writes."""
    side = min(int(plan.resolution), 64)
    return {
        "precision": "fp32",
        "targets": "all",
        "gradient_checkpointing": False,
        "cache_latents": False,
        "cache_text_encoder": False,
        "resolution": (side, side),
        "lora_dropout": 0.0,
    }


def check_keys(files: dict[str, str], folder: Path | None = None) -> list[str]:
    from trainwright.backends.tiny_model.train import DEFAULTS, REQUIRED

    try:
        cfg = yaml.safe_load(files.get(CONFIG_FILE, "")) or {}
    except yaml.YAMLError as exc:
        return [f"{CONFIG_FILE}: not valid YAML ({exc})"]
    known = set(DEFAULTS) | set(REQUIRED)
    return [
        f"{CONFIG_FILE}: '{k}' is not a key the tiny trainer knows" for k in cfg if k not in known
    ]


def main(argv: list[str] | None = None) -> int:
    """`python -m trainwright.backends.tiny PROJECT [key=value ...]`: write tiny.yaml and
    config.md for PROJECT (the fallback when `trainwright config` cannot)."""
    import argparse
    import os

    from trainwright.state.grimoire import Grimoire

    ap = argparse.ArgumentParser(prog="python -m trainwright.backends.tiny")
    ap.add_argument("project")
    ap.add_argument("settings", nargs="*", metavar="KEY=VALUE", help="e.g. epochs=10 rank=8")
    ap.add_argument("--grimoire", default=os.environ.get("TRAINWRIGHT_GRIMOIRE", "grimoire"))
    args = ap.parse_args(argv)
    try:
        params: dict[str, Any] = {}
        for item in args.settings:
            key, sep, raw = item.partition("=")
            if not sep or not key:
                raise TrainwrightError(f"{item!r} is not KEY=VALUE")
            params[key.strip()] = yaml.safe_load(raw)
        path = write_project_config(Grimoire(args.grimoire), args.project, **params)
    except (TrainwrightError, ValueError, TypeError) as exc:
        print(f"trainwright: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"wrote {path} and recorded it in config.md (Backend: tiny)")
    return 0


def eval_image_maker(size: int = 64, steps: int = 25) -> Any:
    """An image maker for `trainwright eval-grid`: (lora_file, prompt, weight, seed) -> image.

    The base model and each LoRA file are loaded once; the weight only changes the LoRA's
    multiplier, and the seed fixes the starting noise, so a row of the grid differs by weight
    alone.
    """
    import torch
    from PIL import Image
    from safetensors.torch import load_file

    # One image of the 1 M-parameter model is too small to share between threads. Measured on
    # 2 cores, 25 steps: 0.23 s on one thread, 0.19 s on two when the cores are free, but 0.7 s
    # on one and 11 s on two when other work competes for them.
    torch.set_num_threads(1)

    from trainwright.backends.tiny_model import lora
    from trainwright.backends.tiny_model.model import encode_captions, sample
    from trainwright.backends.tiny_model.train import BUNDLED, load_base

    loaded: dict[Path, tuple[Any, dict[str, Any]]] = {}

    def model_for(lora_file: Path) -> tuple[Any, dict[str, Any]]:
        key = Path(lora_file).resolve()
        if key not in loaded:
            tensors = load_file(str(key))
            downs = [t for k, t in tensors.items() if k.endswith(".lora_down.weight")]
            if not downs:
                raise ValueError(f"{lora_file} holds no LoRA weights")
            model, _ = load_base(BUNDLED)
            layers = lora.inject(model, int(downs[0].shape[0]), float(downs[0].shape[0]))
            lora.load_lora_state(layers, tensors)
            model.eval()
            loaded[key] = (model, layers)
        return loaded[key]

    def make(lora_file: Path, prompt: str, weight: float, seed: int) -> Image.Image:
        model, layers = model_for(lora_file)
        lora.set_multiplier(layers, weight)
        gen = torch.Generator().manual_seed(int(seed))
        out = sample(model, encode_captions([prompt]), size=size, steps=steps, generator=gen)
        pixels = ((out[0].permute(1, 2, 0) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return Image.fromarray(pixels.numpy(), "RGB")

    return make


# --- on a cluster (`trainwright runs ... --backend tiny`): one process per node, CPU or one GPU -
MAX_PROCESSES = 1
MULTI_NODE = True  # over several nodes: torchrun per node (srun), DDP (tiny_model/train.py)
BASE_RUNS_USE_IT = True  # a base-model row is evaluated with this backend's model too
CLUSTER_DEFAULTS = {"model": "tiny", "dataset": "data", "gpus": "cpu"}
# runs_plan.md column -> tiny.yaml key
PLAN_COLUMNS = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "learning_rate": "learning_rate",
    "lora_rank": "rank",
    "lora_alpha": "alpha",
    "seed": "seed",
}


def base_model_file() -> Path:
    from trainwright.backends.tiny_model.train import bundled_weights

    return bundled_weights()


def model_problem(model: str) -> str | None:
    if model.lower() in MODELS or model.endswith(".safetensors"):
        return None
    return (
        f"model {model!r} is unknown to the tiny backend; "
        f"use one of {', '.join(MODELS)} or a .safetensors file it made"
    )


def _from_plan(value: str, experiment_dir: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (experiment_dir / path).resolve())


def cluster_config(run: Any, experiment_dir: Path) -> str:
    """The run's tiny.yaml (as finetune.yaml) from a runs_plan.md row."""
    settings: dict[str, Any] = {
        "dataset": _from_plan(run.dataset, experiment_dir),
        "trigger_word": run.extra_value("trigger word", "trigger") or run.name,
        "output_name": run.name,
    }
    if run.model.endswith(".safetensors"):
        settings["base_model"] = _from_plan(run.model, experiment_dir)
    for column, key in PLAN_COLUMNS.items():
        if column in run.params:
            value = run.params[column]
            settings[key] = int(value) if column == "lora_alpha" else value
    return next(iter(files_from_settings(**settings).values()))


def cluster_launch(
    run: Any, run_dir: Path, config: dict[str, Any], python: str, launcher: str
) -> Launch:
    name = Path("finetune.yaml")
    words: list[Word] = [python, *command(name)[1:]]
    resume = command(name, resume=True)[len(words) :]
    if run.nodes > 1:
        words = [*SRUN_PER_NODE, sibling_executable(python, "torchrun"), "--nnodes"]
        words += [Raw('"$SLURM_NNODES"'), "--nproc_per_node", "1", *RENDEZVOUS]
        words += ["-m", "trainwright.backends.tiny_model.train", str(name)]
    out = Path(str(config.get("output_dir") or "checkpoints"))
    return Launch(words, list(resume), out if out.is_absolute() else run_dir / out, "*.safetensors")


def run_inputs(config: dict[str, Any], folder: Path) -> dict[str, Path]:
    """What a run reads, by role, relative to its folder (where the trainer starts)."""
    found: dict[str, Path] = {}
    for role, key in (("dataset", "dataset"), ("model", "base_model")):
        value = config.get(key)
        if not isinstance(value, str) or not value.strip() or value.strip().lower() in MODELS:
            continue
        path = Path(value.strip()).expanduser()
        found[role] = path if path.is_absolute() else folder / path
    return found


def startup_problems(config_path: Path) -> list[str]:
    """The trainer's own start-up steps, short of loading torch: its config, the base model
    file, and every image and caption of its dataset (decoded, as it will be)."""
    import os

    from trainwright.backends.tiny_model import data, train

    try:
        cfg = train.load_config(config_path)
    except train.TinyError as exc:
        return [str(exc)]
    problems = []
    model = cfg["base_model"]
    if model != train.BUNDLED and not Path(model).is_file():
        problems.append(f"the base model {model} does not exist")
    elif model != train.BUNDLED and not os.access(model, os.R_OK):
        problems.append(f"the base model {model} cannot be read (permissions)")
    try:
        data.load_folder(
            cfg["dataset"], cfg["trigger_word"], cfg["resolution"], cfg["caption_extension"]
        )
    except data.DatasetError as exc:
        audit = f" (trainwright audit {cfg['dataset']} lists them all)"
        problems.append(f"{exc}{audit if 'image' in str(exc) else ''}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
