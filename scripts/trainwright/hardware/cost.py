"""`trainwright cost`: what a run will cost on a rented GPU, from the rate table in resources/."""

from __future__ import annotations

import difflib
import math
from typing import Any

import yaml

from trainwright import pack
from trainwright.errors import TrainwrightError

RATES = "resources/providers/rates.yaml"


def load_rates() -> dict[str, Any]:
    data = yaml.safe_load(pack.read_text(RATES))
    if not isinstance(data, dict) or not isinstance(data.get("providers"), dict):
        raise TrainwrightError(f"{RATES} is damaged: no providers table")
    return data


def _norm(name: str) -> str:
    return (
        "".join(ch for ch in name.lower() if ch.isalnum())
        .replace("nvidia", "")
        .replace("geforce", "")
    )


def find_gpu(gpus: dict[str, Any], name: str) -> str:
    wanted = _norm(name)
    for key in gpus:
        if _norm(key) == wanted:
            return key
    close = difflib.get_close_matches(name, list(gpus), n=3, cutoff=0.3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(gpus)}"
    raise TrainwrightError(f"no rate for GPU {name!r}{hint}")


def estimate_cost(gpu: str, hours: float, provider: str | None = None, gpus: int = 1) -> dict:
    """Cost per provider tier for `hours` of `gpus` GPUs, rounded up to whole started minutes."""
    if not math.isfinite(hours) or hours <= 0:
        raise TrainwrightError(f"hours must be a positive number, got {hours}")
    if gpus < 1:
        raise TrainwrightError(f"the GPU count must be at least 1, got {gpus}")
    data = load_rates()
    providers = data["providers"]
    if provider is not None and provider not in providers:
        raise TrainwrightError(f"unknown provider {provider!r}; one of: {', '.join(providers)}")
    billed_hours = math.ceil(hours * 60) / 60
    quotes = []
    for pname, pdata in providers.items():
        if provider and pname != provider:
            continue
        try:
            key = find_gpu(pdata["gpus"], gpu)
        except TrainwrightError:
            continue
        for tier, rate in pdata["gpus"][key].items():
            if tier == "vram_gb":
                continue
            quotes.append(
                {
                    "provider": pname,
                    "tier": tier,
                    "gpu": key,
                    "rate_per_hour": rate,
                    "cost": round(rate * billed_hours * gpus, 2),
                    "url": pdata.get("url"),
                }
            )
    if not quotes:
        scope = (
            providers[provider]["gpus"]
            if provider
            else {k: v for p in providers.values() for k, v in p["gpus"].items()}
        )
        find_gpu(scope, gpu)  # raises with suggestions
    quotes.sort(key=lambda q: q["cost"])
    return {
        "gpu": gpu,
        "hours": hours,
        "gpus": gpus,
        "quotes": quotes,
        "as_of": str(data.get("as_of")),
        "verified": bool(data.get("verified")),
        "note": "estimates from the rate table; check the provider's live page before renting"
        if not data.get("verified")
        else None,
    }


def render(d: dict[str, Any]) -> str:
    lines = [f"{d['gpus']} x {d['gpu']} for {d['hours']} h (rates as of {d['as_of']}):"]
    for q in d["quotes"]:
        lines.append(
            f"  ${q['cost']:>8.2f}  {q['provider']} {q['tier']} "
            f"({q['gpu']}, ${q['rate_per_hour']}/h)"
        )
    if d["note"]:
        lines.append(f"  note: {d['note']}")
    return "\n".join(lines)
