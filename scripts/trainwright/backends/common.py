"""What every backend writes from: one TrainingPlan (backend-neutral settings), the presets,
optimizers and parameter ranges kept as data in resources/training/, and small file helpers."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

try:  # Python 3.11+; re-exported for the backends that read TOML
    import tomllib  # noqa: F401
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # noqa: F401

from trainwright import pack
from trainwright.errors import TrainwrightError
from trainwright.hardware.catalog import Model
from trainwright.shell_words import Raw, Word

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
PLACEHOLDER = "SET-ME"  # a value the person must fill in; Gate 2 says NO-GO while one is left


@cache
def data(name: str) -> dict[str, Any]:
    """resources/training/<name>.yaml or resources/backends/<name>.yaml, parsed."""
    for folder in ("resources/training", "resources/backends"):
        try:
            return yaml.safe_load(pack.read_text(f"{folder}/{name}.yaml"))
        except TrainwrightError:
            continue
    raise TrainwrightError(f"pack data {name}.yaml is missing; reinstall trainwright")


@dataclass
class TrainingPlan:
    """Backend-neutral settings; each backend maps them to its own names."""

    model: Model
    project: str
    output_dir: str
    method: str = "lora"
    preset: str = "standard"
    optimizer: str = "adamw"
    learning_rate: float = 1e-4
    epochs: int = 15
    batch_size: int = 1
    gradient_accumulation: int = 1
    rank: int = 16
    alpha: float = 16
    lora_dropout: float = 0.0
    resolution: int = 1024
    repeats: int = 10
    seq_len: int = 2048
    precision: str = "bf16"
    gradient_checkpointing: bool = True
    cache_latents: bool = True
    cache_text_encoder: bool = False
    save_every_n_epochs: int = 5
    seed: int = 42
    warmup_steps: int = 0
    caption_dropout: float = 0.0
    weight_decay: float = 0.01
    dataset_dir: str = PLACEHOLDER
    trigger_word: str = ""
    caption_extension: str = ".txt"
    base_model_path: str = PLACEHOLDER
    images: int = 0  # images in the dataset folder (for step counts)
    gpus: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # backend keys given as overrides

    @property
    def output_name(self) -> str:
        return self.project

    def steps_per_epoch(self) -> int:
        if self.model.is_image:
            per_epoch = max(self.images, 1) * self.repeats
            return max(1, math.ceil(per_epoch / (self.batch_size * self.gradient_accumulation)))
        return 0

    def total_steps(self) -> int:
        return self.steps_per_epoch() * self.epochs

    def key_parameters(self) -> str:
        parts = [
            f"lr={self.learning_rate:g}",
            f"epochs={self.epochs}",
            f"batch={self.batch_size}",
            f"rank={self.rank}",
            f"alpha={self.alpha:g}",
            f"optimizer={self.optimizer}",
        ]
        if self.gradient_accumulation > 1:
            parts.append(f"accumulation={self.gradient_accumulation}")
        parts.append(
            f"resolution={self.resolution}" if self.model.is_image else f"seq={self.seq_len}"
        )
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.id
        return d


@dataclass(frozen=True)
class Launch:
    """How one run starts on a cluster: the command words, what to add to resume, where its
    checkpoints land (and the glob that finds them), shell lines to run before the launch."""

    words: list[Word]
    resume: list[Word]
    checkpoint_dir: Path
    checkpoint_pattern: str
    prelude: tuple[str, ...] = ()


# One process per node under srun, and torchrun's rendezvous on the first node (the sbatch script
# exports MASTER_ADDR and MASTER_PORT): what a multi-node launch line is made of.
SRUN_PER_NODE: list[Word] = ["srun", "--kill-on-bad-exit=1", "--ntasks-per-node=1"]
RENDEZVOUS: list[Word] = [
    "--rdzv_id",
    Raw('"$SLURM_JOB_ID"'),
    "--rdzv_backend",
    "c10d",
    "--rdzv_endpoint",
    Raw('"$MASTER_ADDR:$MASTER_PORT"'),
]


def sibling_executable(python: str, name: str) -> str:
    """`name` beside the interpreter that renders (the same environment), else from PATH."""
    candidate = Path(python).parent / name
    return str(candidate) if Path(python).is_absolute() and candidate.exists() else name


def halve_batch(batch: int, accumulation: int) -> tuple[int, int]:
    """The one out-of-memory rule: half the batch, and enough accumulation that the effective
    batch (batch x accumulation) never shrinks. ValueError when the batch is already 1."""
    if batch <= 1:
        raise ValueError("the batch is already 1; it cannot shrink further")
    new_batch = batch // 2
    return new_batch, -(-batch * accumulation // new_batch)


# ---- parameter ranges ---------------------------------------------------------------------


@dataclass
class RangeCheck:
    errors: list[str]
    warnings: list[str]
    explanations: dict[str, str]


def check_ranges(values: dict[str, Any], optimizer: str) -> RangeCheck:
    """Hard limits (errors) and safe ranges (warnings, with the reason) from parameters.yaml."""
    params = data("parameters")["parameters"]
    errors, warnings, explain = [], [], {}
    for key, value in values.items():
        spec = params.get(key)
        if spec is None or value is None:
            continue
        explain[key] = " ".join(str(spec["explain"]).split())
        lo, hi = spec["min"], spec["max"]
        bad_low = value <= lo if spec.get("exclusive_min") else value < lo
        if bad_low or value > hi:
            errors.append(f"{key}={value:g} is outside {lo:g}..{hi:g}")
            continue
        safe = spec.get("safe")
        if "safe_by_optimizer" in spec:
            safe = spec["safe_by_optimizer"].get(optimizer, safe)
        if "safe_relative_to_rank" in spec and values.get("rank"):
            a, b = spec["safe_relative_to_rank"]
            safe = [a * values["rank"], b * values["rank"]]
        if safe and not (safe[0] <= value <= safe[1]):
            why = " ".join(str(spec.get("why", "")).split())
            warnings.append(
                f"{key}={value:g} is outside the safe range {safe[0]:g}..{safe[1]:g}"
                + (f" for {optimizer}" if "safe_by_optimizer" in spec else "")
                + (f": {why}" if why else "")
            )
    return RangeCheck(errors, warnings, explain)


def optimizer_entry(name: str, backend_key: str) -> dict[str, Any]:
    table = data("optimizers")["optimizers"]
    if name not in table:
        raise TrainwrightError(f"unknown optimizer {name!r}; one of: {', '.join(table)}")
    entry = table[name]["backends"].get(backend_key)
    if entry is None:
        usable = [k for k, v in table.items() if backend_key in v["backends"]]
        raise TrainwrightError(
            f"optimizer {name!r} is not available in {backend_key}; use one of: {', '.join(usable)}"
        )
    return entry


# ---- files --------------------------------------------------------------------------------


def count_images(folder: str | Path) -> int:
    path = Path(folder)
    if not path.is_dir():
        return 0
    return sum(1 for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TrainwrightError(f"cannot write {value!r} to TOML")


def dump_toml(tables: dict[str, Any], header: str = "") -> str:
    """A small TOML writer: top-level tables of scalars/lists, and arrays of tables one level
    deep ([[datasets]] / [[datasets.subsets]]). Booleans stay booleans."""
    lines = [header.rstrip()] if header else []
    for name, body in tables.items():
        if isinstance(body, list):
            for item in body:
                lines += ["", f"[[{name}]]"]
                nested = {
                    k: v
                    for k, v in item.items()
                    if isinstance(v, list) and v and isinstance(v[0], dict)
                }
                for k, v in item.items():
                    if k not in nested:
                        lines.append(f"{k} = {_toml_value(v)}")
                for k, subs in nested.items():
                    for sub in subs:
                        lines += ["", f"  [[{name}.{k}]]"]
                        lines += [f"  {sk} = {_toml_value(sv)}" for sk, sv in sub.items()]
        else:
            lines += ["", f"[{name}]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in body.items()]
    return "\n".join(lines).lstrip("\n") + "\n"


def unknown_keys(keys: list[str], known: set[str], where: str) -> list[str]:
    return [f"{where}: '{k}' is not a key the trainer knows" for k in keys if k not in known]


def set_yaml_keys(text: str, updates: dict[str, Any]) -> str:
    """Change `key: value` lines at any depth, keeping comments; for the generated override
    copies of YAML configs (dry-run step limit, batch knob)."""
    for key, value in updates.items():
        pattern = re.compile(
            rf"^(?P<indent>[ \t]*)(?P<key>{re.escape(key)})(?P<sep>:[ \t]*)[^#\n]*", re.M
        )
        text, n = pattern.subn(lambda m, v=value: f"{m['indent']}{m['key']}{m['sep']}{v}", text)
        if n == 0:
            raise TrainwrightError(f"the config has no '{key}' to change")
    return text
