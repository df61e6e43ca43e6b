"""Check that a LoRA file is a whole safetensors file before any image is made from it.

The safetensors layout: 8 bytes little-endian header length N, N bytes of JSON (tensor name ->
dtype, shape, data_offsets; optional "__metadata__" of strings), then the tensor data. A file cut
short during a copy still has a valid header but less data than the offsets promise.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from trainwright.errors import TrainwrightError
from trainwright.state.content_hash import file_sha256

MAX_HEADER = 100 * 1024 * 1024
LORA_MARKERS = ("lora", "lokr", "loha", "hada_", "dora_scale", ".alpha")


@dataclass
class LoraFile:
    path: Path
    size: int
    tensors: int
    metadata: dict[str, str] = field(default_factory=dict)
    rank: int | None = None
    sha256: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "size": self.size,
            "tensors": self.tensors,
            "rank": self.rank,
            "sha256": self.sha256,
        }


def _bad(path: Path, why: str) -> TrainwrightError:
    return TrainwrightError(f"{path}: {why}")


def read_header(path: Path) -> tuple[dict[str, dict], dict[str, str], int]:
    """Return (tensor entries, metadata, end of the data the header promises) or raise."""
    if not path.exists():
        raise _bad(path, "LoRA file not found")
    if not path.is_file():
        raise _bad(path, "is not a file; give the .safetensors file the training wrote")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise _bad(path, f"only {size} bytes: not a safetensors file (empty or truncated)")
        (n,) = struct.unpack("<Q", head)
        if n == 0 or n > MAX_HEADER or n > size - 8:
            raise _bad(path, "not a safetensors file (its first 8 bytes are not a header length)")
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _bad(path, "not a safetensors file (the header is not JSON)") from None
    if not isinstance(header, dict):
        raise _bad(path, "not a safetensors file (the header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    end = 0
    for name, entry in header.items():
        try:
            start, stop = entry["data_offsets"]
            entry["dtype"], entry["shape"]  # noqa: B018 - presence check
        except (TypeError, KeyError, ValueError):
            raise _bad(path, f"not a safetensors file (tensor {name!r} has no offsets)") from None
        end = max(end, int(stop))
        if int(start) > int(stop):
            raise _bad(path, f"damaged safetensors header (tensor {name!r})")
    return header, {str(k): str(v) for k, v in dict(metadata).items()}, 8 + n + end


def _rank(header: dict[str, dict], metadata: dict[str, str]) -> int | None:
    dim = metadata.get("ss_network_dim")
    if dim and dim.isdigit():
        return int(dim)
    for name, entry in header.items():
        low = name.lower()
        if ("lora_down" in low or "lora_a" in low) and len(entry["shape"]) >= 2:
            return int(entry["shape"][0])
    return None


def inspect_lora(path: Path | str) -> LoraFile:
    """Refuse what is not a complete LoRA safetensors file, with the reason in one line."""
    path = Path(path)
    header, metadata, needed = read_header(path)
    size = path.stat().st_size
    if size < needed:
        raise _bad(
            path,
            f"truncated: the header promises {needed} bytes but the file has {size}; "
            "copy it again or take it from the training output",
        )
    if not header:
        raise _bad(path, "holds no tensors")
    if not any(m in name.lower() for name in header for m in LORA_MARKERS):
        raise _bad(
            path,
            "holds no LoRA weights (no lora/lokr/loha tensor names): is it a base model "
            "rather than the trained LoRA?",
        )
    digest = file_sha256(path)[0]
    return LoraFile(path, size, len(header), metadata, _rank(header, metadata), digest)
