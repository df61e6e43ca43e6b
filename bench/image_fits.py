"""Activation fits for the image models: diffusers UNets (SD 1.x, SDXL) and DiTs (FLUX.1, SD3.5).

Called by bench/fit_activations.py --images. The UNets are traced whole at real sizes at three
latent sizes (bytes = a * latent_pixels + b * latent_pixels^2 + c per image; b is about zero
with SDPA and carries the attention scores with eager attention). The DiTs are traced with one
and two double / single blocks at real widths, at two image-token and two text-token counts, and
solved for bytes per token per block; the full model is then those costs times its block counts.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from trainwright.hardware import trace

UNETS: dict[str, dict[str, Any]] = {
    "unet-sd15": {
        "config": {
            "sample_size": 64,
            "in_channels": 4,
            "out_channels": 4,
            "cross_attention_dim": 768,
            "attention_head_dim": 8,
            "block_out_channels": [320, 640, 1280, 1280],
            "layers_per_block": 2,
        },
        "text_tokens": 77,
        # the widest self-attention: 8 heads over every latent pixel (level 0)
        "largest_attention": {"heads": 8, "downsample": 1},
        "dtypes": ["bf16", "fp32"],
        "attentions": ["sdpa", "eager"],
        "latents": [16, 24, 32],
    },
    "unet-sdxl": {
        "config": {
            "sample_size": 128,
            "in_channels": 4,
            "out_channels": 4,
            "addition_embed_type": "text_time",
            "addition_embed_type_num_heads": 64,
            "addition_time_embed_dim": 256,
            "attention_head_dim": [5, 10, 20],
            "block_out_channels": [320, 640, 1280],
            "cross_attention_dim": 2048,
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            "layers_per_block": 2,
            "projection_class_embeddings_input_dim": 2816,
            "transformer_layers_per_block": [1, 2, 10],
            "use_linear_projection": True,
        },
        "text_tokens": 77,
        # level 0 has no attention; level 1 runs 10 heads (640 / 64) over a quarter of the pixels
        "largest_attention": {"heads": 10, "downsample": 2},
        "dtypes": ["bf16"],
        "attentions": ["sdpa", "eager"],
        "latents": [16, 24, 32],
    },
}

DITS: dict[str, dict[str, Any]] = {
    "flux": {
        "class": "FluxTransformer2DModel",
        "config": {
            "patch_size": 1,
            "in_channels": 64,
            "attention_head_dim": 128,
            "num_attention_heads": 24,
            "joint_attention_dim": 4096,
            "pooled_projection_dim": 768,
            "guidance_embeds": True,
            "axes_dims_rope": [16, 56, 56],
        },
        "double": "num_layers",
        "single": "num_single_layers",
        "full_size": {"num_layers": 19, "num_single_layers": 38},
    },
    "sd3": {
        "class": "SD3Transformer2DModel",
        "config": {
            "sample_size": 128,
            "patch_size": 2,
            "in_channels": 16,
            "out_channels": 16,
            "attention_head_dim": 64,
            "num_attention_heads": 24,
            "joint_attention_dim": 4096,
            "caption_projection_dim": 1536,
            "pooled_projection_dim": 2048,
            "pos_embed_max_size": 384,
            "qk_norm": "rms_norm",
        },
        "double": "num_layers",
        "single": None,
        "dual": "dual_attention_layers",
        "full_size": {"num_layers": 24, "dual_attention_layers": tuple(range(13))},
    },
    "sd3-large": {
        "class": "SD3Transformer2DModel",
        "config": {
            "sample_size": 128,
            "patch_size": 2,
            "in_channels": 16,
            "out_channels": 16,
            "attention_head_dim": 64,
            "num_attention_heads": 38,
            "joint_attention_dim": 4096,
            "caption_projection_dim": 2432,
            "pooled_projection_dim": 2048,
            "pos_embed_max_size": 192,
            "qk_norm": "rms_norm",
        },
        "double": "num_layers",
        "single": None,
        "full_size": {"num_layers": 38},
    },
}

IMAGE_MODES = {
    "full": {"method": "full"},
    "lora-qv": {"method": "lora", "targets": "qv"},
    "lora-attn": {"method": "lora", "targets": "attn"},
    "lora-all": {"method": "lora", "targets": "all"},
}
ATTN_PATTERNS = {
    "qv": [r"\.to_q$", r"\.to_v$"],
    "attn": [
        r"\.to_q$",
        r"\.to_k$",
        r"\.to_v$",
        r"\.to_out\.0$",
        r"\.add_q_proj$",
        r"\.add_k_proj$",
        r"\.add_v_proj$",
        r"\.to_add_out$",
    ],
}
BLOCK_STACK = r"(attentions\.\d+\.|transformer_blocks\.\d+\.|single_transformer_blocks\.\d+\.)"


def _torch() -> Any:
    import torch

    return torch


def _dtype(name: str) -> Any:
    torch = _torch()
    return {"bf16": torch.bfloat16, "fp32": torch.float32}[name]


def _empty_model(cls: Any, config: dict[str, Any], dtype: str) -> Any:
    """The model on the meta device: shapes and dtypes only, so tracing is fast and needs no
    memory; SDPA is traced through trace.flash_like_sdpa()."""
    torch = _torch()
    with torch.device("meta"):
        return cls(**config).to(_dtype(dtype))


def _saved(model: Any, run: Any, attention: str) -> int:
    import contextlib

    torch = _torch()
    fused = trace.flash_like_sdpa() if attention == "sdpa" else contextlib.nullcontext()
    with torch.device("meta"), fused:
        return trace.saved_bytes(model, run)


def lora_params_per_rank(model: Any) -> dict[str, int]:
    """LoRA parameters at rank 1 (in + out of every targeted Linear) per target set."""
    torch = _torch()
    out = {}
    for targets in ("qv", "attn", "all"):
        import re as _re

        pats = (
            trace.all_linear_patterns(model, BLOCK_STACK)
            if targets == "all"
            else ATTN_PATTERNS[targets]
        )
        regex = [_re.compile(p) for p in pats]
        out[targets] = sum(
            m.in_features + m.out_features
            for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and any(r.search(n) for r in regex)
        )
    return out


def _prepare(model: Any, mode: str, attention: str, gc: bool) -> None:
    torch = _torch()
    if attention == "eager":
        from diffusers.models.attention_processor import AttnProcessor

        if hasattr(model, "set_attn_processor"):
            model.set_attn_processor(AttnProcessor())
    spec = IMAGE_MODES[mode]
    if spec["method"] == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        targets = spec["targets"]
        if targets == "all":
            patterns = trace.all_linear_patterns(model, BLOCK_STACK)
        else:
            patterns = ATTN_PATTERNS[targets]
        trace.add_lora(model, patterns, rank=16, alpha=16, dropout=0.0)
    if gc:
        model.enable_gradient_checkpointing()
    model.train()
    del torch


def _unet_forward(model: Any, latent: int, tokens: int, dtype: str, sdxl: bool) -> Any:
    torch = _torch()
    dt, meta = _dtype(dtype), "meta"
    x = torch.empty(1, 4, latent, latent, dtype=dt, device=meta)
    ctx = torch.empty(1, tokens, model.config.cross_attention_dim, dtype=dt, device=meta)
    t = torch.tensor([500], device=meta)
    kwargs = {}
    if sdxl:
        kwargs["added_cond_kwargs"] = {
            "text_embeds": torch.empty(1, 1280, dtype=dt, device=meta),
            "time_ids": torch.empty(1, 6, dtype=dt, device=meta),
        }

    def run() -> Any:
        out = model(x, t, encoder_hidden_states=ctx, **kwargs).sample
        return torch.nn.functional.mse_loss(out.float(), x.float())

    return run


def fit_unet(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    from diffusers import UNet2DConditionModel

    fits: dict[str, Any] = {}
    sdxl = "addition_embed_type" in spec["config"]
    for dtype in spec["dtypes"]:
        for attention, mode, gc in itertools.product(
            spec["attentions"], IMAGE_MODES, (False, True)
        ):
            ys, rows = [], []
            for lat in spec["latents"]:
                model = _empty_model(UNet2DConditionModel, spec["config"], dtype)
                _prepare(model, mode, attention, gc)
                run = _unet_forward(model, lat, spec["text_tokens"], dtype, sdxl)
                ys.append(_saved(model, run, attention))
                p = lat * lat
                rows.append([p, p * p, 1])
                del model
            coef = np.linalg.solve(np.array(rows, float), np.array(ys, float))
            key = f"{dtype}/{attention}/{mode}"
            entry = fits.setdefault(key, {})
            prefix = "gc_" if gc else ""
            entry[prefix + "per_latent_pixel"] = round(float(coef[0]), 2)
            entry[prefix + "per_latent_pixel_sq"] = round(float(coef[1]), 5)
            entry[prefix + "fixed"] = round(float(coef[2]), 0)
            print(f"  {name} {key} gc={gc}: {coef}", flush=True)
    full = _empty_model(UNet2DConditionModel, spec["config"], "bf16")
    return {
        "kind": "unet",
        "text_tokens": spec["text_tokens"],
        "largest_attention": spec["largest_attention"],
        "lora_params_per_rank": lora_params_per_rank(full),
        "fits": fits,
    }


def _dit_forward(model: Any, kind: str, img_tokens: int, txt_tokens: int, dtype: str) -> Any:
    torch = _torch()
    dt, meta = _dtype(dtype), "meta"
    cfg = model.config
    side = int(img_tokens**0.5)
    if kind == "FluxTransformer2DModel":
        x = torch.empty(1, img_tokens, cfg.in_channels, dtype=dt, device=meta)
        ctx = torch.empty(1, txt_tokens, cfg.joint_attention_dim, dtype=dt, device=meta)
        pooled = torch.empty(1, cfg.pooled_projection_dim, dtype=dt, device=meta)
        img_ids = torch.empty(img_tokens, 3, device=meta)
        txt_ids = torch.empty(txt_tokens, 3, device=meta)

        def run() -> Any:
            out = model(
                hidden_states=x,
                encoder_hidden_states=ctx,
                pooled_projections=pooled,
                timestep=torch.empty(1, dtype=dt, device=meta),
                img_ids=img_ids,
                txt_ids=txt_ids,
                guidance=torch.empty(1, dtype=dt, device=meta),
            ).sample
            return torch.nn.functional.mse_loss(out.float(), x.float())

        return run
    patch = cfg.patch_size
    x = torch.empty(1, cfg.in_channels, side * patch, side * patch, dtype=dt, device=meta)
    ctx = torch.empty(1, txt_tokens, cfg.joint_attention_dim, dtype=dt, device=meta)
    pooled = torch.empty(1, cfg.pooled_projection_dim, dtype=dt, device=meta)

    def run_sd3() -> Any:
        out = model(
            hidden_states=x,
            encoder_hidden_states=ctx,
            pooled_projections=pooled,
            timestep=torch.empty(1, device=meta),
        ).sample
        return torch.nn.functional.mse_loss(out.float(), x.float())

    return run_sd3


def fit_dit(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    import diffusers

    cls = getattr(diffusers, spec["class"])
    dtype, attention = "bf16", "sdpa"
    # (double, single, dual) block counts; SD3 has no single blocks; medium's dual blocks
    # (an extra self-attention in the first 13) are traced as their own kind.
    if spec["single"]:
        layouts = [(1, 1, 0), (2, 1, 0), (1, 2, 0)]
    elif spec.get("dual"):
        layouts = [(1, 0, 0), (2, 0, 0), (2, 0, 1)]
    else:
        layouts = [(1, 0, 0), (2, 0, 0)]
    tokens = [(64, 16), (256, 16), (64, 48)]
    fits: dict[str, Any] = {}
    for mode, gc in itertools.product(IMAGE_MODES, (False, True)):
        rows, ys = [], []
        for (d, s, dual), (ni, nt) in itertools.product(layouts, tokens):
            cfg = dict(spec["config"])
            cfg[spec["double"]] = d
            if spec["single"]:
                cfg[spec["single"]] = s
            if spec.get("dual"):
                cfg[spec["dual"]] = tuple(range(dual))
            model = _empty_model(cls, cfg, dtype)
            _prepare(model, mode, attention, gc)
            ys.append(_saved(model, _dit_forward(model, spec["class"], ni, nt, dtype), attention))
            n = ni + nt
            plain = d - dual
            rows.append([plain * n, s * n, dual * n, ni, nt, 1])
            del model
        a, y = np.array(rows, float), np.array(ys, float)
        keep = [i for i in range(a.shape[1]) if np.any(a[:, i])]
        coef = np.zeros(a.shape[1])
        coef[keep], *_ = np.linalg.lstsq(a[:, keep], y, rcond=None)
        resid = float(np.max(np.abs(a @ coef - y) / y))
        names = [
            "double_block_per_token",
            "single_block_per_token",
            "dual_block_per_token",
            "rest_per_image_token",
            "rest_per_text_token",
            "fixed",
        ]
        key = f"{dtype}/{attention}/{mode}"
        entry = fits.setdefault(key, {})
        prefix = "gc_" if gc else ""
        for n_, c in zip(names, coef, strict=True):
            entry[prefix + n_] = round(float(c), 1)
        entry[prefix + "residual"] = round(resid, 5)
        shown = dict(zip(names, coef.round(1), strict=True))
        print(f"  {name} {key} gc={gc}: {shown} r={resid:.4f}", flush=True)
    cfg = dict(spec["config"])
    cfg.update(spec.get("full_size", {}))
    full = _empty_model(cls, cfg, dtype)
    heads = spec["config"]["num_attention_heads"]
    return {
        "kind": "dit",
        "largest_attention": {"heads": heads, "downsample": 1},
        "lora_params_per_rank": lora_params_per_rank(full),
        "fits": fits,
    }


def fit_images(only: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not only or "tiny-unet" in only:
        print("fitting tiny-unet", flush=True)
        out["tiny-unet"] = fit_tiny()
    for name, spec in UNETS.items():
        if not only or name in only:
            print(f"fitting {name}", flush=True)
            out[name] = fit_unet(name, spec)
    for name, spec in DITS.items():
        if not only or name in only:
            print(f"fitting {name}", flush=True)
            out[name] = fit_dit(name, spec)
    return out


# --- the embedded tiny backend's denoiser (backends/tiny_model) -------------------------------
# Traced whole, with real weights on the CPU, at three image sides (it works on pixels: no VAE,
# latent factor 1), for a full fine-tune and for the LoRA the trainer injects (every Conv2d /
# Linear outside the time projection; it has no attention and no gradient checkpointing).
TINY = {"sides": [16, 32, 48], "dtypes": ["fp32"], "rank": 16}  # it trains in fp32 only
TINY_TRAINER_PROBE = """
import sys
from trainwright.backends.tiny_model.train import main
from trainwright.hardware.process_memory import own_peak_bytes
main([sys.argv[1], "--max-steps", "3", "--no-save"])
print(own_peak_bytes())
"""


def _tiny_model(mode: str, dtype: str) -> Any:
    from trainwright.backends.tiny_model import lora
    from trainwright.backends.tiny_model.model import TinyDenoiser

    torch = _torch()
    torch.manual_seed(0)
    model = TinyDenoiser()
    if mode == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        lora.inject(model, TINY["rank"], TINY["rank"])
    return model.to(_dtype(dtype)).train()


def _run_probe(code: str, *args: str) -> int:
    """Run `code` in a fresh Python (the package on its path) and return the last number printed."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    scripts = str(Path(__file__).resolve().parents[1] / "scripts")
    env = {**os.environ, "PYTHONPATH": scripts + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, env=env
    )
    return int(out.stdout.split()[-1])


def tiny_trainer_peak(batch: int, side: int, rank: int) -> int:
    """Peak own memory (bytes; see process_memory) of the real tiny trainer for three steps at
    this batch / side / rank."""
    import tempfile
    from pathlib import Path

    from trainwright.backends import tiny
    from trainwright.backends.tiny_model.data import write_example_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_example_dataset(root / "ds", 8, size=side)
        files = tiny.files_from_settings(
            dataset=str(root / "ds"),
            trigger_word="probe",
            output_name="probe",
            resolution=side,
            batch_size=batch,
            rank=rank,
            alpha=rank,
        )
        (root / tiny.CONFIG_FILE).write_text(files[tiny.CONFIG_FILE])
        return _run_probe(TINY_TRAINER_PROBE, str(root / tiny.CONFIG_FILE))


def fit_tiny() -> dict[str, Any]:
    from trainwright.backends.tiny_model import lora
    from trainwright.backends.tiny_model.model import TinyDenoiser, diffusion_loss, encode_captions

    torch = _torch()
    fits: dict[str, Any] = {}
    for dtype, mode in itertools.product(TINY["dtypes"], ("full", "lora-all")):
        ys, rows = [], []
        for side in TINY["sides"]:
            model = _tiny_model(mode, dtype)
            x = torch.zeros(1, 3, side, side, dtype=_dtype(dtype))
            tokens = encode_captions(["trigger, a red circle"])
            gen = torch.Generator().manual_seed(0)

            def run(model: Any = model, x: Any = x, tokens: Any = tokens, gen: Any = gen) -> Any:
                return diffusion_loss(model, x, tokens, gen)

            ys.append(trace.saved_bytes(model, run))
            p = side * side
            rows.append([p, p * p, 1])
        coef = np.linalg.solve(np.array(rows, float), np.array(ys, float))
        key = f"{dtype}/none/{mode}"
        fits[key] = {
            "per_latent_pixel": round(float(coef[0]), 2),
            "per_latent_pixel_sq": round(float(coef[1]), 5),
            "fixed": round(float(coef[2]), 0),
        }
        print(f"  tiny-unet {key}: {coef}", flush=True)
    model = TinyDenoiser()
    lora.inject(model, 1, 1)
    per_rank = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # On the CPU a step needs more than autograd keeps: the backward pass's gradients of the
    # feature maps, the convolutions' own work buffers and the allocator's slack. Measured on
    # the real trainer at 64 px as its peak own memory per extra image, over the traced kept
    # bytes; what is left at batch 1 once the weights, LoRA, gradients, optimizer and one
    # image's step are taken away is the runtime: Python, torch and the trainer's threads.
    from trainwright.hardware import catalog, vram

    side, rank = 64, TINY["rank"]
    one, eight = (tiny_trainer_peak(b, side, rank) for b in (1, 8))
    entry = fits["fp32/none/lora-all"]
    kept = entry["per_latent_pixel"] * side * side + entry["fixed"]
    per_image = (eight - one) / 7
    ratio = round(per_image / kept - 1.0, 3)
    setup = vram.Setup(
        precision="fp32", rank=rank, targets="all", batch=1, resolution=(side, side),
        gradient_checkpointing=False, device="cpu",
    )  # fmt: skip
    parts = vram.estimate(catalog.load().get("tiny"), setup).breakdown
    static = sum(parts[k] for k in ("weights", "trainable", "gradients", "optimizer"))
    runtime = int(one - static - per_image)
    print(
        f"  tiny-unet cpu runtime: {runtime / 2**20:.0f} MiB; trainer peak batch 1 / 8: "
        f"{one / 2**20:.0f} / {eight / 2**20:.0f} MiB; step transient {ratio} x kept",
        flush=True,
    )
    return {
        "kind": "unet",
        "attention": "none",
        "gradient_checkpointing": False,
        "lora_targets": "all",
        "text_tokens": 32,
        "lora_params_per_rank": {"all": per_rank},
        "largest_attention": {"heads": 0, "downsample": 1},
        "cpu_runtime_bytes": runtime,
        "cpu_step_transient": ratio,
        "cpu_measured": {"side": side, "rank": rank, "peak_own_bytes": {"1": one, "8": eight}},
        "traced_rank": TINY["rank"],
        "fits": fits,
    }
