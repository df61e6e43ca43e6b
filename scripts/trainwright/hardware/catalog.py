"""The model catalog (resources/models/catalog.yaml) and a user's own Hugging Face config.json."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from trainwright import pack
from trainwright.errors import TrainwrightError

CATALOG = "resources/models/catalog.yaml"
SCHEMA = "resources/models/catalog.schema.json"

# HF model_type -> activation profile; the families a --hf-config may be.
HF_PROFILES = {
    "llama": "llama",
    "mistral": "mistral",
    "qwen2": "qwen2",
    "gemma": "llama",
    "gemma2": "gemma2",
    "phi": "phi",
    "phi3": "phi3",
    "bert": "bert",
}
REQUIRED_HF_KEYS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
)


@dataclass(frozen=True)
class Part:
    name: str
    role: str  # denoiser | text_encoder | vae | decoder
    profile: str | None = None
    params: int = 0
    model_type: str | None = None
    layers: int | None = None
    hidden: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    intermediate: int | None = None
    vocab: int | None = None
    tokens: int | None = None
    tied_embeddings: bool = False
    qkv_bias: bool = False
    partial_rotary_factor: float | None = None
    max_positions: int | None = None
    channels: tuple[int, ...] = ()

    @property
    def head_size(self) -> int:
        if self.head_dim:
            return self.head_dim
        return (self.hidden or 0) // (self.heads or 1)

    @property
    def q_dim(self) -> int:
        return (self.heads or 0) * self.head_size

    @property
    def kv_dim(self) -> int:
        return (self.kv_heads or self.heads or 0) * self.head_size

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer in one block, by canonical LoRA target name."""
        h, i = self.hidden or 0, self.intermediate or 0
        shapes = {
            "q": (h, self.q_dim),
            "k": (h, self.kv_dim),
            "v": (h, self.kv_dim),
            "o": (self.q_dim, h),
            "up": (h, i),
            "down": (i, h),
        }
        if self.model_type not in ("phi", "bert", None) or self.profile == "t5":
            shapes["gate"] = (h, i)
        return shapes


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    kind: str  # image | llm | encoder
    source: str
    parts: dict[str, Part]
    family: str | None = None
    aliases: tuple[str, ...] = ()
    resolution: int | None = None
    resolution_multiple: int | None = None
    latent_channels: int | None = None
    latent_factor: int | None = None
    patch: int | None = None
    double_blocks: int = 0
    single_blocks: int = 0
    dual_blocks: int = 0
    text_tokens: int | None = None
    max_seq_len: int | None = None
    attention: str = "sdpa"
    caption_style: str | None = None
    # per-trainer facts, keyed by backend name (a catalog entry's mapping that is not a field:
    # e.g. a trainer's model builder and checkpoint layout); read with for_trainer()
    trainers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_trainer(self, backend: str) -> dict[str, Any]:
        return dict(self.trainers.get(backend) or {})

    @property
    def is_image(self) -> bool:
        return self.kind == "image"

    def part(self, role: str) -> Part:
        for p in self.parts.values():
            if p.role == role:
                return p
        raise TrainwrightError(f"{self.id} has no {role}")

    @property
    def main(self) -> Part:
        """The part that is trained: the denoiser of an image model, the decoder of an LLM."""
        return self.part("denoiser" if self.is_image else "decoder")

    def roles(self, role: str) -> list[Part]:
        return [p for p in self.parts.values() if p.role == role]

    @property
    def params(self) -> int:
        return sum(p.params for p in self.parts.values())


def _part(name: str, raw: dict[str, Any]) -> Part:
    known = {f.name for f in fields(Part)}
    data = {k: v for k, v in raw.items() if k in known}
    if "channels" in data:
        data["channels"] = tuple(data["channels"])
    return Part(name=name, **data)


class Catalog:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self._models: dict[str, Model] = {}
        self._alias: dict[str, str] = {}
        for model_id in raw["models"]:
            model = self._build(model_id)
            self._models[model_id] = model
            for name in (model_id, model.name, *model.aliases):
                self._alias.setdefault(name.lower(), model_id)

    def _merged(self, model_id: str) -> dict[str, Any]:
        entry = dict(self.raw["models"][model_id])
        parent_id = entry.pop("derives", None)
        if not parent_id:
            return entry
        parent = self._merged(parent_id)
        parts = {**parent.get("parts", {})}
        for name, part in (entry.get("parts") or {}).items():
            parts[name] = {**parts.get(name, {}), **part}
        merged = {**parent, **entry, "parts": parts}
        merged["aliases"] = entry.get("aliases", [])
        return merged

    def _build(self, model_id: str) -> Model:
        e = self._merged(model_id)
        known = {f.name for f in fields(Model)} - {"id", "parts", "aliases", "trainers"}
        kwargs = {k: v for k, v in e.items() if k in known}
        trainers = {
            k: dict(v)
            for k, v in e.items()
            if k not in known and k not in ("id", "parts", "aliases") and isinstance(v, dict)
        }
        parts = {n: _part(n, p) for n, p in e["parts"].items()}
        return Model(
            id=model_id,
            parts=parts,
            aliases=tuple(e.get("aliases", [])),
            trainers=trainers,
            **kwargs,
        )

    def ids(self) -> list[str]:
        return list(self._models)

    def names(self) -> list[str]:
        return sorted(self._alias)

    def get(self, name: str) -> Model:
        model_id = self._alias.get(name.strip().lower())
        if model_id is None:
            close = difflib.get_close_matches(name.lower(), self.names(), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise TrainwrightError(
                f"unknown model '{name}'{hint} (see 'trainwright vram --list-models', "
                "or pass --hf-config path/to/config.json)"
            )
        return self._models[model_id]


@lru_cache(maxsize=1)
def load() -> Catalog:
    raw = yaml.safe_load(pack.read_text(CATALOG))
    schema = json.loads(pack.read_text(SCHEMA))
    try:
        jsonschema.validate(raw, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise TrainwrightError(f"{CATALOG}: {where}: {exc.message}") from None
    return Catalog(raw)


def decoder_params(p: Part) -> int:
    """Closed-form parameter count of a decoder (or BERT encoder) from its sizes."""
    h, i, v, n = p.hidden or 0, p.intermediate or 0, p.vocab or 0, p.layers or 0
    q, kv = p.q_dim, p.kv_dim
    if p.model_type == "bert":
        emb = v * h + (p.max_positions or 512) * h + 2 * h + 2 * h
        layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h
        return emb + n * layer + (h * h + h) + (2 * h + 2)
    if p.model_type == "phi":
        layer = 3 * (h * q + q) + (q * h + h) + (h * i + i) + (i * h + h) + 2 * h
        return v * h + n * layer + 2 * h + (v * h + v)
    attn = h * q + 2 * h * kv + q * h + (q + 2 * kv if p.qkv_bias else 0)
    norms = 4 * h if p.model_type == "gemma2" else 2 * h
    layer = attn + 3 * h * i + norms
    head = 0 if p.tied_embeddings else v * h
    return v * h + n * layer + h + head


def from_hf_config(path: Path | str) -> Model:
    """A Model from a local Hugging Face config.json (Llama-, Mistral-, Qwen2-, Gemma-, Phi-,
    BERT-style). Nothing is fetched."""
    path = Path(path)
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainwrightError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainwrightError(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise TrainwrightError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(cfg, dict):
        raise TrainwrightError(f"{path}: expected a JSON object")
    cfg = {**cfg, **(cfg.get("text_config") or {})}
    model_type = cfg.get("model_type")
    if model_type not in HF_PROFILES:
        known = ", ".join(sorted(HF_PROFILES))
        raise TrainwrightError(
            f"{path}: model_type {model_type!r} is not one the estimator knows ({known})"
        )
    missing = [k for k in REQUIRED_HF_KEYS if not isinstance(cfg.get(k), int) or cfg[k] <= 0]
    if missing:
        raise TrainwrightError(
            f"{path}: config.json is missing or has a non-positive {', '.join(missing)}"
        )
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    tied_default = model_type in ("gemma", "gemma2", "bert")
    part = Part(
        name="decoder",
        role="decoder",
        profile=HF_PROFILES[model_type],
        model_type=model_type,
        layers=cfg["num_hidden_layers"],
        hidden=cfg["hidden_size"],
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate=cfg["intermediate_size"],
        vocab=cfg["vocab_size"],
        tied_embeddings=bool(cfg.get("tie_word_embeddings", tied_default)),
        qkv_bias=model_type == "qwen2" or bool(cfg.get("attention_bias")),
        partial_rotary_factor=cfg.get("partial_rotary_factor"),
        max_positions=cfg.get("max_position_embeddings"),
    )
    part = Part(**{**part.__dict__, "params": decoder_params(part)})
    attention = "eager" if model_type in ("gemma2", "bert") else "sdpa"
    return Model(
        id=str(path),
        name=f"{model_type} from {path.name}",
        kind="encoder" if model_type == "bert" else "llm",
        source=str(path),
        parts={"decoder": part},
        max_seq_len=cfg.get("max_position_embeddings"),
        attention=attention,
    )


def hf_config(part: Part) -> dict[str, Any]:
    """The transformers config dict for a decoder part (used to trace or build it)."""
    cfg: dict[str, Any] = {
        "model_type": part.model_type,
        "hidden_size": part.hidden,
        "num_hidden_layers": part.layers,
        "num_attention_heads": part.heads,
        "num_key_value_heads": part.kv_heads,
        "intermediate_size": part.intermediate,
        "vocab_size": part.vocab,
        "tie_word_embeddings": part.tied_embeddings,
    }
    if part.model_type in ("llama", "mistral", "gemma2", "gemma", "phi3"):
        cfg["head_dim"] = part.head_dim
    if part.model_type == "gemma2":
        cfg["query_pre_attn_scalar"] = part.head_dim
    if part.model_type == "phi" and part.partial_rotary_factor:
        cfg["partial_rotary_factor"] = part.partial_rotary_factor
    if part.model_type == "phi3":
        cfg.update(pad_token_id=part.vocab - 1)
    if part.model_type == "bert":
        cfg.pop("num_key_value_heads")
        cfg["max_position_embeddings"] = part.max_positions or 512
    return cfg
