"""The VRAM estimator: bytes per parameter for weights, gradients and optimizer state, plus
activations from constants fitted on traces of the real architectures (activations.yaml).

No torch at run time. The method and its sources: resources/environment/vram-calculator.md.
Figures are bytes internally, GiB (2**30) at the edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import yaml

from trainwright import pack
from trainwright.errors import TrainwrightError
from trainwright.hardware import loss_heads
from trainwright.hardware.catalog import Model, Part

GIB = 2**30
ACTIVATIONS = "resources/models/activations.yaml"
SAFETY_MARGIN = 0.20  # keep a fifth of the card free

METHODS = ("lora", "qlora", "full")
PRECISIONS = ("bf16", "fp16", "fp32")
BASE_QUANTS = ("none", "int8", "fp8", "nf4")
# bytes per frozen weight; nf4: 4 bits + one fp32 absmax per 64-weight block (no double quant).
QUANT_BYTES = {"int8": 1.0 + 4 / 4096, "fp8": 1.0, "nf4": 0.5 + 4 / 64}

# Optimizer state per trainable parameter: (number of full-size states, fixed bytes if 8-bit,
# paged). Full-size states take the trainable parameters' dtype.
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "adamw": {"states": 2},
    "adamw8bit": {"bytes": 2.0 + 8 / 2048},
    "paged_adamw": {"states": 2, "paged": True},
    "paged_adamw8bit": {"bytes": 2.0 + 8 / 2048, "paged": True},
    "lion": {"states": 1},
    "lion8bit": {"bytes": 1.0 + 4 / 2048},
    "prodigy": {"states": 4},  # exp_avg, exp_avg_sq, s, p0
    "adafactor": {"bytes": 0.02},  # factored second moment only (rows + columns)
    "sgd": {"states": 1},  # momentum buffer
}
TARGET_SETS = {"qv": ("q", "v"), "attn": ("q", "k", "v", "o")}
TARGET_ALIASES = {"all-linear": "all", "all": "all", "attn": "attn", "q,v": "qv", "qv": "qv"}
CANONICAL_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")
TARGET_NAMES = {  # module names people write -> canonical
    "q_proj": "q",
    "k_proj": "k",
    "v_proj": "v",
    "o_proj": "o",
    "output_proj": "o",
    "out_proj": "o",
    "dense": "o",
    "gate_proj": "gate",
    "up_proj": "up",
    "down_proj": "down",
    "fc1": "up",
    "fc2": "down",
    "w1": "gate",
    "w3": "up",
    "w2": "down",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out": "o",
    "query": "q",
    "key": "k",
    "value": "v",
    "qkv_proj": "q",
    "gate_up_proj": "up",
    **{c: c for c in CANONICAL_TARGETS},
}
# Framework allocations outside what autograd keeps (cuBLAS workspace, RNG state, small
# buffers), and the caching allocator's reserve over allocated: see vram-calculator.md.
FRAMEWORK_FIXED = 0.15 * GIB
# Checkpointed layer inputs still on the card under activation offloading: the one being copied
# out or in, and the next one prefetched (torchtune's OffloadActivations, Unsloth's checkpointing).
OFFLOAD_LAYERS_ON_CARD = 2
ALLOCATOR_RESERVE = 0.06
DEFAULT_CUDA_CONTEXT_GIB = 1.0
DEVICES = ("cuda", "cpu")
# The framework whose loss head an estimate assumes when none is named: the rule before
# frameworks existed, so callers that name none get the figures they got before.
DEFAULT_FRAMEWORK = "generic"
# Bytes per token per vocabulary entry that transformers' forward with labels keeps (traced,
# loss-heads.yaml `hf`); inside a live-traced profile's per-token rest, which has no vocab term.
HF_TRACED_KEPT_PER_VOCAB = 4.0


@dataclass
class Setup:
    method: str = "lora"
    precision: str = "bf16"
    rank: int = 16
    targets: str = "attn"
    optimizer: str = "adamw"
    batch: int = 1
    seq_len: int | None = None
    resolution: tuple[int, int] | None = None
    gradient_accumulation: int = 1
    gradient_checkpointing: bool = True
    cache_latents: bool = False
    cache_text_encoder: bool = False
    train_text_encoder: bool = False
    attention: str | None = None  # sdpa | eager; default: the model's
    lora_dropout: float | None = None  # default 0.05 for language models, 0 for image models
    base_quant: str = "none"
    master_weights: bool | None = None  # fp32 copy of trainable weights (mixed precision)
    prior_preservation: bool = False  # DreamBooth: one class image per instance image
    cuda_context_gib: float = DEFAULT_CUDA_CONTEXT_GIB
    foreach: bool = True  # torch's multi-tensor optimizer step (one param-sized temporary)
    device: str = "cuda"  # cuda | cpu: a CPU run is measured against system RAM, not a card
    framework: str = DEFAULT_FRAMEWORK  # the trainer's loss head: one of frameworks()
    # torchtune's optimizer_in_bwd: each gradient is applied and freed as soon as it is made
    optimizer_in_backward: bool = False
    # torchtune's enable_activation_offloading: the checkpointed layer inputs wait in CPU memory
    offload_activations: bool = False


@dataclass
class Estimate:
    breakdown: dict[str, float]  # bytes
    allocated: float
    reserved: float
    total: float
    assumptions: list[str]
    details: dict[str, Any] = field(default_factory=dict)

    def gib(self, key: str) -> float:
        return round(self.breakdown[key] / GIB, 2)


def frameworks() -> tuple[str, ...]:
    """The training frameworks an estimate can assume (Setup.framework): resources/models/
    loss-heads.yaml. A backend passes its own; DEFAULT_FRAMEWORK when it is not known."""
    return loss_heads.frameworks()


@lru_cache(maxsize=1)
def constants() -> dict[str, Any]:
    data = yaml.safe_load(pack.read_text(ACTIVATIONS))
    if not isinstance(data, dict) or "token_models" not in data:
        raise TrainwrightError(f"{ACTIVATIONS} is damaged: rerun bench/fit_activations.py")
    return data


def base_quant(s: Setup) -> str:
    """How the frozen base is stored: QLoRA means NF4 whatever --base-quant says."""
    return "nf4" if s.method == "qlora" else s.base_quant


def parse_targets(text: str) -> tuple[str, tuple[str, ...]]:
    """`q,v` / `attn` / `all-linear` / a module list -> (set name, canonical names)."""
    raw = text.strip().lower()
    if raw in TARGET_ALIASES:
        key = TARGET_ALIASES[raw]
        return key, CANONICAL_TARGETS if key == "all" else TARGET_SETS[key]
    names = []
    for item in (x.strip() for x in raw.replace(" ", ",").split(",")):
        if not item:
            continue
        leaf = item.split(".")[-1] if not item.endswith(".0") else item.split(".")[-2]
        if leaf not in TARGET_NAMES:
            raise TrainwrightError(
                f"unknown LoRA target {item!r}: use q,v | attn | all-linear or module names "
                "such as q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
            )
        names.append(TARGET_NAMES[leaf])
    if not names:
        raise TrainwrightError("--targets is empty")
    canon = tuple(c for c in CANONICAL_TARGETS if c in names)
    if set(canon) <= {"q", "v"}:
        return "qv", canon
    if set(canon) <= {"q", "k", "v", "o"}:
        return "attn", canon
    return "all", canon


def validate(model: Model, s: Setup) -> None:
    if s.method not in METHODS:
        raise TrainwrightError(f"--method must be one of {', '.join(METHODS)}, not {s.method!r}")
    if s.precision not in PRECISIONS:
        raise TrainwrightError(f"--precision must be one of {', '.join(PRECISIONS)}")
    if s.method != "full" and s.rank <= 0:
        raise TrainwrightError(f"--rank must be a positive whole number, not {s.rank}")
    if s.batch <= 0:
        raise TrainwrightError(f"--batch must be at least 1, not {s.batch}")
    if s.gradient_accumulation <= 0:
        raise TrainwrightError("--gradient-accumulation must be at least 1")
    if s.optimizer not in OPTIMIZERS:
        raise TrainwrightError(f"unknown optimizer {s.optimizer!r}; one of {', '.join(OPTIMIZERS)}")
    if s.device not in DEVICES:
        raise TrainwrightError(f"--device must be one of {', '.join(DEVICES)}, not {s.device!r}")
    if s.base_quant not in BASE_QUANTS:
        raise TrainwrightError(f"--base-quant must be one of {', '.join(BASE_QUANTS)}")
    head = loss_heads.get(s.framework)
    if head.get("image_only") and not model.is_image:
        others = ", ".join(f for f in frameworks() if not loss_heads.get(f).get("image_only"))
        raise TrainwrightError(
            f"framework {s.framework!r} is for image trainers; {model.id} is a language model: "
            f"use one of {others}"
        )
    if s.method == "full" and s.base_quant != "none":
        raise TrainwrightError("a quantized base cannot be fully fine-tuned: use lora or qlora")
    if s.optimizer_in_backward and s.gradient_accumulation > 1:
        raise TrainwrightError(
            "the optimizer step in backward needs gradient accumulation 1: each gradient is "
            "applied and freed as it is made, so there is nothing to accumulate"
        )
    if s.offload_activations and not s.gradient_checkpointing:
        raise TrainwrightError(
            "activation offloading moves the checkpointed layer inputs to the CPU: it needs "
            "gradient checkpointing on"
        )
    if s.offload_activations and model.is_image:
        raise TrainwrightError(
            f"activation offloading is modelled for language models, not {model.id}"
        )
    if model.is_image:
        if s.seq_len is not None:
            raise TrainwrightError(
                f"{model.id} is an image model: give --resolution, not --seq-len"
            )
        w, h = s.resolution or (model.resolution or 512, model.resolution or 512)
        step = model.resolution_multiple or 8
        if w <= 0 or h <= 0 or w % step or h % step:
            raise TrainwrightError(
                f"resolution {w}x{h} is not a multiple of {step}, which {model.name} needs "
                f"(try {max(step, round(w / step) * step)}x{max(step, round(h / step) * step)})"
            )
    else:
        if s.resolution is not None:
            raise TrainwrightError(
                f"{model.id} is a language model: give --seq-len, not --resolution"
            )
        if s.seq_len is not None and s.seq_len <= 0:
            raise TrainwrightError(f"--seq-len must be at least 1, not {s.seq_len}")
        if s.cache_latents or s.train_text_encoder:
            raise TrainwrightError(
                "--cache-latents / --train-text-encoder apply to image models only"
            )


def _dot(coef: dict[str, float], feats: dict[str, float]) -> float:
    return sum(coef.get(k, 0.0) * v for k, v in feats.items())


def _token_fit(profile: str, dtype: str, attention: str, mode: str) -> tuple[dict, list[str]]:
    """The fitted entry for profile/dtype/attention/mode, or the nearest with a stated fallback."""
    table = constants()["token_models"]
    notes: list[str] = []
    fam = table.get(profile) or table["llama"]
    if profile not in table:
        notes.append(f"no traced constants for {profile}: used llama's")
    key = f"{dtype}/{attention}/{mode}"
    if key in fam:
        return fam[key], notes
    # Same family at the traced combination, scaled by llama's ratio between the two.
    for alt in (f"bf16/{attention}/{mode}", f"bf16/sdpa/{mode}", f"bf16/eager/{mode}"):
        if alt in fam:
            base = fam[alt]
            ratio_src = table["llama"].get(key), table["llama"].get(alt)
            scaled = _scale_entry(base, ratio_src)
            notes.append(f"{profile} was traced at {alt}; scaled to {key} with llama's ratio")
            return scaled, notes
    raise TrainwrightError(f"no activation constants for {profile} {key}")


def _scale_entry(base: dict, pair: tuple[dict | None, dict | None]) -> dict:
    target, source = pair
    if not target or not source:
        return base
    out = {}
    for part in ("layer", "rest", "gc_layer", "gc_rest"):
        if part not in base:
            continue
        out[part] = {}
        for k, v in base[part].items():
            src = source.get(part, {}).get(k, 0.0)
            tgt = target.get(part, {}).get(k, 0.0)
            factor = tgt / src if abs(src) > 1e-6 else 1.0
            out[part][k] = v * factor if k != "heads_x_seq" else tgt
    return out


def _mode(s: Setup, target_set: str, dropout: float) -> str:
    if s.method == "full":
        return "full"
    if s.method == "qlora":
        return f"qlora-{target_set}"
    return f"lora-{target_set}" + ("" if dropout > 0 else "-nodrop")


def _token_activations(
    part: Part, s: Setup, mode: str, dtype: str, attention: str, tokens_per_seq: int, seqs: int
) -> tuple[float, float, float, float, list[str]]:
    """(kept for backward, one layer's worth, per-layer-per-token, the checkpointed layer
    inputs inside `kept` (0 without checkpointing)) in bytes."""
    entry, notes = _token_fit(part.profile or "llama", dtype, attention, mode)
    seq = tokens_per_seq
    feats = {
        "hidden": part.hidden,
        "q_dim": part.q_dim,
        "kv_dim": part.kv_dim,
        "intermediate": part.intermediate,
        "heads": part.heads,
        "heads_x_seq": (part.heads or 0) * seq,
        "one": 1,
    }
    rest_feats = {
        "hidden": part.hidden,
        "vocab": part.vocab or 0,
        "head_dim": part.head_size,
        "one": 1,
    }
    per_layer = max(_dot(entry["layer"], feats), 0.0)
    rest = max(_dot(entry["rest"], rest_feats), 0.0)
    tokens = seq * seqs
    layers = part.layers or 1
    one_layer = per_layer * tokens
    if not s.gradient_checkpointing:
        return tokens * (layers * per_layer + rest), one_layer, per_layer, 0.0, notes
    gc_mode = "full" if mode == "full" else "lora-qv"
    gc_entry, more = _token_fit(part.profile or "llama", dtype, attention, gc_mode)
    gc_layer = max(_dot(gc_entry.get("gc_layer", {}), feats), 0.0)
    gc_rest = max(_dot(gc_entry.get("gc_rest", {}), rest_feats), 0.0)
    checkpoints = tokens * layers * gc_layer
    kept = checkpoints + tokens * gc_rest + one_layer
    return kept, one_layer, per_layer, checkpoints, notes + more


def _image_activations(model: Model, s: Setup, mode: str, dtype: str, attention: str, images: int):
    """(kept for backward, largest block's worth) in bytes, for `images` images per step."""
    part = model.main
    table = constants().get("image_models", {})
    prof = table.get(part.profile or "")
    notes: list[str] = []
    if prof is None:
        raise TrainwrightError(f"no activation constants for {part.profile}")
    fits = prof["fits"]
    mode = mode.replace("-nodrop", "").replace("qlora-", "lora-")  # traced without dropout
    if prof.get("lora_targets") == "all" and mode.startswith("lora-"):
        mode = "lora-all"
    if prof.get("attention") == "none":
        attention = "none"
        if f"{dtype}/none/{mode}" not in fits:
            traced = next(k.split("/")[0] for k in fits if k.endswith(f"/none/{mode}"))
            notes.append(f"{part.profile} computes in {traced} only: estimated at {traced}")
            dtype = traced
    key = f"{dtype}/{attention}/{mode}"
    if key not in fits:
        alt = next(
            (k for k in (f"bf16/{attention}/{mode}", f"bf16/sdpa/{mode}") if k in fits), None
        )
        if alt is None:
            raise TrainwrightError(f"no activation constants for {part.profile} {key}")
        factor = 2.0 if dtype == "fp32" else 1.0
        notes.append(f"{part.profile} was traced at {alt}; {key} scaled by {factor}")
        entry = {
            k: (v * factor if isinstance(v, (int, float)) else v) for k, v in fits[alt].items()
        }
    else:
        entry = fits[key]
    w, h = s.resolution or (model.resolution or 512, model.resolution or 512)
    factor = model.latent_factor or 8
    checkpointing = s.gradient_checkpointing
    gc = "gc_" if checkpointing else ""
    if prof["kind"] == "unet":
        p = (w // factor) * (h // factor)
        full = entry["per_latent_pixel"] * p + entry["per_latent_pixel_sq"] * p * p + entry["fixed"]
        kept = entry[gc + "per_latent_pixel"] * p + entry[gc + "per_latent_pixel_sq"] * p * p
        kept += entry[gc + "fixed"]
        # The biggest block (a full-resolution transformer block) is rebuilt / back-propagated
        # at a time: about an eighth of the whole UNet's activations (vram-calculator.md).
        block = full / 8
    else:
        patch = model.patch or 2
        ni = (w // (factor * patch)) * (h // (factor * patch))
        nt = model.text_tokens or 0
        n = ni + nt
        blocks = (
            (model.double_blocks - model.dual_blocks, "double_block_per_token"),
            (model.single_blocks, "single_block_per_token"),
            (model.dual_blocks, "dual_block_per_token"),
        )

        def total(prefix: str) -> float:
            out = sum(count * entry.get(prefix + name, 0.0) * n for count, name in blocks)
            out += entry.get(prefix + "rest_per_image_token", 0.0) * ni
            out += entry.get(prefix + "rest_per_text_token", 0.0) * nt
            return out + entry.get(prefix + "fixed", 0.0)

        full = total("")
        kept = total(gc)
        block = max(
            entry.get("double_block_per_token", 0.0), entry.get("dual_block_per_token", 0.0)
        )
        block *= n
    if checkpointing:
        kept += block
    transient = block / 2
    if s.device == "cpu" and "cpu_step_transient" in prof:
        # measured on the real trainer: backward gradients, convolution buffers, malloc slack
        transient = kept * float(prof["cpu_step_transient"])
    # Eager attention's backward holds the gradient of the widest attention matrix and of its
    # scores next to the matrix itself: two more matrices of heads x L x L.
    attn = 0.0
    if attention == "eager":
        la = prof.get("largest_attention", {})
        if prof["kind"] == "unet":
            side = factor * la.get("downsample", 1)
            length = (w // side) * (h // side)
        else:
            length = n
        attn = 2.0 * la.get("heads", 8) * length * length * (4 if dtype == "fp32" else 2)
    return kept * images, (transient + attn) * images, notes


def _largest_trainable(part: Part, s: Setup, canon: tuple[str, ...]) -> float:
    """Parameters in the largest single trainable tensor: with the optimizer step in backward
    only its gradient is ever alive at once."""
    shapes = part.linear_shapes()
    if s.method == "full":
        biggest = max((o * i for o, i in shapes.values()), default=0)
        return float(max(biggest, (part.vocab or 0) * (part.hidden or 0)))
    return float(max((s.rank * max(shapes[t]) for t in canon if t in shapes), default=0))


def _lora_params(part: Part, canon: tuple[str, ...], rank: int) -> int:
    shapes = part.linear_shapes()
    per_layer = sum(rank * (shapes[t][0] + shapes[t][1]) for t in canon if t in shapes)
    return per_layer * (part.layers or 0)


def _quantizable(part: Part) -> int:
    shapes = part.linear_shapes()
    return sum(i * o for i, o in shapes.values()) * (part.layers or 0)


def estimate(model: Model, s: Setup) -> Estimate:
    validate(model, s)
    notes: list[str] = []
    image = model.is_image
    profile = constants().get("image_models", {}).get(model.main.profile or "", {})
    if image and s.gradient_checkpointing and profile.get("gradient_checkpointing") is False:
        notes.append(f"{model.id}'s trainer has no gradient checkpointing: estimated without it")
        s = replace(s, gradient_checkpointing=False)
    attention = s.attention or model.attention
    act_dtype = "fp32" if s.precision == "fp32" else "bf16"
    act_name = {"bf16": "bf16", "fp16": "fp16", "fp32": "fp32"}[s.precision]
    half = 4 if s.precision == "fp32" else 2
    master = s.master_weights if s.master_weights is not None else (s.precision == "fp16" or image)
    trainable_bytes = 4 if (s.precision == "fp32" or master) else 2
    dropout = s.lora_dropout if s.lora_dropout is not None else (0.0 if image else 0.05)
    quant = base_quant(s)
    target_set, canon = parse_targets(s.targets) if s.method != "full" else ("all", ())
    main = model.main
    b: dict[str, float] = dict.fromkeys(
        ("weights", "trainable", "gradients", "optimizer", "activations", "overhead"), 0.0
    )

    # -- weights: frozen parts at their storage precision ------------------------------------
    frozen_main = 0.0 if s.method == "full" else float(main.params)
    if s.method != "full":
        if quant != "none":
            q = _quantizable(main) if not image else main.params
            q = min(q, main.params)
            b["weights"] += q * QUANT_BYTES[quant] + (main.params - q) * half
            notes.append(f"base weights of the {main.name} stored as {quant}")
        else:
            b["weights"] += frozen_main * half
    for te in model.roles("text_encoder"):
        if s.cache_text_encoder and not s.train_text_encoder:
            continue
        if s.method == "full" and s.train_text_encoder:
            continue  # counted as trainable below
        if quant != "none" and te.profile == "t5":
            b["weights"] += te.params * QUANT_BYTES[quant]  # trainers quantize T5 alongside
        else:
            b["weights"] += te.params * half
    if s.cache_text_encoder and model.roles("text_encoder") and not s.train_text_encoder:
        notes.append("text encoder outputs cached: text encoders off the GPU while training")
    for vae in model.roles("vae"):
        if s.cache_latents:
            notes.append("latents cached: VAE off the GPU while training")
            continue
        b["weights"] += vae.params * half

    # -- trainable parameters, gradients, optimizer state -------------------------------------
    if s.method == "full":
        trainable = float(main.params)
        if s.train_text_encoder:
            trainable += sum(te.params for te in model.roles("text_encoder"))
        notes.append(
            "full fine-tune: weights, gradients and optimizer state in "
            + (
                "fp32 (mixed precision keeps an fp32 master copy)"
                if trainable_bytes == 4
                else "bf16 (pure bf16, as LLM recipes train)"
            )
        )
    else:
        if image:
            per_rank = constants()["image_models"][main.profile or ""].get(
                "lora_params_per_rank", {}
            )
            if target_set not in per_rank and "all" in per_rank:
                notes.append(
                    f"{model.id}'s trainer adapts every layer it can: LoRA on all, not {target_set}"
                )
                target_set = "all"
            trainable = float(per_rank.get(target_set, 0)) * s.rank
        else:
            trainable = float(_lora_params(main, canon, s.rank))
        if s.train_text_encoder:
            for te in model.roles("text_encoder"):
                if te.profile == "clip_text_model":
                    trainable += _lora_params(
                        te, TARGET_SETS["attn"] if target_set != "qv" else TARGET_SETS["qv"], s.rank
                    )
        notes.append(
            f"LoRA rank {s.rank} on {target_set if target_set != 'all' else 'all linear layers'}"
            f" ({trainable / 1e6:.1f} M trainable parameters, "
            f"{'fp32' if trainable_bytes == 4 else 'bf16'})"
        )
    b["trainable"] = trainable * trainable_bytes
    b["gradients"] = trainable * trainable_bytes
    if s.optimizer_in_backward and not image:
        b["gradients"] = _largest_trainable(main, s, canon) * trainable_bytes
        notes.append(
            "optimizer step in backward: one parameter's gradient at a time "
            f"({b['gradients'] / GIB:.2f} GiB, the largest), never all of them"
        )
    opt = OPTIMIZERS[s.optimizer]
    per_param = opt.get("bytes") or opt["states"] * trainable_bytes
    b["optimizer"] = trainable * per_param
    paged = bool(opt.get("paged"))
    if paged:
        notes.append(
            f"{s.optimizer}: optimizer state in paged (unified) memory, which spills to the CPU "
            "under pressure and is not in torch's allocated figure"
        )

    # -- activations --------------------------------------------------------------------------
    mode = _mode(s, target_set, dropout)
    cached_apart = 0.0
    if (
        s.method == "qlora"
        and not image
        and not loss_heads.quantized_linear_keeps_input(s.framework)
    ):
        # the traced qlora modes are bitsandbytes' layers, which keep each layer's input
        mode = _mode(replace(s, method="lora"), target_set, dropout)
        notes.append(
            "4-bit layers keep only their quantized weight for backward (torchao's NF4 linear): "
            "activations as for LoRA"
        )
    transient = 0.0
    if image:
        images = s.batch * (2 if s.prior_preservation else 1)
        kept, transient, more = _image_activations(model, s, mode, act_dtype, attention, images)
        notes += more
        if s.train_text_encoder:
            for te in model.roles("text_encoder"):
                if te.profile != "clip_text_model":
                    continue
                te_mode = "lora-attn-nodrop" if s.method != "qlora" else "lora-attn-nodrop"
                te_kept, _, _, _, more = _token_activations(
                    te,
                    replace(s, gradient_checkpointing=False),
                    te_mode,
                    act_dtype,
                    attention,
                    te.tokens or 77,
                    images,
                )
                kept += te_kept
        vae_transient = 0.0
        if not s.cache_latents and model.roles("vae"):
            w, h = s.resolution or (model.resolution or 512, model.resolution or 512)
            # VAE encode runs without grad before the denoiser: about three full-resolution
            # 128-channel feature maps alive at once.
            vae_transient = 3 * 128 * w * h * half * images
        b["activations"] = kept
        details = {"images_per_step": images, "vae_encode_transient_gib": vae_transient / GIB}
        if s.framework not in (DEFAULT_FRAMEWORK, "none"):
            notes.append(f"{model.id} trains on latents: framework {s.framework} changes nothing")
    else:
        seq = s.seq_len or min(model.max_seq_len or 2048, 2048)
        if s.seq_len is None:
            notes.append(f"sequence length {seq} tokens (give --seq-len for yours)")
        kept, one_layer, per_layer, checkpoints, more = _token_activations(
            main, s, mode, act_dtype, attention, seq, s.batch
        )
        notes += more
        tokens = seq * s.batch
        head, profile_vocab = _loss_head(main, s, mode, act_dtype, attention, tokens, notes)
        # The traced rest counts the head as transformers keeps it; the framework's replaces it.
        kept += head.kept - profile_vocab * (main.vocab or 0) * tokens
        # Backward: one layer's gradients, and the loss head's peak (before the layers' backward).
        layer_transient = one_layer / 2
        if attention == "eager":
            layer_transient += 2.0 * (main.heads or 0) * seq * seq * half * s.batch
        if s.method == "qlora":
            q, k = main.linear_shapes()["up"]
            layer_transient += q * k * 2  # one weight dequantized at a time
        offload = s.offload_activations or (
            s.gradient_checkpointing and loss_heads.offloads_checkpoints(s.framework)
        )
        if offload:
            # torchtune keeps a few layers' inputs on the card while copies are in flight
            # (its forward stash, and the next layer prefetched in backward)
            on_card = checkpoints * min(1.0, OFFLOAD_LAYERS_ON_CARD / (main.layers or 1))
            kept -= checkpoints - on_card
            notes.append(
                f"checkpointed layer inputs offloaded to CPU memory "
                f"({(checkpoints - on_card) / GIB:.2f} GiB off the card)"
            )
        if head.layer_transient == "add":
            transient = head.peak + layer_transient
        elif s.gradient_checkpointing:
            # With checkpointing the loss head's moment (end of the forward) and a layer's
            # (its recompute in backward, after the head's tensors are freed) never meet.
            at_head = (kept - one_layer, head.peak)
            at_layer = (kept - head.kept, layer_transient)
            both = kept + max(head.peak, layer_transient - head.kept)
            kept, transient = max(at_head, at_layer, key=sum)
            # torch's caching allocator keeps the head's freed blocks reserved while the layers'
            # differently sized ones are made: what it holds is about both phases together.
            cached_apart = both - kept - transient
        else:
            transient = max(head.peak, layer_transient - head.kept)
        b["activations"] = kept
        vae_transient = 0.0
        details = {
            "tokens_per_step": tokens,
            "bytes_per_token_per_layer": round(per_layer),
            "loss_head": {
                "framework": head.framework,
                "kept_bytes": round(head.kept),
                "peak_bytes": round(head.peak),
            },
        }
    if master and s.method == "full":
        # autocast keeps a half-precision copy of each weight it casts for the backward pass
        b["activations"] += trainable * 2
    if attention == "eager":
        notes.append("eager attention: the full attention matrix is kept for backward")
    notes.append(
        "activations "
        + ("with" if s.gradient_checkpointing else "without")
        + " gradient checkpointing, "
        + (f"LoRA dropout {dropout}" if s.method != "full" else "full fine-tune")
    )

    # -- overhead: backward transients, optimizer step, framework -----------------------------
    static = b["weights"] + b["trainable"] + b["gradients"] + (0 if paged else b["optimizer"])
    step_temp = trainable * trainable_bytes if (opt.get("states") and s.foreach) else 0.0
    if s.optimizer_in_backward:
        step_temp = 0.0  # each parameter steps alone, inside the backward pass
    train_peak = b["activations"] + transient
    peak_dynamic = max(train_peak, vae_transient, step_temp)
    b["overlap"] = 0.0
    if (
        not image
        and s.gradient_accumulation == 1
        and not s.optimizer_in_backward
        and loss_heads.frees_gradients(s.framework)
    ):
        # The trainer sets the gradients to None after each step, so they are made during the
        # backward pass while the activations are freed: the two never peak together.
        alone = max(train_peak, b["gradients"] + step_temp, vae_transient)
        b["overlap"] = alone - (b["gradients"] + peak_dynamic)
        if b["overlap"] < 0:
            notes.append(
                "gradients are freed after every step (no accumulation): they grow during the "
                "backward pass as the activations are freed, so only the larger of the two counts"
            )
    framework, reserve, context = FRAMEWORK_FIXED, ALLOCATOR_RESERVE, s.cuda_context_gib * GIB
    if s.device == "cpu":
        framework, reserve, context = _cpu_runtime(model, notes), 0.0, 0.0
    b["overhead"] = peak_dynamic - b["activations"] + framework
    allocated = static + peak_dynamic + framework + b["overlap"]
    reserved = max(allocated * (1 + reserve), allocated + cached_apart)
    b["overhead"] += reserved - allocated
    b["cuda_context"] = context
    total = reserved + b["cuda_context"]
    if paged:
        total += b["optimizer"]
    details.update(
        {
            "mode": mode,
            "attention": attention,
            "precision": act_name,
            "trainable_params": int(trainable),
            "master_weights": master,
            "device": s.device,
            "framework": s.framework,
        }
    )
    return Estimate(b, allocated, reserved, total, notes, details)


def _loss_head(
    part: Part, s: Setup, mode: str, dtype: str, attention: str, tokens: int, notes: list[str]
) -> tuple[loss_heads.LossHead, float]:
    """The framework's loss head, and the family's traced kept bytes per token per vocabulary
    entry (which the fitted `rest` already counts)."""
    if s.gradient_checkpointing:
        mode = "full" if mode == "full" else "lora-qv"  # as _token_activations picks gc_rest
    entry, _ = _token_fit(part.profile or "llama", dtype, attention, mode)
    rest = entry.get("gc_rest" if s.gradient_checkpointing else "rest", {})
    profile_vocab = float(rest.get("vocab", HF_TRACED_KEPT_PER_VOCAB))
    framework = s.framework
    if part.model_type == "bert" and framework != DEFAULT_FRAMEWORK:
        notes.append(f"{part.name} is a classifier: no vocabulary loss head, {framework} ignored")
        framework = DEFAULT_FRAMEWORK
    elif framework != DEFAULT_FRAMEWORK:
        notes.append(f"loss head as {framework} computes it: {loss_heads.describe(framework)}")
    head = loss_heads.loss_head(
        framework,
        vocab=part.vocab or 0,
        hidden=part.hidden or 0,
        tokens=tokens,
        fp32=dtype == "fp32",
        profile_vocab=profile_vocab,
    )
    return head, profile_vocab


def _cpu_runtime(model: Model, notes: list[str]) -> float:
    """A CPU run's memory before any tensor of its own: the Python process with torch loaded,
    as anonymous memory (hardware/process_memory.py says why not RSS). Measured for the models
    that carry it (bench/image_fits.py), else the GPU figure."""
    prof = constants().get("image_models", {}).get(model.main.profile or "", {})
    runtime = prof.get("cpu_runtime_bytes")
    if runtime is None:
        notes.append("on the CPU: no measured runtime size for this model; counted 0.15 GiB")
        return FRAMEWORK_FIXED
    notes.append(
        f"on the CPU: system RAM, not VRAM; includes the Python + torch process "
        f"({runtime / 2**20:.0f} MiB measured with torch {constants()['tools']['torch']}) and "
        "the step's backward buffers measured on the real trainer; no CUDA context; torch's "
        "shared libraries (100-250 MiB of reclaimable file pages) are not counted"
    )
    return float(runtime)


def host_memory() -> tuple[float, str]:
    """RAM this machine can give a run now, in GiB, and where the figure came from."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 / GIB, "MemAvailable in /proc/meminfo"
    except (OSError, ValueError, IndexError):
        pass
    import os

    try:
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        raise TrainwrightError("cannot read this machine's free memory") from None
    return pages / GIB, "free physical pages (sysconf)"


@dataclass
class FitResult:
    estimate: Estimate
    available_gib: float | None
    fits: bool | None
    margin: float | None
    recommended_batch: int | None
    recommended_gradient_accumulation: int | None
    advice: list[str]


def check_fit(model: Model, s: Setup, available_gib: float | None) -> FitResult:
    """Estimate, and against a card: fits with the margin? else the largest batch that does."""
    est = estimate(model, s)
    if available_gib is None:
        return FitResult(est, None, None, None, None, None, [])
    budget = available_gib * GIB * (1 - SAFETY_MARGIN)
    fits = est.total <= budget
    margin = round(1 - est.total / (available_gib * GIB), 3)
    batch, advice = s.batch, []
    if not fits:
        batch = 0
        for b_try in range(s.batch - 1, 0, -1):
            if estimate(model, replace(s, batch=b_try)).total <= budget:
                batch = b_try
                break
    effective = s.batch * s.gradient_accumulation
    accumulation = math.ceil(effective / batch) if batch else None
    if batch == 0:
        advice = _advice(model, s, budget)
    elif batch < s.batch:
        advice.append(
            f"batch {s.batch} does not fit with a {int(SAFETY_MARGIN * 100)}% margin: use batch "
            f"{batch} with gradient accumulation {accumulation} (same effective batch {effective})"
        )
    return FitResult(est, available_gib, fits, margin, batch, accumulation, advice)


def _advice(model: Model, s: Setup, budget: float) -> list[str]:
    """What would make batch 1 fit, tried one change at a time."""
    tries: list[tuple[str, Setup]] = []
    if not s.gradient_checkpointing:
        tries.append(("turn on gradient checkpointing", replace(s, gradient_checkpointing=True)))
    if s.optimizer in ("adamw", "prodigy", "lion", "paged_adamw"):
        tries.append(("use the 8-bit AdamW optimizer", replace(s, optimizer="adamw8bit")))
    if model.is_image and not s.cache_latents:
        tries.append(("cache latents", replace(s, cache_latents=True)))
    if model.is_image and not s.cache_text_encoder and not s.train_text_encoder:
        tries.append(("cache text-encoder outputs", replace(s, cache_text_encoder=True)))
    if s.method == "lora" and s.base_quant == "none":
        if model.is_image:
            tries.append(("store the base in fp8", replace(s, base_quant="fp8")))
        else:
            tries.append(("use QLoRA (4-bit base)", replace(s, method="qlora")))
    if s.method == "full":
        tries.append(("train a LoRA instead", replace(s, method="lora")))
    if not model.is_image and (s.seq_len or 2048) > 512:
        tries.append(("shorten sequences to 512 tokens", replace(s, seq_len=512)))
    out = []
    for label, alt in tries:
        est = estimate(model, replace(alt, batch=1))
        verdict = "fits" if est.total <= budget else "still too big"
        out.append(f"{label}: {est.total / GIB:.1f} GiB at batch 1 ({verdict})")
    return out or ["this model does not fit on this card at batch 1: use a bigger GPU"]
