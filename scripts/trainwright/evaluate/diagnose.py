"""Failure diagnosis: a symptom in the person's words -> likely cause -> fix -> next command.

The table is data (resources/training/failure-modes.yaml). A symptom matches an entry by its id,
an alias, or an alias contained in the words given; close misspellings are offered back rather
than guessed. With a project, the next step is filled in from its state files (its name, the
checkpoints progress.md lists) and the monitor's anomalies can be diagnosed directly.
"""

from __future__ import annotations

import difflib
import functools
import re
import textwrap
from dataclasses import dataclass
from typing import Any

import yaml

from trainwright import pack
from trainwright.errors import TrainwrightError

DATA = "resources/training/failure-modes.yaml"
ACTION_KINDS = (
    "checkpoint",
    "epochs",
    "recaption",
    "dataset",
    "rank",
    "learning-rate",
    "precision",
    "base-model",
    "vae",
)
REQUIRED = ("id", "symptom", "aliases", "cause", "explanation", "fixes", "action")


@functools.cache
def load_modes() -> list[dict[str, Any]]:
    data = yaml.safe_load(pack.read_text(DATA))
    modes = data.get("symptoms") if isinstance(data, dict) else None
    if not isinstance(modes, list) or not modes:
        raise TrainwrightError(f"{DATA} is damaged: no symptoms list")
    seen: set[str] = set()
    for mode in modes:
        missing = [k for k in REQUIRED if not mode.get(k)]
        if missing or mode["action"].get("kind") not in ACTION_KINDS:
            raise TrainwrightError(f"{DATA}: entry {mode.get('id')!r} is incomplete ({missing})")
        if mode["id"] in seen:
            raise TrainwrightError(f"{DATA}: id {mode['id']!r} appears twice")
        seen.add(mode["id"])
    return modes


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9.]+", " ", text.lower()).split())


def _keys(mode: dict[str, Any]) -> list[str]:
    return [_norm(mode["id"])] + [_norm(a) for a in mode["aliases"]]


def match(symptom: str) -> list[dict[str, Any]]:
    """Entries for one symptom: exact id/alias first, else every alias found inside the words."""
    words = _norm(symptom)
    if not words:
        return []
    modes = load_modes()
    exact = [m for m in modes if words in _keys(m)]
    if exact:
        return exact
    padded = f" {words} "
    return [m for m in modes if any(f" {k} " in padded for k in _keys(m))]


def suggestions(symptom: str) -> list[str]:
    names = {k: m["id"] for m in load_modes() for k in _keys(m)}
    close = difflib.get_close_matches(_norm(symptom), list(names), n=3, cutoff=0.6)
    return list(dict.fromkeys(names[c] for c in close))


@dataclass
class Context:
    project: str | None = None
    checkpoints: list[str] | None = None


def _next_step(mode: dict[str, Any], ctx: Context) -> dict[str, Any]:
    action = dict(mode["action"])
    name = ctx.project or "NAME"
    command = str(action.get("command", "")).replace("{name}", name)
    if action["kind"] == "checkpoint" and ctx.checkpoints and len(ctx.checkpoints) > 1:
        earlier = ctx.checkpoints[(len(ctx.checkpoints) - 1) // 2]
        action["checkpoints"] = ctx.checkpoints
        action["suggested_checkpoint"] = earlier
        command = command.replace("EARLIER.safetensors", earlier).replace(
            "MIDDLE.safetensors", earlier
        )
        command = command.replace("LAST.safetensors", ctx.checkpoints[-1])
    action["command"] = command
    return action


def diagnose(symptoms: list[str], ctx: Context | None = None) -> dict[str, Any]:
    """Explain each symptom; raise (exit 2) for one that matches nothing, naming close ones."""
    ctx = ctx or Context()
    if not symptoms or not any(s.strip() for s in symptoms):
        raise TrainwrightError(
            "no symptom given: describe what the images look like, e.g. 'blurry' "
            "(trainwright diagnose --list shows them all)"
        )
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for symptom in symptoms:
        modes = match(symptom)
        if not modes:
            close = suggestions(symptom)
            hint = f"did you mean: {', '.join(close)}?" if close else "see --list"
            raise TrainwrightError(f"no known failure matches {symptom!r}; {hint}")
        for mode in modes:
            if mode["id"] in seen:
                continue
            seen.add(mode["id"])
            found.append(_entry(mode, symptom, ctx))
    return {"project": ctx.project, "diagnoses": found}


def _entry(mode: dict[str, Any], given: str, ctx: Context) -> dict[str, Any]:
    return {
        "id": mode["id"],
        "given": given,
        "symptom": mode["symptom"],
        "cause": mode["cause"],
        "explanation": " ".join(str(mode["explanation"]).split()),
        "fixes": list(mode["fixes"]),
        "action": _next_step(mode, ctx),
    }


def from_anomalies(text: str) -> list[str]:
    """Symptom ids whose aliases appear in the monitor's Anomalies text (progress.md)."""
    words = f" {_norm(text)} "
    ids = []
    for mode in load_modes():
        if mode["id"].startswith("loss-") and any(f" {k} " in words for k in _keys(mode)):
            ids.append(mode["id"])
    return ids


def catalogue() -> list[dict[str, str]]:
    return [{"id": m["id"], "symptom": m["symptom"], "cause": m["cause"]} for m in load_modes()]


def render(d: dict[str, Any]) -> str:
    if "catalogue" in d:
        return "\n".join(f"{m['id']:<28} {m['symptom']}" for m in d["catalogue"])
    if not d["diagnoses"]:
        return d.get("message", "nothing to diagnose")

    def para(label: str, text: str) -> str:
        return textwrap.fill(f"{label}{text}", 100, initial_indent="  ", subsequent_indent="    ")

    lines: list[str] = []
    for item in d["diagnoses"]:
        lines.append(f"{item['symptom']}  [{item['id']}]")
        lines.append(para("likely cause: ", item["cause"]))
        lines.append(para("in plain words: ", item["explanation"]))
        for i, fix in enumerate(item["fixes"], start=1):
            lines.append(para(f"fix {i}: ", fix))
        act = item["action"]
        lines.append(f"  next ({act['kind']}): {act['summary']}")
        if act.get("command"):
            lines.append(f"    {act['command']}")
        lines.append("")
    return "\n".join(lines).rstrip()
