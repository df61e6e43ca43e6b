"""`trainwright vram --measure`: a few real training steps of the exact architecture, built from
its config with random weights on the local GPU (nothing is downloaded), and the peak memory
torch saw beside the estimate.

Language models are built with transformers from the catalog's (or --hf-config's) config;
SD 1.5 / SDXL UNets with diffusers from unet_configs.yaml (the denoiser alone, on random latents
and text embeddings, so the estimate it is compared with caches latents and text-encoder outputs).
An out-of-memory is the measurement too: the batch is halved until a step fits, and the answer
says which batch last fitted. Anything else the pack cannot build is refused before CUDA starts.
"""

from __future__ import annotations

import gc
import importlib.util
import time
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from trainwright.errors import TrainwrightError
from trainwright.hardware import catalog
from trainwright.hardware.vram import Setup, parse_targets

STEPS = 3
HF_TARGETS = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj",
              "up": "up_proj", "down": "down_proj"}  # fmt: skip
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
BUILDABLE_TYPES = ("llama", "mistral", "qwen2", "gemma", "gemma2", "phi3")


@lru_cache(maxsize=1)
def unet_configs() -> dict[str, Any]:
    return dict(yaml.safe_load((Path(__file__).with_name("unet_configs.yaml")).read_text()))


def buildable(model: catalog.Model) -> str | None:
    """Why the pack cannot build this model for a measurement, or None when it can."""
    part = model.main
    if model.is_image:
        if part.profile not in unet_configs():
            known = ", ".join(sorted(unet_configs()))
            return (
                f"{model.id}'s denoiser ({part.profile}) has no config the pack can build; "
                f"--measure builds language models and the UNets {known}"
            )
        if importlib.util.find_spec("diffusers") is None:
            return "--measure of an image model needs diffusers: pip install diffusers"
        return None
    if part.model_type not in BUILDABLE_TYPES:
        return (
            f"{model.id} is a {part.model_type} model; --measure builds "
            f"{', '.join(BUILDABLE_TYPES)} decoders and the SD 1.5 / SDXL UNets"
        )
    return None


def measure_setup(model: catalog.Model, setup: Setup) -> Setup:
    """The setup the measurement runs: a UNet alone means latents and text outputs cached."""
    if model.is_image:
        return replace(setup, cache_latents=True, cache_text_encoder=True, train_text_encoder=False)
    return setup


def cuda_problem() -> str | None:
    """Why there is no CUDA to measure on, in Gate 3's words; None when there is."""
    from trainwright.hardware.env_check import torch_facts_fast
    from trainwright.hardware.gpu import probe_gpus

    facts = torch_facts_fast()
    if not facts.version:
        return "--measure needs PyTorch with CUDA, and PyTorch is not installed here"
    probe = probe_gpus()
    if not facts.cuda:
        if probe.found:
            return (
                f"PyTorch {facts.version} is a CPU-only build: it cannot use the "
                f"{probe.gpus[0].name} (Gate 3: `trainwright env check` names the build to "
                "install)"
            )
        return "--measure needs an NVIDIA GPU, and this machine has none (no CUDA)"
    import torch

    if not torch.cuda.is_available():
        why = probe.error or "torch.cuda.is_available() is False"
        return f"--measure needs a working CUDA GPU: {why} (`trainwright env check` says why)"
    return None


def _language(model: catalog.Model, s: Setup, torch: Any, batch: int) -> Any:
    import transformers as tf

    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # transformers before 5.x kept it here
        from transformers.modeling_utils import no_init_weights

    cfg = dict(catalog.hf_config(model.main))
    model_type = cfg.pop("model_type")
    config = tf.AutoConfig.for_model(model_type, **cfg)
    config._attn_implementation = s.attention or model.attention or "sdpa"
    config.use_cache = False
    full = s.method == "full"
    dtype = torch.float32 if (full and s.master_weights) else torch.bfloat16
    with torch.device("cuda"), no_init_weights():
        net = tf.AutoModelForCausalLM.from_config(config, dtype=dtype)
    _random(net, torch)
    if s.gradient_checkpointing:
        net.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if not full:
        import peft

        key, canon = parse_targets(s.targets)
        targets = "all-linear" if key == "all" else [HF_TARGETS[c] for c in canon]
        lora = peft.LoraConfig(
            r=s.rank,
            lora_alpha=s.rank,
            target_modules=targets,
            lora_dropout=0.05 if s.lora_dropout is None else s.lora_dropout,
        )
        if s.gradient_checkpointing:
            net.enable_input_require_grads()
        net = peft.get_peft_model(net, lora)
    seq = s.seq_len or 2048
    vocab = config.vocab_size

    def step() -> Any:
        ids = torch.randint(0, vocab, (batch, seq), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.float32):
            return net(input_ids=ids, labels=ids).loss

    return net, step


def _unet(model: catalog.Model, s: Setup, torch: Any, batch: int) -> Any:
    try:
        import diffusers
    except ImportError:
        raise TrainwrightError(
            "--measure of an image model needs diffusers: pip install diffusers"
        ) from None
    entry = unet_configs()[model.main.profile]
    with torch.device("cuda"):
        net = diffusers.UNet2DConditionModel(**entry["config"]).to(torch.bfloat16)
    _random(net, torch)
    if s.gradient_checkpointing:
        net.enable_gradient_checkpointing()
    if s.method != "full":
        import peft

        for p in net.parameters():
            p.requires_grad_(False)
        net = peft.inject_adapter_in_model(
            peft.LoraConfig(r=s.rank, lora_alpha=s.rank, target_modules=UNET_TARGETS), net
        )
        for p in net.parameters():
            if p.requires_grad:
                p.data = p.data.float()
    w, h = s.resolution or (model.resolution, model.resolution)
    factor = model.latent_factor or 8
    cfg = entry["config"]

    def step() -> Any:
        lat = torch.randn(batch, cfg["in_channels"], h // factor, w // factor, device="cuda")
        text = torch.randn(batch, entry["text_tokens"], cfg["cross_attention_dim"], device="cuda")
        kwargs: dict[str, Any] = {}
        if cfg.get("addition_embed_type") == "text_time":
            kwargs["added_cond_kwargs"] = {
                "text_embeds": torch.randn(batch, entry["pooled_dim"], device="cuda"),
                "time_ids": torch.randn(batch, 6, device="cuda"),
            }
        t = torch.randint(0, 1000, (batch,), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = net(lat, t, encoder_hidden_states=text, **kwargs).sample
        return (out.float() - lat).pow(2).mean()

    return net, step


def _random(net: Any, torch: Any) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.02, 0.02)


def run_steps(model: catalog.Model, s: Setup, batch: int, steps: int = STEPS) -> dict[str, Any]:
    """Build, train `steps` AdamW steps at `batch`, return torch's peaks (raises torch's OOM)."""
    import torch

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.monotonic()
    build = _unet if model.is_image else _language
    net = opt = None
    try:
        net, step = build(model, s, torch, batch)
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-5, foreach=s.foreach)
        for _ in range(steps):
            step().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        return {
            "batch": batch,
            "allocated_mib": torch.cuda.max_memory_allocated() / 2**20,
            "reserved_mib": torch.cuda.max_memory_reserved() / 2**20,
            "params": sum(p.numel() for p in net.parameters()),
            "trainable": sum(p.numel() for p in params),
            "seconds": round(time.monotonic() - t0, 2),
        }
    finally:
        net = opt = params = step = None  # the next row starts from an empty card
        gc.collect()
        torch.cuda.empty_cache()


def measure(model: catalog.Model, s: Setup, steps: int = STEPS) -> dict[str, Any]:
    """The measurement `vram --measure` prints: peaks at the asked batch, or where it ran out
    of memory and which batch last fitted."""
    import torch

    free, total = torch.cuda.mem_get_info()
    name = torch.cuda.get_device_name()
    out: dict[str, Any] = {
        "gpu": name,
        "total_mib": total / 2**20,
        "free_mib": free / 2**20,
        "steps": steps,
        "batch": s.batch,
    }
    result, tried, last = halve_until_fits(
        s.batch,
        lambda b: run_steps(model, replace(s, batch=b), b, steps),
        torch.cuda.OutOfMemoryError,
    )
    if result is not None and last == s.batch:
        out.update(result, fits=True, oom_batches=[])
    else:
        out.update(fits=False, oom_batches=tried, last_fitted_batch=last, fitted=result)
    return out


def halve_until_fits(
    batch: int, attempt: Callable[[int], dict[str, Any]], oom: type[BaseException]
) -> tuple[dict[str, Any] | None, list[int], int]:
    """Try `batch`, halving after each out-of-memory: (result, batches that ran out, the batch
    that fitted or 0)."""
    tried: list[int] = []
    while batch >= 1:
        try:
            return attempt(batch), tried, batch
        except oom:
            tried.append(batch)
            batch //= 2
    return None, tried, 0
