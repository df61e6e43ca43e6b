"""Which GPU an estimate is checked against: --vram, --gpu (studio.md entry or table), studio's
default, or the only GPU listed in studio.md."""

from __future__ import annotations

from pathlib import Path

from trainwright.errors import StateFileError, TrainwrightError
from trainwright.hardware.gpu import GPUSpec, _normal, lookup_gpu
from trainwright.state.grimoire import Grimoire


def studio_gpus(grimoire: Grimoire) -> dict[str, GPUSpec]:
    """`### GPU: <name>` entries of studio.md (empty when there is no studio.md)."""
    path = grimoire.path_for("studio")
    if not path.exists():
        return {}
    _, data = grimoire.read("studio")
    out = {}
    for title, fields in data["sections"].items():
        if not title.startswith("GPU: "):
            continue
        vram = fields.get("VRAM GB")
        if vram in (None, ""):
            raise StateFileError(path, f"'{title}' has no VRAM GB")
        label = title.removeprefix("GPU: ").strip()
        name = str(fields.get("Name") or label)
        tflops = None
        try:
            tflops = lookup_gpu(name).bf16_tflops
        except TrainwrightError:
            pass
        out[label] = GPUSpec(name, float(vram), tflops, source=f"studio.md ({label})")
    return out


def default_gpu_name(grimoire: Grimoire) -> str | None:
    path = grimoire.path_for("studio")
    if not path.exists():
        return None
    _, data = grimoire.read("studio")
    value = data["sections"].get("Defaults", {}).get("Default GPU")
    return str(value) if value else None


def select_gpu(
    grimoire: Grimoire | Path | str, name: str | None = None, vram_gb: float | None = None
) -> GPUSpec | None:
    g = grimoire if isinstance(grimoire, Grimoire) else Grimoire(grimoire)
    if vram_gb is not None:
        if vram_gb <= 0:
            raise TrainwrightError(f"--vram must be a positive number of GB, not {vram_gb}")
        tflops = lookup_gpu(name).bf16_tflops if name else None
        return GPUSpec(name or f"{vram_gb:g} GB card", float(vram_gb), tflops, source="--vram")
    studio = studio_gpus(g)
    wanted = name or default_gpu_name(g)
    if wanted:
        for label, spec in studio.items():
            if _normal(wanted) in (_normal(label), _normal(spec.name)):
                return spec
        if name is None:
            raise TrainwrightError(
                f"studio.md's Default GPU '{wanted}' is not one of its GPU entries"
            )
        return lookup_gpu(wanted)
    if len(studio) == 1:
        return next(iter(studio.values()))
    return None
