"""The dataset numbers the tools use, read from resources/dataset/dataset-sizes.yaml."""

from __future__ import annotations

import functools
from typing import Any

import yaml

from trainwright import pack
from trainwright.errors import TrainwrightError

SIZES_FILE = "resources/dataset/dataset-sizes.yaml"


@functools.cache
def sizes() -> dict[str, Any]:
    data = yaml.safe_load(pack.read_text(SIZES_FILE))
    for key in ("types", "min_side", "caption_style"):
        if not isinstance(data.get(key), dict):
            raise TrainwrightError(f"{SIZES_FILE}: '{key}' is missing or not a mapping")
    for name, t in data["types"].items():
        if not (isinstance(t.get("min"), int) and isinstance(t.get("max"), int)):
            raise TrainwrightError(f"{SIZES_FILE}: type '{name}' needs whole-number min and max")
    return data


def model_family(model: str | None) -> str | None:
    """'SDXL 1.0', 'ponyDiffusionV6XL', 'flux1-dev' ... -> a key of min_side, or None."""
    if not model:
        return None
    m = model.lower().replace(" ", "").replace("-", "").replace("_", "").replace(".", "")
    for key, probes in sizes().get("family_words") or []:
        if any(str(p) in m for p in probes):
            return key
    return None


def min_side(model: str | None) -> int | None:
    fam = model_family(model)
    return sizes()["min_side"].get(fam) if fam else None


def size_range(lora_type: str | None) -> tuple[int, int] | None:
    t = sizes()["types"].get(lora_type or "")
    return (t["min"], t["max"]) if t else None
