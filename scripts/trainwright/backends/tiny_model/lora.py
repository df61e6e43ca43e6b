"""LoRA for Conv2d and Linear layers, saved with kohya-style key names.

A small module of our own rather than `peft`: the tiny backend needs LoRA on 3x3 convolutions
(LoCon-style: a k x k down projection, a 1 x 1 up projection) and on linear layers, weights saved
as `lora_unet_<path>.lora_down.weight` / `.lora_up.weight` / `.alpha` (the layout ComfyUI and
kohya tools read), and no extra dependency. The up projection starts at zero, so an untrained
LoRA leaves the base model unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

PREFIX = "lora_unet_"


class LoRALayer(nn.Module):
    def __init__(self, base: nn.Conv2d | nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.rank, self.alpha = rank, float(alpha)
        self.multiplier = 1.0
        self.down: nn.Module
        self.up: nn.Module
        if isinstance(base, nn.Conv2d):
            self.down = nn.Conv2d(
                base.in_channels,
                rank,
                base.kernel_size,
                base.stride,
                base.padding,
                bias=False,
            )
            self.up = nn.Conv2d(rank, base.out_channels, 1, bias=False)
        else:
            self.down = nn.Linear(base.in_features, rank, bias=False)
            self.up = nn.Linear(rank, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.alpha / self.rank * self.multiplier
        return self.base(x) + self.up(self.down(x)) * scale


def target_names(model: nn.Module) -> list[str]:
    """Every Conv2d / Linear inside the UNet blocks and the text projection."""
    return [
        name
        for name, mod in model.named_modules()
        if isinstance(mod, (nn.Conv2d, nn.Linear)) and not name.startswith("time_proj")
    ]


def inject(model: nn.Module, rank: int, alpha: float) -> dict[str, LoRALayer]:
    """Wrap each target layer in a LoRALayer; freeze the base model. Returns name -> layer."""
    for p in model.parameters():
        p.requires_grad_(False)
    layers: dict[str, LoRALayer] = {}
    for name in target_names(model):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = LoRALayer(getattr(parent, child), rank, alpha)
        setattr(parent, child, layer)
        layers[name] = layer
    return layers


def _key(name: str) -> str:
    return PREFIX + name.replace(".", "_")


def lora_state(layers: dict[str, LoRALayer]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, layer in layers.items():
        key = _key(name)
        out[f"{key}.lora_down.weight"] = layer.down.weight.detach().cpu().contiguous()
        out[f"{key}.lora_up.weight"] = layer.up.weight.detach().cpu().contiguous()
        out[f"{key}.alpha"] = torch.tensor(layer.alpha)
    return out


def load_lora_state(layers: dict[str, LoRALayer], tensors: dict[str, torch.Tensor]) -> int:
    """Copy saved weights into the layers; raise ValueError when the file does not fit."""
    loaded = 0
    for name, layer in layers.items():
        key = _key(name)
        down, up = tensors.get(f"{key}.lora_down.weight"), tensors.get(f"{key}.lora_up.weight")
        if down is None or up is None:
            continue
        if down.shape != layer.down.weight.shape or up.shape != layer.up.weight.shape:
            raise ValueError(
                f"LoRA weights for {name} have shape {tuple(down.shape)}, "
                f"expected {tuple(layer.down.weight.shape)} (different rank?)"
            )
        with torch.no_grad():
            layer.down.weight.copy_(down)
            layer.up.weight.copy_(up)
        if f"{key}.alpha" in tensors:
            layer.alpha = float(tensors[f"{key}.alpha"])
        loaded += 1
    if loaded == 0:
        raise ValueError("the file holds no LoRA weights for this model")
    return loaded


def set_multiplier(layers: dict[str, LoRALayer], weight: float) -> None:
    """The LoRA strength, as in an image UI's LoRA weight slider (0 = off, 1 = as trained)."""
    for layer in layers.values():
        layer.multiplier = weight


def save(path: Path, layers: dict[str, LoRALayer], metadata: dict[str, str] | None = None) -> None:
    """Write to `<path>.partial` and rename, so a checkpoint on disk is always whole."""
    from safetensors.torch import save_file

    partial = path.with_name(path.name + ".partial")
    save_file(lora_state(layers), str(partial), metadata=metadata or {})
    partial.replace(path)
