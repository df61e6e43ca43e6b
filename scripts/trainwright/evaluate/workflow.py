"""ComfyUI API-format workflows for one grid cell, and their check against `/object_info`.

API format: `{"<id>": {"class_type": ..., "inputs": {...}}}`; an input that comes from another
node is `["<id>", output_index]`. ComfyUI ignores a node's `_meta` (its title in the editor).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE_INPUTS = ("ckpt_name", "lora_name")  # choices that depend on the server's models folders


@dataclass(frozen=True)
class Sampling:
    width: int = 1024
    height: int = 1024
    steps: int = 25
    cfg: float = 7.0
    sampler: str = "euler_ancestral"
    scheduler: str = "normal"
    negative: str = ""

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def build_workflow(
    ckpt_name: str,
    lora_name: str,
    weight: float,
    prompt: str,
    seed: int,
    sampling: Sampling,
    filename_prefix: str = "trainwright/eval",
) -> dict[str, dict[str, Any]]:
    """The LoRA evaluation chain: checkpoint -> LoRA at `weight` -> sampler -> decode -> save."""

    def node(cls: str, title: str, **inputs: Any) -> dict[str, Any]:
        return {"class_type": cls, "inputs": inputs, "_meta": {"title": title}}

    return {
        "1": node("CheckpointLoaderSimple", "Base model", ckpt_name=ckpt_name),
        "2": node(
            "LoraLoader",
            f"LoRA at {weight:g}",
            model=["1", 0],
            clip=["1", 1],
            lora_name=lora_name,
            strength_model=float(weight),
            strength_clip=float(weight),
        ),
        "3": node("CLIPTextEncode", "Positive prompt", clip=["2", 1], text=prompt),
        "4": node("CLIPTextEncode", "Negative prompt", clip=["2", 1], text=sampling.negative),
        "5": node(
            "EmptyLatentImage",
            "Canvas",
            width=sampling.width,
            height=sampling.height,
            batch_size=1,
        ),
        "6": node(
            "KSampler",
            "Sampler (fixed seed)",
            model=["2", 0],
            positive=["3", 0],
            negative=["4", 0],
            latent_image=["5", 0],
            seed=int(seed),
            steps=sampling.steps,
            cfg=float(sampling.cfg),
            sampler_name=sampling.sampler,
            scheduler=sampling.scheduler,
            denoise=1.0,
        ),
        "7": node("VAEDecode", "Decode", samples=["6", 0], vae=["1", 2]),
        "8": node("SaveImage", "Save", images=["7", 0], filename_prefix=filename_prefix),
    }


OUTPUT_NODE = "8"


def load_object_info(path: Path | str) -> dict[str, Any]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("__")}


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


def _choices(spec: list[Any]) -> list[Any] | None:
    kind = spec[0]
    if isinstance(kind, list):
        return kind
    if kind == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        return list(spec[1].get("options", []))
    return None


def _check_value(name: str, spec: list[Any], value: Any, check_files: bool) -> str | None:
    kind = spec[0]
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    choices = _choices(spec)
    if choices is not None:
        if name in FILE_INPUTS and not check_files:
            return None if isinstance(value, str) and value else f"{name} must be a file name"
        if value not in choices:
            shown = ", ".join(map(str, choices[:8])) + (" ..." if len(choices) > 8 else "")
            return f"{name}={value!r} is not one of the server's choices ({shown or 'none'})"
        return None
    if kind == "INT":
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{name} must be a whole number, got {value!r}"
    elif kind == "FLOAT":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return f"{name} must be a number, got {value!r}"
    elif kind == "STRING":
        return None if isinstance(value, str) else f"{name} must be text, got {value!r}"
    elif kind == "BOOLEAN":
        return None if isinstance(value, bool) else f"{name} must be true or false"
    else:
        return f"{name} expects a {kind} link from another node, got the value {value!r}"
    if "min" in opts and value < opts["min"]:
        return f"{name}={value} is below the minimum {opts['min']}"
    if "max" in opts and value > opts["max"]:
        return f"{name}={value} is above the maximum {opts['max']}"
    return None


def validate_workflow(
    graph: dict[str, Any], object_info: dict[str, Any], check_files: bool = True
) -> list[str]:
    """Problems ComfyUI would reject the graph for, one line each; [] when it is valid.

    Checks node classes, input names (required present, none unknown), links (node exists,
    output index and type match) and widget values (type, min/max, choices). With
    check_files=False the model and LoRA file names are not compared with the server's lists.
    """
    problems: list[str] = []
    outputs = 0
    for node_id, node in graph.items():
        cls = node.get("class_type") if isinstance(node, dict) else None
        if cls not in object_info:
            problems.append(f"node {node_id}: unknown node type {cls!r}")
            continue
        info = object_info[cls]
        outputs += bool(info.get("output_node"))
        spec_in = info.get("input", {})
        required = spec_in.get("required", {})
        optional = spec_in.get("optional", {})
        inputs = node.get("inputs", {})
        for name in required:
            if name not in inputs:
                problems.append(f"node {node_id} ({cls}): required input {name!r} is missing")
        for name, value in inputs.items():
            spec = required.get(name) or optional.get(name)
            if spec is None:
                problems.append(f"node {node_id} ({cls}): unknown input {name!r}")
                continue
            if _is_link(value):
                problems += _check_link(graph, object_info, node_id, cls, name, spec, value)
                continue
            why = _check_value(name, spec, value, check_files)
            if why:
                problems.append(f"node {node_id} ({cls}): {why}")
    if outputs == 0:
        problems.append("the workflow has no output node (SaveImage); ComfyUI would run nothing")
    return problems


def _check_link(
    graph: dict[str, Any],
    object_info: dict[str, Any],
    node_id: str,
    cls: str,
    name: str,
    spec: list[Any],
    link: list[Any],
) -> list[str]:
    src_id, index = link
    src = graph.get(src_id)
    if not isinstance(src, dict) or src.get("class_type") not in object_info:
        return [f"node {node_id} ({cls}): input {name!r} links to missing node {src_id!r}"]
    out_types = object_info[src["class_type"]].get("output", [])
    if not 0 <= index < len(out_types):
        return [f"node {node_id} ({cls}): {name!r} links to output {index} of node {src_id}"]
    if isinstance(spec[0], str) and out_types[index] != spec[0]:
        return [
            f"node {node_id} ({cls}): {name!r} expects {spec[0]} but node {src_id} output "
            f"{index} is {out_types[index]}"
        ]
    return []


def file_choice(object_info: dict[str, Any], cls: str, name: str) -> list[str]:
    """The server's list of files for a loader input (e.g. LoraLoader.lora_name)."""
    spec = object_info.get(cls, {}).get("input", {}).get("required", {}).get(name)
    choices = _choices(spec) if spec else None
    return [str(c) for c in choices or []]


def match_file(choices: list[str], wanted: str) -> str | None:
    """The server's name for `wanted`: exact, or the same file name in a subfolder."""
    if wanted in choices:
        return wanted
    base = Path(wanted).name
    hits = [c for c in choices if c.replace("\\", "/").rsplit("/", 1)[-1] == base]
    return hits[0] if len(hits) == 1 else None
