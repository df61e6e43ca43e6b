"""`trainwright vram --measure`: a few real training steps of the exact architecture, built from
its config with random weights on the local GPU (nothing is downloaded), and the peak memory
torch saw beside the estimate.

Language models are built with transformers from the catalog's (or --hf-config's) config;
SD 1.5 / SDXL UNets with diffusers from unet_configs.yaml (the denoiser alone, on random latents
and text embeddings, so the estimate it is compared with caches latents and text-encoder outputs).
An out-of-memory is the measurement too: the batch is halved until a step fits, and the answer
says which batch last fitted. Anything else the pack cannot build is refused before CUDA starts.

The steps are the estimated run, not a stand-in for it: the optimizer asked for (torch's AdamW
foreach or fused, SGD, Adafactor; bitsandbytes' 8-bit and paged ones), the step in backward,
gradient accumulation, the precision, a 4-bit (bitsandbytes NF4) base for QLoRA, and the loss
head of the framework (its `measured_loss` in resources/models/loss-heads.yaml: the model's
`labels=` loss, or the output projection in chunks each upcast for its own cross-entropy).
A setting these steps cannot reproduce is refused with the reason (`unmeasurable`), so a figure
never stands for a run that was not made.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import time
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from trainwright.errors import TrainwrightError
from trainwright.hardware import catalog, loss_heads
from trainwright.hardware.vram import Setup, base_quant, parse_targets

STEPS = 3
HF_TARGETS = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj",
              "up": "up_proj", "down": "down_proj"}  # fmt: skip
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
BUILDABLE_TYPES = ("llama", "mistral", "qwen2", "gemma", "gemma2", "phi3")
IGNORE = -100  # the ignore_index of transformers' and the chunked loss
BNB_OPTIMIZERS = {
    "adamw8bit": "AdamW8bit",
    "paged_adamw": "PagedAdamW",
    "paged_adamw8bit": "PagedAdamW8bit",
    "lion": "Lion",
    "lion8bit": "Lion8bit",
}
LR = 1e-5


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


def unmeasurable(model: catalog.Model, s: Setup) -> str | None:
    """Why real steps here could not be the run this setup estimates, or None when they can."""
    have = importlib.util.find_spec
    if s.device != "cuda":
        return "--measure measures GPU memory: it needs --device cuda"
    if loss_heads.measured_loss(s.framework)[0] is None:
        able = [
            f
            for f in loss_heads.frameworks()
            if loss_heads.measured_loss(f)[0] not in (None, "latents")
        ]
        return (
            f"--measure does not reproduce {s.framework}'s loss head; it measures "
            f"--framework {', '.join(able)}"
        )
    if s.offload_activations:
        return "--measure does not reproduce activation offloading (--offload-activations)"
    if model.is_image and s.train_text_encoder:
        return "--measure trains the denoiser alone, not the text encoder (--train-text-encoder)"
    quant = base_quant(s)
    four_bit = quant == "nf4"
    if quant in ("int8", "fp8"):
        return f"--measure builds a bf16 or a 4-bit (nf4) base, not {quant}"
    if four_bit and model.is_image:
        return "--measure builds a 4-bit base for language models only"
    if four_bit and not loss_heads.quantized_linear_keeps_input(s.framework):
        return (
            f"{s.framework}'s QLoRA uses torchao's NF4 layers; --measure builds bitsandbytes' "
            "4-bit layers (measure with --framework hf)"
        )
    if four_bit and not have("bitsandbytes"):
        return "--measure of a 4-bit base needs bitsandbytes: pip install bitsandbytes"
    if s.optimizer in BNB_OPTIMIZERS and not have("bitsandbytes"):
        return f"--measure with {s.optimizer} needs bitsandbytes: pip install bitsandbytes"
    if s.optimizer == "prodigy" and not have("prodigyopt"):
        return "--measure with prodigy needs prodigyopt: pip install prodigyopt"
    return None


def ran(model: catalog.Model, s: Setup) -> str:
    """What the measured steps were, in a line (printed beside the figure and kept in --json)."""
    if s.optimizer == "adamw":
        opt = "AdamW (" + ("foreach" if s.foreach else "fused") + ")"
    else:
        opt = BNB_OPTIMIZERS.get(s.optimizer, s.optimizer) + (
            " (bitsandbytes)" if s.optimizer in BNB_OPTIMIZERS else ""
        )
    parts = [opt]
    if s.optimizer_in_backward:
        parts.append("stepped in backward")
    if s.gradient_accumulation > 1:
        parts.append(f"accumulation {s.gradient_accumulation}")
    parts.append(s.precision)
    if not model.is_image and base_quant(s) == "nf4":
        parts.append("NF4 base (bitsandbytes)")
    parts.append("checkpointing" if s.gradient_checkpointing else "no checkpointing")
    how, chunks = loss_heads.measured_loss(s.framework)
    if how == "chunked":
        parts.append(f"loss in {chunks} chunks")
    elif how == "labels":
        parts.append("labels= loss")
    return ", ".join(parts)


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


def _language(model: catalog.Model, s: Setup, torch: Any, batch: int, device: str) -> Any:
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
    four_bit = base_quant(s) == "nf4"
    half = torch.float16 if s.precision == "fp16" else torch.bfloat16
    master = s.master_weights if s.master_weights is not None else s.precision == "fp16"
    if s.precision == "fp32" or (full and master):
        dtype = torch.float32
    else:
        dtype = half
    autocast = dtype == torch.float32 and s.precision != "fp32"
    # A 4-bit base is built on the CPU and quantized layer by layer as it moves to the GPU, so
    # the full-precision model never sits on the card.
    with torch.device("cpu" if four_bit else device), no_init_weights():
        net = tf.AutoModelForCausalLM.from_config(config, dtype=dtype)
    _random(net, torch)
    if four_bit:
        _quantize_4bit(net, torch, half)
        net.to(device)
    if s.gradient_checkpointing:
        # transformers 5.25 renamed it; the device image's 5.17 has only the old name
        kwargs = {"use_reentrant": False}
        if hasattr(net, "activation_checkpointing_enable"):
            net.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            net.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if not full:
        import peft

        for p in net.parameters():
            p.requires_grad_(False)
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
    how, chunks = loss_heads.measured_loss(s.framework)
    loss = _chunked_loss(net, torch, chunks) if how == "chunked" else None

    def step() -> Any:
        ids = torch.randint(0, vocab, (batch, seq), device=device)
        with torch.autocast(device.split(":")[0], dtype=half, enabled=autocast):
            return loss(ids) if loss else net(input_ids=ids, labels=ids).loss

    return net, step


def _chunked_loss(net: Any, torch: Any, chunks: int) -> Callable[[Any], Any]:
    """A chunked cross-entropy, eager: labels shifted one token left (the last one ignored),
    the output projection applied to `chunks` pieces of the sequence, and each piece's logits
    upcast to fp32 for its own summed cross-entropy."""
    core = net.get_base_model() if hasattr(net, "get_base_model") else net
    decoder, head = core.get_decoder(), core.get_output_embeddings()
    fn = torch.nn.functional

    def loss(ids: Any) -> Any:
        labels = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], IGNORE)], dim=1)
        hidden = decoder(input_ids=ids).last_hidden_state
        total = 0
        for h, y in zip(
            hidden.chunk(chunks, dim=1),
            labels.chunk(chunks, dim=1),
            strict=True,
        ):
            logits = head(h)
            total = total + fn.cross_entropy(
                logits.reshape(-1, logits.size(-1)).float(),
                y.reshape(-1),
                reduction="sum",
                ignore_index=IGNORE,
            )
        return total / (labels != IGNORE).sum()

    return loss


def _bnb() -> Any:
    """bitsandbytes, imported without its attempt to fetch a CPU kernel from the Hub (0.50 tries
    at import on CPUs with AVX512-BF16): --measure downloads nothing."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import bitsandbytes

    return bitsandbytes


def _quantize_4bit(net: Any, torch: Any, compute: Any) -> None:
    """Every linear layer of the decoder as bitsandbytes' NF4 layer (the output head stays, as
    transformers' 4-bit loading leaves it); the weights quantize when the model moves to CUDA."""
    bnb = _bnb()
    head = net.get_output_embeddings()
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if type(child) is not torch.nn.Linear or child is head:
                continue
            layer = bnb.nn.Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=compute,
                quant_type="nf4",
                device="meta",
            )
            layer.weight = bnb.nn.Params4bit(
                child.weight.data, requires_grad=False, quant_type="nf4"
            )
            if child.bias is not None:
                layer.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            setattr(module, name, layer)


def _unet(model: catalog.Model, s: Setup, torch: Any, batch: int, device: str) -> Any:
    try:
        import diffusers
    except ImportError:
        raise TrainwrightError(
            "--measure of an image model needs diffusers: pip install diffusers"
        ) from None
    entry = unet_configs()[model.main.profile]
    with torch.device(device):
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
    images = batch * (2 if s.prior_preservation else 1)

    def step() -> Any:
        lat = torch.randn(images, cfg["in_channels"], h // factor, w // factor, device=device)
        text = torch.randn(images, entry["text_tokens"], cfg["cross_attention_dim"], device=device)
        kwargs: dict[str, Any] = {}
        if cfg.get("addition_embed_type") == "text_time":
            kwargs["added_cond_kwargs"] = {
                "text_embeds": torch.randn(images, entry["pooled_dim"], device=device),
                "time_ids": torch.randn(images, 6, device=device),
            }
        t = torch.randint(0, 1000, (images,), device=device)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16):
            out = net(lat, t, encoder_hidden_states=text, **kwargs).sample
        return (out.float() - lat).pow(2).mean()

    return net, step


def _random(net: Any, torch: Any) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.02, 0.02)


def make_optimizer(s: Setup, params: list[Any], torch: Any) -> Any:
    """The optimizer the setup names, as the trainers build it."""
    name = s.optimizer
    if name == "adamw":
        return torch.optim.AdamW(
            params, lr=LR, **({"foreach": True} if s.foreach else {"fused": True})
        )
    if name == "sgd":
        return torch.optim.SGD(params, lr=LR, momentum=0.9, foreach=s.foreach)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(params, lr=LR, scale_parameter=False, relative_step=False)
    if name == "prodigy":
        import prodigyopt

        return prodigyopt.Prodigy(params, lr=1.0)
    if name in BNB_OPTIMIZERS:
        return getattr(_bnb().optim, BNB_OPTIMIZERS[name])(params, lr=LR)
    raise TrainwrightError(f"--measure cannot build the optimizer {name!r}")


def train(
    model: catalog.Model, s: Setup, batch: int, steps: int, device: str, torch: Any
) -> tuple[Any, list[Any], Any]:
    """Build the model and run `steps` optimizer steps as the setup says (accumulation, the
    step in backward); returns (model, trainable parameters, the optimizer or the per-parameter
    optimizers)."""
    build = _unet if model.is_image else _language
    net, step = build(model, s, torch, batch, device)
    params = [p for p in net.parameters() if p.requires_grad]
    if s.optimizer_in_backward:
        # a recipe's optimizer_in_bwd: one optimizer per parameter, stepped and cleared by a
        # hook the moment its gradient is complete
        opts = {p: make_optimizer(s, [p], torch) for p in params}

        def apply(p: Any) -> None:
            opts[p].step()
            opts[p].zero_grad(set_to_none=True)

        for p in params:
            p.register_post_accumulate_grad_hook(apply)
        for _ in range(steps):
            step().backward()
        return net, params, opts
    opt = make_optimizer(s, params, torch)
    accumulation = max(1, s.gradient_accumulation)
    for _ in range(steps):
        for _ in range(accumulation):
            (step() / accumulation).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return net, params, opt


def run_steps(model: catalog.Model, s: Setup, batch: int, steps: int = STEPS) -> dict[str, Any]:
    """Build, train `steps` steps at `batch` on CUDA, return torch's peaks (raises torch's
    OOM)."""
    import torch

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.monotonic()
    trained: tuple[Any, ...] | None = None
    try:
        trained = train(model, s, batch, steps, "cuda", torch)
        torch.cuda.synchronize()
        net, params, _ = trained
        return {
            "batch": batch,
            "allocated_mib": torch.cuda.max_memory_allocated() / 2**20,
            "reserved_mib": torch.cuda.max_memory_reserved() / 2**20,
            "params": sum(p.numel() for p in net.parameters()),
            "trainable": sum(p.numel() for p in params),
            "seconds": round(time.monotonic() - t0, 2),
        }
    finally:
        trained = net = params = None  # the next row starts from an empty card
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
