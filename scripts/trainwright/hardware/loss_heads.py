"""What each training framework's loss head holds in memory (resources/models/loss-heads.yaml).

The vocabulary-sized part of a language model's training memory depends on the trainer, not the
model: see the data file for the factors, how they were traced and their sources.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonschema
import yaml

from trainwright import pack
from trainwright.errors import TrainwrightError

LOSS_HEADS = "resources/models/loss-heads.yaml"
SCHEMA = "resources/models/loss-heads.schema.json"


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    """The data file, checked against its schema (a damaged file is a one-line error)."""
    try:
        raw = yaml.safe_load(pack.read_text(LOSS_HEADS))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise TrainwrightError(f"{LOSS_HEADS} is not valid YAML{where}") from None
    try:
        jsonschema.validate(raw, json.loads(pack.read_text(SCHEMA)))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise TrainwrightError(f"{LOSS_HEADS}: {where}: {exc.message}") from None
    if raw["default"] not in raw["frameworks"]:
        raise TrainwrightError(f"{LOSS_HEADS}: default {raw['default']!r} is not a framework")
    return raw


def frameworks() -> tuple[str, ...]:
    """The framework names `Setup.framework` and `trainwright vram --framework` accept."""
    return tuple(table()["frameworks"])


def default_framework() -> str:
    return str(table()["default"])


def describe(name: str) -> str:
    return str(get(name)["description"])


def get(name: str) -> dict[str, Any]:
    known = table()["frameworks"]
    if name not in known:
        raise TrainwrightError(f"unknown framework {name!r}; one of {', '.join(known)}")
    return known[name]


def frees_gradients(name: str) -> bool:
    """Whether the framework's training loop sets the gradients to None after each optimizer
    step (so, without accumulation, they are made while the activations are freed)."""
    return get(name).get("gradients", "kept") == "freed"


def offloads_checkpoints(name: str) -> bool:
    """Whether the framework's gradient checkpointing keeps the layer inputs in CPU memory."""
    return get(name).get("checkpoints", "on-card") == "offloaded"


def quantized_linear_keeps_input(name: str) -> bool:
    """Whether the framework's 4-bit linear layers save their input for backward (bitsandbytes,
    which the traced qlora constants follow) or only the quantized weight (torchao's NF4)."""
    return get(name).get("quantized_linear", "keeps-input") == "keeps-input"


def measured_loss(name: str) -> tuple[str | None, int]:
    """How `vram --measure` computes this framework's loss (labels, chunked, latents; None when
    it cannot) and, for chunked, over how many pieces of the sequence."""
    entry = get(name)
    return entry.get("measured_loss"), int(entry.get("chunks", 1))


@dataclass
class LossHead:
    framework: str
    kept: float  # bytes alive into backward (part of the activations)
    peak: float  # bytes on top of `kept` at the loss head's worst moment
    layer_transient: str  # add | max (see the data file)


def loss_head(
    name: str, *, vocab: int, hidden: int, tokens: int, fp32: bool, profile_vocab: float
) -> LossHead:
    """The loss head of `tokens` tokens; `profile_vocab` is the family's traced kept bytes per
    token per vocabulary entry (used where the framework's entry says kept_from_profile)."""
    entry = get(name)
    kept, peak = dict(entry["kept"]), dict(entry["peak"])
    if fp32 and "fp32" in entry:
        kept = dict(entry["fp32"].get("kept", kept))
        peak = dict(entry["fp32"].get("peak", peak))
    if entry.get("kept_from_profile"):
        kept["vocab"] = profile_vocab

    def total(f: dict[str, float]) -> float:
        per_token = f.get("vocab", 0.0) * vocab + f.get("hidden", 0.0) * hidden
        return tokens * (per_token + f.get("token", 0.0))

    extra = total(peak)
    tile = entry.get("tile")
    if tile:
        extra += min(tokens, tile["tokens"]) * min(vocab, tile["vocab"]) * tile["bytes"]
    return LossHead(name, total(kept), extra, entry["layer_transient"])
