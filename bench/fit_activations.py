"""Fit the activation constants that `trainwright vram` ships, by tracing real architectures.

Run by hand (needs torch, transformers, diffusers; about 30-60 minutes on 2 CPU cores):

    .venv/bin/python bench/fit_activations.py [--only llama,bert] [--images] [--out PATH]

For each token model family it builds small configs of the real architecture (transformers model
classes, random weights, CPU) with 1 and 2 layers, counts the bytes autograd keeps for backward
(trainwright.hardware.trace), and solves for bytes per token per layer as a linear function of
the layer's sizes (hidden, query width, key/value width, MLP width, heads, heads x sequence length
for eager attention). Saved tensors are exact multiples of these sizes, so the fit is exact up to
a few bytes; the residual is recorded. One check at real Llama-2-7B sizes is recorded too.

For image models (--images) it traces the diffusers UNet / DiT blocks at two or three latent
sizes and fits bytes per latent pixel (see image_fits below).

The output is resources/models/activations.yaml; the estimator reads only that file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from trainwright.hardware import trace  # noqa: E402

LAYER_FEATURES = ["hidden", "q_dim", "kv_dim", "intermediate", "heads", "heads_x_seq"]
REST_FEATURES = ["hidden", "vocab", "head_dim", "one"]

MODES = {
    "full": {"method": "full"},
    "lora-qv": {"method": "lora", "targets": "qv", "dropout": 0.05},
    "lora-attn": {"method": "lora", "targets": "attn", "dropout": 0.05},
    "lora-all": {"method": "lora", "targets": "all", "dropout": 0.05},
    "lora-qv-nodrop": {"method": "lora", "targets": "qv", "dropout": 0.0},
    "lora-attn-nodrop": {"method": "lora", "targets": "attn", "dropout": 0.0},
    "lora-all-nodrop": {"method": "lora", "targets": "all", "dropout": 0.0},
    "qlora-qv": {"method": "qlora", "targets": "qv", "dropout": 0.05},
    "qlora-attn": {"method": "qlora", "targets": "attn", "dropout": 0.05},
    "qlora-all": {"method": "qlora", "targets": "all", "dropout": 0.05},
}


def _config(model_type: str, rng: random.Random) -> dict[str, Any]:
    heads = rng.choice([2, 4, 8])
    kv = rng.choice([d for d in (1, 2, 4, 8) if heads % d == 0])
    head_dim = rng.choice([16, 32, 48])
    hidden = rng.choice([128, 192, 256, 320, 384])
    inter = rng.choice([256, 352, 512, 640, 768])
    vocab = rng.choice([512, 768, 1024, 1536])
    base: dict[str, Any] = {
        "model_type": model_type,
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_attention_heads": heads,
        "vocab_size": vocab,
        "max_position_embeddings": 512,
    }
    if model_type in ("llama", "mistral", "qwen2", "gemma2", "phi3"):
        base["num_key_value_heads"] = kv
    if model_type in ("llama", "mistral", "gemma2"):
        base["head_dim"] = head_dim
    if model_type in ("qwen2", "phi", "phi3", "bert", "clip_text_model"):
        base["hidden_size"] = heads * head_dim  # these derive head_dim = hidden / heads
    if model_type == "phi":
        # fused tanh-GELU, as LitGPT and torch-native trainers run it (HF's "gelu_new" is the
        # same function written out in Python, which keeps ~3 more MLP-wide tensors)
        base.update(num_key_value_heads=heads, hidden_act="gelu_pytorch_tanh")
    if model_type == "phi3":
        base.update(pad_token_id=0, bos_token_id=1, eos_token_id=2)
    if model_type == "gemma2":
        base.update(query_pre_attn_scalar=head_dim, sliding_window=32, pad_token_id=0)
    if model_type == "clip_text_model":
        base.update(max_position_embeddings=77, eos_token_id=2, bos_token_id=1, pad_token_id=1)
    return base


def _features(cfg: dict[str, Any], seq: int) -> tuple[list[float], list[float]]:
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    kv = cfg.get("num_key_value_heads") or heads
    layer = [cfg["hidden_size"], heads * head_dim, kv * head_dim, cfg["intermediate_size"]]
    layer += [heads, heads * seq]
    rest = [cfg["hidden_size"], cfg["vocab_size"], head_dim, 1]
    return layer, rest


def _solve(
    rows: list[list[float]], ys: list[float], scale: list[float]
) -> tuple[list[float], float]:
    """Least squares; the residual is the worst error relative to `scale` (a layer's bytes)."""
    a, y = np.array(rows, dtype=float), np.array(ys, dtype=float)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    resid = float(np.max(np.abs(a @ coef - y) / np.maximum(np.abs(scale), 1.0)))
    return [round(float(c), 4) for c in coef], round(resid, 5)


def fit_token_model(model_type: str, n_configs: int, combos: list[str], modes: list[str]) -> dict:
    rng = random.Random(1234)
    configs = [_config(model_type, rng) for _ in range(n_configs)]
    seqs = [32, 64]
    fits: dict[str, Any] = {}
    for combo, mode in itertools.product(combos, modes):
        dtype, attn = combo.split("/")
        kw = MODES[mode]
        if mode.startswith("qlora") and dtype == "fp32":
            continue
        # With checkpointing a layer keeps only its input, whatever the adapters: GC is traced
        # for full and lora-qv only; the estimator uses lora-qv's for every adapter mode.
        for gc in (False, True) if mode in ("full", "lora-qv") else (False,):
            lrows, lys, rrows, rys = [], [], [], []
            for i, cfg in enumerate(configs):
                seq = seqs[i % 2]
                t = trace.trace_hf(cfg, gc=gc, dtype=dtype, attention=attn, seq=seq, **kw)
                lf, rf = _features(cfg, seq)
                lrows.append(lf)
                lys.append(t.per_layer)
                rrows.append(rf)
                rys.append(t.rest)
            lc, lres = _solve(lrows, lys, lys)
            rc, rres = _solve(rrows, rys, [a + b for a, b in zip(lys, rys, strict=True)])
            key = f"{dtype}/{attn}/{mode}"
            entry = fits.setdefault(key, {})
            prefix = "gc_" if gc else ""
            entry[prefix + "layer"] = dict(zip(LAYER_FEATURES, lc, strict=True))
            entry[prefix + "rest"] = dict(zip(REST_FEATURES, rc, strict=True))
            entry[prefix + "residual"] = max(lres, rres)
        print(f"  {model_type} {dtype}/{attn}/{mode}: {fits[f'{dtype}/{attn}/{mode}']}", flush=True)
    return fits


TOKEN_MODELS = {
    # model_type: (dtype/attention combinations traced, modes traced). Combinations not traced
    # fall back in the estimator to the same family's bf16/sdpa fit scaled by llama's ratio.
    "llama": (["bf16/sdpa", "fp32/sdpa", "bf16/eager", "fp32/eager"], list(MODES)),
    "mistral": (["bf16/sdpa"], list(MODES)),
    "qwen2": (["bf16/sdpa"], list(MODES)),
    "gemma2": (["bf16/eager"], list(MODES)),  # transformers has no SDPA path for Gemma 2
    "phi": (["bf16/sdpa"], list(MODES)),
    "phi3": (["bf16/sdpa"], list(MODES)),
    "bert": (["fp32/eager", "bf16/sdpa"], ["full", "lora-qv", "lora-all", "lora-qv-nodrop"]),
    "clip_text_model": (["bf16/sdpa", "fp32/eager"], ["lora-qv-nodrop", "lora-attn-nodrop"]),
}


def check_at_scale() -> dict[str, Any]:
    """One trace at real Llama-2-7B layer sizes, to show the small-config fit extrapolates."""
    cfg = {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 32000,
    }
    out = {}
    for mode in ("full", "lora-qv"):
        t = trace.trace_hf(cfg, seq=64, **MODES[mode])
        out[mode] = t.as_dict()
    return {"config": cfg, "traced": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated model types")
    ap.add_argument("--images", action="store_true", help="also fit the image models")
    ap.add_argument("--no-tokens", action="store_true")
    ap.add_argument("--configs", type=int, default=10)
    ap.add_argument("--out", type=Path, default=REPO / "resources/models/activations.yaml")
    args = ap.parse_args()
    import torch

    data: dict[str, Any] = {}
    if args.out.exists():
        data = yaml.safe_load(args.out.read_text()) or {}
    data.setdefault("token_models", {})
    data["generated_by"] = "bench/fit_activations.py"
    data["generated"] = dt.date.today().isoformat()
    only = {s for s in args.only.split(",") if s}
    # Record the version of each library this run traced with; a tiny-only refit needs neither
    # transformers nor diffusers and leaves their recorded versions as they were.
    tools = data.setdefault("tools", {})
    tools["torch"] = str(torch.__version__)
    if not args.no_tokens:
        import transformers

        tools["transformers"] = str(transformers.__version__)
    if args.images and only != {"tiny-unet"}:
        import diffusers

        tools["diffusers"] = str(diffusers.__version__)
    data["layer_features"] = LAYER_FEATURES
    data["rest_features"] = REST_FEATURES
    start = time.time()
    if not args.no_tokens:
        for model_type, (combos, modes) in TOKEN_MODELS.items():
            if only and model_type not in only:
                continue
            print(f"fitting {model_type}", flush=True)
            data["token_models"][model_type] = fit_token_model(
                model_type, args.configs, combos, modes
            )
            args.out.write_text(_dump(data))
        if not only or "scale" in only:
            data["scale_check"] = check_at_scale()
    if args.images:
        from image_fits import fit_images  # bench/image_fits.py

        data.setdefault("image_models", {}).update(fit_images(only))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_dump(data))
    print(f"wrote {args.out} in {time.time() - start:.0f} s")


def _dump(data: dict[str, Any]) -> str:
    head = (
        "# Activation constants for trainwright vram. GENERATED by bench/fit_activations.py from\n"
        "# traces of the real architectures (see resources/environment/vram-calculator.md).\n"
        "# Do not edit by hand: rerun the script.\n"
    )
    return head + yaml.safe_dump(data, sort_keys=False, width=100)


if __name__ == "__main__":
    main()
