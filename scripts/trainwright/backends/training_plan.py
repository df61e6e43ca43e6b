"""From preset + optimizer + overrides + the VRAM estimate to a TrainingPlan (backend-neutral)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from trainwright.backends.common import (
    PLACEHOLDER,
    RangeCheck,
    TrainingPlan,
    check_ranges,
    data,
    optimizer_entry,
)
from trainwright.errors import TrainwrightError
from trainwright.hardware import catalog
from trainwright.hardware.catalog import Model

# Names people (and the other trainers) use for the neutral settings.
ALIASES = {
    "lr": "learning_rate",
    "unet_lr": "learning_rate",
    "network_dim": "rank",
    "lora_rank": "rank",
    "linear": "rank",
    "network_alpha": "alpha",
    "lora_alpha": "alpha",
    "linear_alpha": "alpha",
    "train_batch_size": "batch_size",
    "batch": "batch_size",
    "gradient_accumulation_steps": "gradient_accumulation",
    "max_train_epochs": "epochs",
    "num_train_epochs": "epochs",
    "num_repeats": "repeats",
    "max_seq_len": "seq_len",
    "mixed_precision": "precision",
    "network_dropout": "lora_dropout",
    "caption_dropout_rate": "caption_dropout",
    "lr_warmup_steps": "warmup_steps",
    "pretrained_model_name_or_path": "base_model_path",
    "image_dir": "dataset_dir",
}
NEUTRAL = {
    f.name for f in dataclasses.fields(TrainingPlan) if f.name not in ("model", "project", "extra")
}
RANGED = (
    "learning_rate",
    "epochs",
    "batch_size",
    "gradient_accumulation",
    "rank",
    "alpha",
    "resolution",
    "repeats",
    "lora_dropout",
    "caption_dropout",
    "weight_decay",
    "warmup_steps",
    "save_every_n_epochs",
    "seq_len",
    "seed",
)


IMAGE_ONLY = ("resolution", "repeats", "caption_dropout")


def plan_ranges(model: Model, values: dict[str, Any], optimizer: str) -> RangeCheck:
    """The range checks, where a model's own native resolution is always safe (a 64 px model
    such as tiny sits below the range written for the big image models)."""
    ranges = check_ranges(values, optimizer)
    native = model.resolution if model.is_image else None
    if native and values.get("resolution") == native:
        ranges.warnings = [w for w in ranges.warnings if not w.startswith("resolution=")]
    return ranges


def parse_overrides(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise TrainwrightError(f"override {item!r} is not KEY=VALUE")
        key, _, raw = item.partition("=")
        key = key.strip()
        if not key:
            raise TrainwrightError(f"override {item!r} has no key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out[key] = value
    return out


@dataclass
class PlanResult:
    plan: TrainingPlan
    ranges: RangeCheck
    applied: dict[str, Any] = field(default_factory=dict)


def build_plan(
    backend: Any,
    model: Model,
    project: str,
    *,
    preset: str = "standard",
    optimizer: str = "adamw",
    overrides: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
) -> PlanResult:
    """Preset, then the optimizer's learning rate, then `defaults` (from the grimoire), then the
    person's overrides. Unknown keys go to the backend, which checks them against its names."""
    kind = "image" if model.is_image else "llm"
    if kind not in backend.KINDS:
        what = "image" if kind == "image" else "language"
        raise TrainwrightError(f"{backend.NAME} does not train {what} models like {model.name}")
    families = getattr(backend, "FAMILIES", None)
    if families is not None and model.family not in families:
        raise TrainwrightError(
            f"{backend.NAME} cannot train {model.name} (model {model.id}); it trains "
            f"{', '.join(families)} models: choose another --backend or --model"
        )
    presets = data("presets")["presets"]
    if preset not in presets:
        raise TrainwrightError(f"unknown preset {preset!r}; one of: {', '.join(presets)}")
    optimizer = optimizer.lower()
    entry = optimizer_entry(optimizer, backend.OPTIMIZER_KEY)  # refuses one the backend lacks
    opt = data("optimizers")["optimizers"][optimizer]
    values: dict[str, Any] = {
        f.name: f.default
        for f in dataclasses.fields(TrainingPlan)
        if f.name in NEUTRAL and f.default is not dataclasses.MISSING
    }
    values.update(presets[preset][kind])
    own_rate = (entry.get("learning_rate") or {}).get(kind)  # a backend's own starting rate
    values["learning_rate"] = own_rate or opt["learning_rate"][kind]
    values["optimizer"] = optimizer
    values["preset"] = preset
    values["output_dir"] = "output"
    if model.is_image:
        values["resolution"] = model.resolution or 1024
        values["lora_dropout"] = 0.0
    else:
        values["lora_dropout"] = 0.05
        values["seq_len"] = min(model.max_seq_len or 2048, 2048)
        values["cache_latents"] = False
    values.update({k: v for k, v in (defaults or {}).items() if v not in (None, "")})
    extra: dict[str, Any] = {}
    applied: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        name = ALIASES.get(key, key)
        if name in ("optimizer", "preset", "model", "project"):
            raise TrainwrightError(f"set {name} with --{name}, not as an override")
        if name in NEUTRAL:
            values[name] = value
            applied[name] = value
        else:
            extra[key] = value
            applied[key] = value
    if "alpha" not in (overrides or {}) and "rank" in applied and kind == "image":
        values["alpha"] = values["rank"]
    for key in (
        "epochs",
        "batch_size",
        "gradient_accumulation",
        "rank",
        "repeats",
        "resolution",
        "seq_len",
        "save_every_n_epochs",
        "seed",
        "warmup_steps",
        "gpus",
        "images",
    ):
        if key in values and not isinstance(values[key], int):
            try:
                if isinstance(values[key], bool) or float(values[key]) != int(float(values[key])):
                    raise ValueError
                values[key] = int(float(values[key]))
            except (TypeError, ValueError):
                raise TrainwrightError(
                    f"{key} must be a whole number, not {values[key]!r}"
                ) from None
    for key in ("learning_rate", "alpha", "lora_dropout", "caption_dropout", "weight_decay"):
        if key in values and (
            isinstance(values[key], bool) or not isinstance(values[key], (int, float))
        ):
            raise TrainwrightError(f"{key} must be a number, not {values[key]!r}")
    if values.get("precision") not in ("bf16", "fp16", "fp32"):
        raise TrainwrightError(
            f"precision must be bf16, fp16 or fp32, not {values.get('precision')!r}"
        )
    if values.get("method", "lora") not in ("lora", "qlora", "full"):
        raise TrainwrightError(f"method must be lora, qlora or full, not {values['method']!r}")
    relevant = [
        k
        for k in RANGED
        if k in values and k not in (IMAGE_ONLY if kind == "llm" else ("seq_len",))
    ]
    ranges = plan_ranges(model, {k: values[k] for k in relevant}, optimizer)
    if ranges.errors:
        raise TrainwrightError("; ".join(ranges.errors))
    if model.is_image:
        step = model.resolution_multiple or 8
        if values["resolution"] % step:
            raise TrainwrightError(
                f"resolution {values['resolution']} is not a multiple of {step}, which "
                f"{model.name} needs"
            )
    known = {k: v for k, v in values.items() if k in NEUTRAL}
    plan = TrainingPlan(model=model, project=project, extra=extra, **known)
    return PlanResult(plan, ranges, applied)


def plan_from_settings(backend_name: str, settings: dict[str, Any]) -> TrainingPlan:
    """For backends.render_settings: a plan from a flat dict (model id, project, any keys)."""
    from trainwright.backends import get

    settings = dict(settings)
    model = settings.pop("model", None)
    project = settings.pop("project", None) or settings.pop("output_name", "run")
    if model is None:
        raise TrainwrightError("settings need model=ID (a catalog model)")
    m = model if isinstance(model, Model) else catalog.load().get(str(model))
    preset = settings.pop("preset", "standard")
    optimizer = settings.pop("optimizer", "adamw")
    result = build_plan(
        get(backend_name), m, project, preset=preset, optimizer=optimizer, overrides=settings
    )
    return result.plan


def with_batch(plan: TrainingPlan, batch: int, accumulation: int) -> TrainingPlan:
    return replace(plan, batch_size=batch, gradient_accumulation=accumulation)


def has_placeholder(files: dict[str, str]) -> list[str]:
    return [name for name, text in files.items() if PLACEHOLDER in text]
