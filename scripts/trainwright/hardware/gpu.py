"""Find NVIDIA GPUs through `nvidia-smi --query-gpu` CSV.

The binary can be swapped with TRAINWRIGHT_NVIDIA_SMI (a path to a program that prints a
recorded CSV), which is how the GPU paths are tested on machines without one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import asdict, dataclass

QUERY = "name,memory.total,memory.used,driver_version,compute_cap"
ENV_OVERRIDE = "TRAINWRIGHT_NVIDIA_SMI"


@dataclass
class GPU:
    index: int
    name: str
    memory_total_mib: int
    memory_used_mib: int
    driver_version: str
    compute_capability: str

    @property
    def memory_total_gib(self) -> float:
        return round(self.memory_total_mib / 1024, 2)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "memory_total_gib": self.memory_total_gib}


@dataclass
class GPUProbe:
    found: bool
    gpus: list[GPU]
    source: str | None
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "found": self.found,
            "count": len(self.gpus),
            "gpus": [g.as_dict() for g in self.gpus],
            "source": self.source,
            "error": self.error,
        }


def parse_query_csv(text: str) -> list[GPU]:
    """Parse `--format=csv,noheader,nounits` output; raise ValueError on a malformed line."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5:
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        name, total, used, driver, cc = parts
        gpus.append(GPU(len(gpus), name, _mib(total, line), _mib(used, line), driver, cc))
        if not 0 <= gpus[-1].memory_used_mib <= gpus[-1].memory_total_mib > 0:
            raise ValueError(f"nvidia-smi reports memory that cannot be: {line!r}")
    return gpus


def _mib(field: str, line: str) -> int:
    """A memory figure in MiB: a finite number, not negative, not beyond any GPU made."""
    try:
        value = float(field)
    except ValueError:
        value = float("nan")
    if not 0 <= value < 1 << 30:
        raise ValueError(f"nvidia-smi printed {field!r} where a memory size belongs: {line!r}")
    return int(value)


def probe_gpus(timeout: float = 15.0) -> GPUProbe:
    binary = os.environ.get(ENV_OVERRIDE) or shutil.which("nvidia-smi")
    if not binary:
        return GPUProbe(False, [], None, "nvidia-smi not found (no NVIDIA driver on this machine)")
    try:
        proc = subprocess.run(
            [binary, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return GPUProbe(False, [], binary, f"nvidia-smi could not run: {exc}")
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        return GPUProbe(
            False,
            [],
            binary,
            f"nvidia-smi failed: {msg[0] if msg else 'exit ' + str(proc.returncode)}",
        )
    try:
        gpus = parse_query_csv(proc.stdout)
    except ValueError as exc:
        return GPUProbe(False, [], binary, str(exc))
    return GPUProbe(bool(gpus), gpus, binary, None if gpus else "nvidia-smi listed no GPUs")


# --- the GPU table (resources/environment/gpus.yaml) and studio.md GPUs ------------------------

GPU_TABLE = "resources/environment/gpus.yaml"


@dataclass(frozen=True)
class GPUSpec:
    name: str
    memory_gib: float
    bf16_tflops: float | None = None
    source: str = "table"  # table | studio | --vram


def _normal(name: str) -> str:
    import re

    text = name.lower().replace("nvidia", "").replace("geforce", "")
    return re.sub(r"[^a-z0-9]", "", text)


def gpu_table() -> list[dict[str, object]]:
    import yaml

    from trainwright import pack

    return list(yaml.safe_load(pack.read_text(GPU_TABLE))["gpus"])


def lookup_gpu(name: str) -> GPUSpec:
    """A GPU from the table by name or alias ('RTX 4090', 'a100-80gb', 'H100'); else exit 2."""
    import difflib

    from trainwright.errors import TrainwrightError

    wanted = _normal(name)
    table = gpu_table()
    for entry in table:
        aliases = [str(a) for a in entry.get("aliases", []) or []]  # type: ignore[attr-defined]
        if wanted in {_normal(n) for n in [str(entry["name"]), *aliases]}:
            tflops = entry.get("bf16_tflops")
            return GPUSpec(
                str(entry["name"]),
                round(float(str(entry["memory_mib"])) / 1024, 2),
                float(str(tflops)) if tflops else None,
            )
    known = [str(e["name"]) for e in table]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise TrainwrightError(
        f"GPU '{name}' is not in the GPU table{hint} (give --vram GB for any other card, or add it "
        "to grimoire/studio.md)"
    )
