"""The grid's rows (test prompts) and columns (weights), checked before anything is generated."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from trainwright import pack
from trainwright.errors import TrainwrightError

DATA = "resources/evaluation/test-prompts.yaml"
LORA_TYPES = ("style", "character", "object")
MAX_WEIGHT = 2.0


@dataclass(frozen=True)
class Prompt:
    label: str
    text: str
    standard: bool

    def as_dict(self) -> dict[str, object]:
        return {"label": self.label, "text": self.text, "standard": self.standard}


@functools.cache
def load_data() -> dict[str, Any]:
    data = yaml.safe_load(pack.read_text(DATA))
    if not isinstance(data, dict) or set(data.get("types", {})) != set(LORA_TYPES):
        raise TrainwrightError(f"{DATA} is damaged: it must list prompts for {LORA_TYPES}")
    return data


def standard_prompts(lora_type: str) -> list[dict[str, str]]:
    if lora_type not in LORA_TYPES:
        raise TrainwrightError(f"unknown LoRA type {lora_type!r}; one of: {', '.join(LORA_TYPES)}")
    return list(load_data()["types"][lora_type])


def _with_trigger(text: str, trigger: str | None) -> str:
    if "{trigger}" in text:
        return text.replace("{trigger}", trigger or "").strip(" ,")
    if trigger and not re.search(rf"(?<!\w){re.escape(trigger)}(?!\w)", text):
        return f"{trigger}, {text}"
    return text


def build_prompts(
    lora_type: str | None,
    trigger: str | None,
    custom: list[str],
    use_standard: bool = True,
) -> list[Prompt]:
    """Standard prompts for the type (when asked) plus the person's own, trigger word in each."""
    for text in custom:
        if not text.strip():
            raise TrainwrightError("a --prompt is empty; give the text of the test prompt")
        if "\n" in text:
            raise TrainwrightError("a --prompt spans several lines; give one line per prompt")
    rows: list[Prompt] = []
    if use_standard:
        if lora_type is None:
            raise TrainwrightError(
                "the LoRA type is unknown, so the standard prompts cannot be chosen: set Type in "
                "intent.md, give --type style|character|object, or use --no-standard with --prompt"
            )
        if not trigger:
            raise TrainwrightError(
                "no trigger word: the standard prompts need it (give --trigger or set "
                "'Trigger word' in intent.md)"
            )
        for item in standard_prompts(lora_type):
            rows.append(Prompt(item["label"], _with_trigger(item["text"], trigger), True))
    for i, text in enumerate(custom, start=1):
        rows.append(Prompt(f"custom {i}", _with_trigger(text.strip(), trigger), False))
    if not rows:
        raise TrainwrightError(
            "the prompt list is empty: give at least one --prompt, or drop --no-standard"
        )
    return rows


def parse_weights(text: str | None) -> list[float]:
    """'0.3,0.5,1' -> [0.3, 0.5, 1.0]; each within 0-2, no repeats, at least one."""
    if text is None:
        return [float(w) for w in load_data()["default_weights"]]
    parts = [p.strip() for p in text.split(",")]
    if not any(parts):
        raise TrainwrightError("--weights is empty; give a list such as 0.3,0.5,0.7,0.9,1.0")
    weights: list[float] = []
    for part in parts:
        if not part:
            raise TrainwrightError(f"--weights {text!r} has an empty entry")
        try:
            w = float(part)
        except ValueError:
            raise TrainwrightError(f"--weights: {part!r} is not a number") from None
        if not math.isfinite(w) or w < 0 or w > MAX_WEIGHT:
            raise TrainwrightError(
                f"--weights: {part} is outside 0-{MAX_WEIGHT:g}; LoRA weights beyond 2 only "
                "distort (use 0 for the base model without the LoRA)"
            )
        if w in weights:
            raise TrainwrightError(f"--weights: {part} is given twice")
        weights.append(w)
    return weights


def weight_label(w: float) -> str:
    return f"{w:g}"


def sampling_for(family: str | None) -> tuple[str, dict[str, Any]]:
    data = load_data()
    name = family if family in data["sampling"] else data["default_family"]
    return name, dict(data["sampling"][name])


def family_of(model: str | None, declared: str | None = None) -> str:
    """The base-model family: studio.md's Family when it names one, else a guess from the name."""
    data = load_data()
    if declared:
        low = declared.lower().replace(" ", "")
        for fam, hints in data["family_hints"].items():
            if low == fam or any(h in low for h in hints):
                return fam
    low = (model or "").lower()
    for fam, hints in data["family_hints"].items():
        if any(h in low for h in hints):
            return fam
    return data["default_family"]
