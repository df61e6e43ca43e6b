"""Count what autograd keeps for the backward pass, on the CPU, for a real architecture.

The architecture is built from its config with random weights (nothing is downloaded); a
training-mode forward runs under `torch.autograd.graph.saved_tensors_hooks`, and every storage
it keeps is counted once, leaving out the model's own parameters. Building the model with one and
with two layers separates the per-layer cost from the rest (embedding, final norm, head, loss).

This is the measurement behind the activation constants shipped in
resources/models/activations.yaml (see bench/fit_activations.py) and behind
`trainwright vram --trace`. torch and transformers are imported only here, lazily.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from trainwright.errors import TrainwrightError

# Canonical LoRA target names -> module-name patterns, per architecture family.
TARGET_PATTERNS: dict[str, dict[str, str]] = {
    "llama": {
        "q": r"\.q_proj$",
        "k": r"\.k_proj$",
        "v": r"\.v_proj$",
        "o": r"\.o_proj$",
        "gate": r"\.gate_proj$",
        "up": r"\.up_proj$",
        "down": r"\.down_proj$",
    },
    "phi": {
        "q": r"\.q_proj$",
        "k": r"\.k_proj$",
        "v": r"\.v_proj$",
        "o": r"self_attn\.dense$",
        "up": r"\.fc1$",
        "down": r"\.fc2$",
    },
    "phi3": {
        "q": r"\.qkv_proj$",
        "k": r"\.qkv_proj$",
        "v": r"\.qkv_proj$",
        "o": r"\.o_proj$",
        "gate": r"\.gate_up_proj$",
        "up": r"\.gate_up_proj$",
        "down": r"\.down_proj$",
    },
    "bert": {
        "q": r"attention\.self\.query$",
        "k": r"attention\.self\.key$",
        "v": r"attention\.self\.value$",
        "o": r"attention\.output\.dense$",
        "up": r"intermediate\.dense$",
        "down": r"layer\.\d+\.output\.dense$",
    },
    "clip": {
        "q": r"\.q_proj$",
        "k": r"\.k_proj$",
        "v": r"\.v_proj$",
        "o": r"\.out_proj$",
        "up": r"mlp\.fc1$",
        "down": r"mlp\.fc2$",
    },
    "diffusers": {
        "q": r"\.to_q$",
        "k": r"\.to_k$",
        "v": r"\.to_v$",
        "o": r"\.to_out\.0$",
    },
}
TARGET_SETS = {
    "qv": ("q", "v"),
    "attn": ("q", "k", "v", "o"),
}
# HF model_type -> family above (the layer code differs; the LoRA names follow these).
FAMILY_OF = {
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "gemma": "llama",
    "gemma2": "llama",
    "phi": "phi",
    "phi3": "phi3",
    "bert": "bert",
    "clip_text_model": "clip",
}


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise TrainwrightError(
            "counting activations needs torch and transformers: pip install 'trainwright[torch]' "
            "transformers"
        ) from None
    return torch


def _transformers() -> Any:
    _torch()
    try:
        import transformers
    except ImportError:
        raise TrainwrightError(
            "counting activations needs transformers: pip install transformers"
        ) from None
    return transformers


def saved_bytes(model: Any, forward: Any) -> int:
    """Bytes of the distinct storages autograd keeps during `forward()`, parameters excluded.

    Storages are told apart by their StorageImpl (`_cdata`), which also works on the meta device
    where every data pointer is 0.
    """
    torch = _torch()
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    params |= {b.untyped_storage()._cdata for b in model.buffers()}
    seen: dict[int, int] = {}
    keep: list[Any] = []

    def pack(t: Any) -> Any:
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in params and key not in seen:
            seen[key] = storage.nbytes()
        keep.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = forward()
    del loss
    keep.clear()
    return sum(seen.values())


@contextlib.contextmanager
def flash_like_sdpa() -> Iterator[None]:
    """Make scaled_dot_product_attention keep what the GPU's fused kernels keep for backward
    (query, key, value, output and a float32 log-sum-exp per head and query), whatever kernel
    this device would pick. On the meta device SDPA otherwise falls back to the math path and
    keeps the full attention matrix, which a flash / memory-efficient kernel never stores."""
    torch = _torch()
    functional = torch.nn.functional
    original = functional.scaled_dot_product_attention

    class _FusedAttention(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, q: Any, k: Any, v: Any, kwargs: dict[str, Any]) -> Any:
            with torch.no_grad():
                out = original(q, k, v, **kwargs)
            lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
            ctx.save_for_backward(q, k, v, out, lse)
            return out

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            raise RuntimeError("traced forward only")

    def patched(*args: Any, **kwargs: Any) -> Any:
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale")
        kwargs.update(zip(names, args, strict=False))
        q, k, v = kwargs.pop("query"), kwargs.pop("key"), kwargs.pop("value")
        return _FusedAttention.apply(q, k, v, kwargs)

    functional.scaled_dot_product_attention = patched
    try:
        yield
    finally:
        functional.scaled_dot_product_attention = original


class LoRALinear:
    """Built lazily (needs torch): the same forward graph as peft's LoRA Linear."""

    @staticmethod
    def make(base: Any, rank: int, alpha: float, dropout: float) -> Any:
        torch = _torch()
        nn = torch.nn

        class _LoRA(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.base_layer = base
                dtype = base.weight.dtype
                self.lora_A = nn.Linear(base.in_features, rank, bias=False, dtype=dtype)
                self.lora_B = nn.Linear(rank, base.out_features, bias=False, dtype=dtype)
                nn.init.zeros_(self.lora_B.weight)
                self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
                self.scaling = alpha / rank

            def forward(self, x: Any) -> Any:
                result = self.base_layer(x)
                return result + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling

        return _LoRA()


def add_lora(
    model: Any, patterns: list[str], rank: int = 8, alpha: float = 16, dropout: float = 0.05
) -> int:
    """Freeze the model and wrap every nn.Linear whose name matches a pattern; return how many."""
    torch = _torch()
    for p in model.parameters():
        p.requires_grad_(False)
    regex = [re.compile(p) for p in patterns]
    targets = [
        (name, mod)
        for name, mod in model.named_modules()
        if isinstance(mod, torch.nn.Linear) and any(r.search(name) for r in regex)
    ]
    for name, mod in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear.make(mod, rank, alpha, dropout))
    return len(targets)


def mark_quantized(model: Any, inside: str) -> int:
    """Make every frozen Linear in the layer stack keep its input, as bitsandbytes' 4-bit matmul
    did (MatMul4Bit saved (A, B) up to bitsandbytes 0.44; later versions keep only B)."""
    torch = _torch()

    class _KeepInput(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, weight: Any, bias: Any) -> Any:
            ctx.save_for_backward(x, weight)
            return torch.nn.functional.linear(x, weight, bias)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            _, weight = ctx.saved_tensors
            return grad @ weight, None, None

    count = 0
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and re.search(inside, name) and "lora_" not in name:
            mod.forward = lambda x, m=mod: _KeepInput.apply(x, m.weight, m.bias)
            count += 1
    return count


def all_linear_patterns(model: Any, inside: str) -> list[str]:
    """Patterns for every Linear inside modules whose name matches `inside` (the layer stack)."""
    torch = _torch()
    names = [
        n
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and re.search(inside, n)
    ]
    return [re.escape(n) + "$" for n in names]


def init_weights(model: Any) -> None:
    torch = _torch()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.02, 0.02)
        for b in model.buffers():
            if b.is_floating_point() and not torch.isfinite(b).all():
                b.zero_()


def build_hf(config: dict[str, Any], layers: int, dtype: str, attention: str) -> Any:
    """An HF model from a config dict with `layers` decoder layers, on the CPU, random weights."""
    torch = _torch()
    tf = _transformers()
    cfg_dict = dict(config)
    model_type = cfg_dict.pop("model_type", None)
    if not model_type:
        raise TrainwrightError("the config has no model_type")
    for key in ("architectures", "torch_dtype", "dtype", "transformers_version", "auto_map"):
        cfg_dict.pop(key, None)
    cfg_dict["num_hidden_layers"] = layers
    if "layer_types" in cfg_dict and isinstance(cfg_dict["layer_types"], list):
        cfg_dict["layer_types"] = cfg_dict["layer_types"][:layers]
    cfg = tf.AutoConfig.for_model(model_type, **cfg_dict)
    cfg._attn_implementation = attention
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    if model_type == "bert":
        cls = tf.AutoModelForSequenceClassification
    elif model_type == "clip_text_model":
        cls = tf.CLIPTextModel
    else:
        cls = tf.AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    with no_init_weights():
        if cls.__name__.startswith("Auto"):
            model = cls.from_config(cfg, dtype=torch_dtype)
        else:
            model = cls._from_config(cfg, dtype=torch_dtype)
    init_weights(model)
    return model


@dataclass
class Trace:
    per_layer: float  # bytes per token per layer
    rest: float  # bytes per token outside the layer stack (embedding, head, loss)
    seq: int
    adapters: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "per_layer_bytes_per_token": round(self.per_layer, 1),
            "rest_bytes_per_token": round(self.rest, 1),
            "seq": self.seq,
            "lora_modules_per_layer": self.adapters,
        }


def _forward(model: Any, model_type: str, seq: int, vocab: int) -> Any:
    torch = _torch()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (1, seq), generator=gen)
    if model_type == "bert":
        return lambda: model(input_ids=ids, labels=torch.tensor([1])).loss
    if model_type == "clip_text_model":
        return lambda: model(input_ids=ids).last_hidden_state.float().pow(2).mean()
    return lambda: model(input_ids=ids, labels=ids).loss


LAYER_STACK = r"(layers|layer|h|blocks)\.\d+\."


def lora_patterns(model: Any, family: str, targets: str) -> list[str]:
    if targets == "all":
        return all_linear_patterns(model, LAYER_STACK)
    names = TARGET_SETS.get(targets) or tuple(targets.split(","))
    table = TARGET_PATTERNS[family]
    return sorted({table[n] for n in names if n in table})


def trace_hf(
    config: dict[str, Any],
    *,
    method: str = "lora",
    targets: str = "qv",
    dropout: float = 0.05,
    gc: bool = False,
    dtype: str = "bf16",
    attention: str = "sdpa",
    seq: int = 64,
) -> Trace:
    """Per-layer and per-token bytes kept for backward, from 1- and 2-layer builds."""
    torch = _torch()
    model_type = config.get("model_type", "")
    family = FAMILY_OF.get(model_type)
    if family is None:
        raise TrainwrightError(
            f"tracing knows model types {', '.join(sorted(FAMILY_OF))}, not {model_type!r}"
        )
    vocab = int(config.get("vocab_size", 1000))
    counts, adapters = [], 0
    torch.manual_seed(0)
    for layers in (1, 2):
        model = build_hf(config, layers, dtype, attention)
        if method == "full":
            for p in model.parameters():
                p.requires_grad_(True)
        else:
            adapters = add_lora(model, lora_patterns(model, family, targets), dropout=dropout)
            if method == "qlora":
                mark_quantized(model, LAYER_STACK)
        if gc:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        model.train()
        counts.append(saved_bytes(model, _forward(model, model_type, seq, vocab)))
        del model
    per_layer = (counts[1] - counts[0]) / seq
    rest = counts[0] / seq - per_layer
    return Trace(per_layer, rest, seq, adapters)
