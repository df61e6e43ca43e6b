"""`trainwright vram`: will this training run fit on this GPU, and if not, what will."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from trainwright.errors import TrainwrightError
from trainwright.numeric import Float, Int, Positive
from trainwright.output import emit, json_option


class FrameworkChoice(click.Choice):
    """The frameworks of resources/models/loss-heads.yaml, read when first needed (not when the
    CLI is imported)."""

    def __init__(self) -> None:
        super().__init__([])

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        from trainwright.hardware.loss_heads import frameworks

        return frameworks()

    @choices.setter
    def choices(self, value: Any) -> None:
        pass


class FrameworkOption(click.Option):
    """--framework, whose help lists each framework with its one-line description."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from trainwright.hardware import loss_heads

        lines = [
            "The trainer's loss head (the vocabulary-sized memory of a language model). "
            f"Default: {loss_heads.default_framework()}."
        ]
        lines += [f"{name}: {loss_heads.describe(name)}." for name in loss_heads.frameworks()]
        self.help = "\n\n".join(lines)
        return super().get_help_record(ctx)


def parse_resolution(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    raw = text.lower().replace(" ", "")
    parts = raw.split("x") if "x" in raw else [raw, raw]
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise TrainwrightError(f"--resolution must be W or WxH in pixels, not {text!r}") from None
    if w <= 0 or h <= 0:
        raise TrainwrightError(f"--resolution must be positive, not {text!r}")
    return w, h


def resolve_model(model_id: str | None, hf_config: Path | None) -> Any:
    from trainwright.hardware import catalog

    if bool(model_id) == bool(hf_config):
        raise TrainwrightError("give exactly one of --model ID or --hf-config PATH")
    if hf_config:
        return catalog.from_hf_config(hf_config)
    return catalog.load().get(str(model_id))


def ram_target() -> Any:
    """System RAM available now, in the shape a GPU target has (for a run on the CPU)."""
    from trainwright.hardware.gpu import GPUSpec
    from trainwright.hardware.vram import host_memory

    gib, source = host_memory()
    return GPUSpec("system RAM", round(gib, 2), None, source=source)


def report(model: Any, result: Any, gpu: Any) -> dict[str, Any]:
    """The stable JSON shape of `trainwright vram --json` (see the README)."""
    from trainwright.hardware.vram import GIB

    est = result.estimate
    head = est.details.get("loss_head")
    return {
        "model": model.id,
        "framework": est.details["framework"],
        "total_gib": round(est.total / GIB, 2),
        "breakdown": {
            "weights_gib": est.gib("weights"),
            "trainable_gib": est.gib("trainable"),
            "gradients_gib": est.gib("gradients"),
            "optimizer_gib": est.gib("optimizer"),
            "activations_gib": est.gib("activations"),
            "overhead_gib": est.gib("overhead"),
            # <= 0: gradients made during backward while the activations are freed
            "overlap_gib": est.gib("overlap"),
            "cuda_context_gib": est.gib("cuda_context"),
        },
        # inside activations_gib (kept) and overhead_gib (peak); null for image models
        "loss_head": {
            "framework": head["framework"],
            "kept_gib": round(head["kept_bytes"] / GIB, 2),
            "peak_gib": round(head["peak_bytes"] / GIB, 2),
        }
        if head
        else None,
        "allocated_gib": round(est.allocated / GIB, 2),
        "reserved_gib": round(est.reserved / GIB, 2),
        "fits": result.fits,
        "margin": result.margin,
        "available_gib": result.available_gib,
        "gpu": gpu.name if gpu else None,
        "recommended_batch": result.recommended_batch,
        "recommended_gradient_accumulation": result.recommended_gradient_accumulation,
        "advice": result.advice,
        "assumptions": est.assumptions,
        "details": est.details,
    }


def render(d: dict[str, Any]) -> str:
    b = d["breakdown"]
    rows = [
        ("frozen weights", b["weights_gib"]),
        ("trainable parameters", b["trainable_gib"]),
        ("gradients", b["gradients_gib"]),
        ("optimizer state", b["optimizer_gib"]),
        ("activations", b["activations_gib"]),
        ("framework + allocator", b["overhead_gib"]),
        *([("gradients/activations overlap", b["overlap_gib"])] if b["overlap_gib"] else []),
        ("CUDA context", b["cuda_context_gib"]),
    ]
    cpu = d["details"].get("device") == "cpu"
    title = "Memory estimate (CPU run, system RAM)" if cpu else "VRAM estimate"
    lines = [f"{title} for {d['model']}:"]
    lines += [f"  {label:24s} {value:8.2f} GiB" for label, value in rows]
    lines.append(f"  {'total':24s} {d['total_gib']:8.2f} GiB")
    head = d.get("loss_head")
    if head:
        lines.append(
            f"  loss head ({head['framework']}): {head['kept_gib']:.2f} GiB kept in the "
            f"activations, {head['peak_gib']:.2f} GiB more at its peak"
        )
    if not cpu:
        lines.append(
            f"  (torch would report about {d['allocated_gib']:.2f} GiB allocated, "
            f"{d['reserved_gib']:.2f} GiB reserved)"
        )
    kept = d.get("measured_ratio")
    if kept:
        lines.append(
            f"  measured on this GPU ({kept['date']}): x{kept['ratio']:.2f} the estimate, so "
            f"about {kept['corrected_total_gib']:.2f} GiB (grimoire/studio.md)"
        )
    if d["available_gib"] is not None:
        budget = d["available_gib"] * 0.8
        verdict = "FITS" if d["fits"] else "DOES NOT FIT"
        lines.append(
            f"{d['gpu']}: {d['available_gib']:.1f} GiB, {budget:.1f} GiB usable with the 20% "
            f"safety margin -> {verdict}"
        )
        if not d["fits"]:
            if d["recommended_batch"]:
                lines.append(
                    f"  largest batch that fits: {d['recommended_batch']}, with gradient "
                    f"accumulation {d['recommended_gradient_accumulation']} to keep the effective "
                    "batch"
                )
        lines += [f"  - {a}" for a in d["advice"]]
    else:
        lines.append("no GPU given (--gpu NAME, --vram GB or a GPU in grimoire/studio.md)")
    lines.append("assumptions:")
    lines += [f"  - {a}" for a in d["assumptions"]]
    return "\n".join(lines)


@click.command("vram")
@click.option("--model", "model_id", metavar="ID", help="A catalog model (see --list-models).")
@click.option(
    "--hf-config",
    type=click.Path(path_type=Path),
    help="Your own model: a Hugging Face config.json read locally (Llama, Mistral, Qwen2, Gemma, "
    "Phi, BERT style).",
)
@click.option(
    "--method", type=click.Choice(["lora", "qlora", "full"]), default="lora", show_default=True
)
@click.option(
    "--precision",
    type=click.Choice(["bf16", "fp16", "fp32"]),
    default="bf16",
    show_default=True,
    help="Training precision (weights and activations).",
)
@click.option("--rank", type=Int(None, 4096), default=16, show_default=True, help="LoRA rank.")
@click.option(
    "--targets",
    default="attn",
    show_default=True,
    help="LoRA targets: q,v | attn | all-linear | module names (q_proj,v_proj,...).",
)
@click.option(
    "--optimizer",
    default="adamw",
    show_default=True,
    help="adamw, adamw8bit, paged_adamw, paged_adamw8bit, lion, lion8bit, prodigy, adafactor, sgd.",
)
@click.option(
    "--batch", type=Int(None, 65536), default=1, show_default=True, help="Micro-batch size."
)
@click.option("--seq-len", type=Int(1, 4_194_304), help="Tokens per sequence (language models).")
@click.option("--resolution", help="Image side W or WxH in pixels (image models).")
@click.option("--gradient-accumulation", type=Int(None, 65536), default=1, show_default=True)
@click.option(
    "--gradient-checkpointing/--no-gradient-checkpointing",
    default=True,
    show_default=True,
    help="Recompute activations in the backward pass.",
)
@click.option("--cache-latents", is_flag=True, help="Latents cached: the VAE is off the GPU.")
@click.option(
    "--cache-text-encoder",
    is_flag=True,
    help="Text-encoder outputs cached: the text encoders are off the GPU.",
)
@click.option("--train-text-encoder", is_flag=True, help="Also train the text encoder(s).")
@click.option(
    "--attention",
    type=click.Choice(["sdpa", "eager"]),
    help="Attention kernel: sdpa (flash / memory-efficient) or eager (keeps the "
    "attention matrix). Default: the model's.",
)
@click.option(
    "--lora-dropout",
    type=Float(0, 1, high_open=True),
    help="Default 0.05 for LLMs, 0 for image models.",
)
@click.option(
    "--base-quant",
    type=click.Choice(["none", "int8", "fp8", "nf4"]),
    default="none",
    show_default=True,
    help="Store the frozen base quantized (qlora implies nf4).",
)
@click.option(
    "--master-weights/--no-master-weights",
    default=None,
    help="Keep fp32 trainable weights (mixed precision). Default: yes for fp16 and for "
    "image trainers, no for pure-bf16 LLM recipes.",
)
@click.option(
    "--prior-preservation",
    is_flag=True,
    help="DreamBooth with class images: two images per step for each one in the batch.",
)
@click.option(
    "--cuda-context",
    "cuda_context",
    type=Float(0, 64),
    default=1.0,
    show_default=True,
    help="GiB the CUDA context takes outside PyTorch's allocator.",
)
@click.option(
    "--device",
    type=click.Choice(["cuda", "cpu"]),
    default="cuda",
    show_default=True,
    help="Where the run trains. cpu: the estimate is system RAM (Python + torch process "
    "included, no CUDA context) and, without --gpu / --vram, is checked against the RAM "
    "available now.",
)
@click.option(
    "--framework",
    type=FrameworkChoice(),
    default="generic",
    show_default=True,
    cls=FrameworkOption,
)
@click.option(
    "--optimizer-in-backward",
    is_flag=True,
    help="Each gradient is applied and freed as it is made (a recipe's optimizer_in_bwd); "
    "needs --gradient-accumulation 1.",
)
@click.option(
    "--offload-activations",
    is_flag=True,
    help="The checkpointed layer inputs wait in CPU memory (a recipe's "
    "enable_activation_offloading); needs gradient checkpointing.",
)
@click.option(
    "--fused-optimizer",
    is_flag=True,
    help="The optimizer steps with a fused kernel or one tensor at a time (AdamW fused=True): "
    "no parameter-sized temporary at the step.",
)
@click.option("--gpu", help="A GPU from grimoire/studio.md or the GPU table (e.g. 'RTX 4090').")
@click.option("--vram", type=Positive(65536), help="Available memory in GB; overrides --gpu's.")
@click.option(
    "--trace",
    is_flag=True,
    help="Count the activations live (needs torch and transformers) instead of using "
    "the shipped constants; for --hf-config or catalog language models.",
)
@click.option(
    "--measure",
    is_flag=True,
    help="Also run 3 real training steps of the exact architecture with random weights on "
    "this machine's GPU (built from its config, nothing downloaded) and print the measured peak "
    "beside the estimate. Without a CUDA GPU, or for a model the pack cannot build, the estimate "
    "is printed alone and the command exits 2 with the reason.",
)
@click.option("--list-models", is_flag=True, help="List the catalog's model ids and exit.")
@json_option
@click.pass_context
def vram_cmd(ctx: click.Context, **opts: Any) -> int:
    """Estimate the GPU memory a training run needs, and whether it fits.

    Prints a breakdown (frozen weights, trainable parameters, gradients, optimizer state,
    activations, framework overhead, CUDA context) and the total in GiB. With a GPU (--gpu,
    --vram, or the one in grimoire/studio.md) it says whether the run fits with a 20% safety
    margin, and if not, the largest batch that does and the gradient accumulation that keeps
    the effective batch. Exit 0 when it fits (or no GPU was given), 1 when it does not.
    With --device cpu (the embedded tiny backend on a machine without a GPU) the figure is
    system RAM and is checked against the RAM available now.

    \b
    Examples:
      trainwright vram --model sdxl --resolution 1024 --rank 16 --gpu "RTX 4090"
      trainwright vram --model llama-3.1-8b --method qlora --seq-len 2048 --batch 4 --vram 24
      trainwright vram --hf-config ./my-model/config.json --method lora --json
      trainwright vram --model tiny --resolution 64 --batch 4 --device cpu
    """
    from trainwright.hardware import catalog
    from trainwright.hardware.studio_gpus import select_gpu
    from trainwright.hardware.vram import Setup, check_fit

    as_json = opts.pop("as_json")
    if opts["list_models"]:
        cat = catalog.load()
        data = {
            "models": [
                {"id": m, "name": cat.get(m).name, "kind": cat.get(m).kind} for m in cat.ids()
            ]
        }
        emit(data, as_json, lambda d: "\n".join(f"{m['id']:18s} {m['name']}" for m in d["models"]))
        return 0
    model = resolve_model(opts["model_id"], opts["hf_config"])
    setup = Setup(
        method=opts["method"],
        precision=opts["precision"],
        rank=opts["rank"],
        targets=opts["targets"],
        optimizer=opts["optimizer"].lower(),
        batch=opts["batch"],
        seq_len=opts["seq_len"],
        resolution=parse_resolution(opts["resolution"]),
        gradient_accumulation=opts["gradient_accumulation"],
        gradient_checkpointing=opts["gradient_checkpointing"],
        cache_latents=opts["cache_latents"],
        cache_text_encoder=opts["cache_text_encoder"],
        train_text_encoder=opts["train_text_encoder"],
        attention=opts["attention"],
        lora_dropout=opts["lora_dropout"],
        base_quant=opts["base_quant"],
        master_weights=opts["master_weights"],
        prior_preservation=opts["prior_preservation"],
        cuda_context_gib=opts["cuda_context"],
        device=opts["device"],
        framework=opts["framework"],
        optimizer_in_backward=opts["optimizer_in_backward"],
        offload_activations=opts["offload_activations"],
        foreach=not opts["fused_optimizer"],
    )
    if opts["trace"]:
        from trainwright.hardware.live_trace import traced_model

        model = traced_model(model, setup)
    grimoire = ctx.find_root().obj["grimoire"]
    gpu = select_gpu(grimoire, opts["gpu"], opts["vram"])
    if gpu is None and setup.device == "cpu":
        gpu = ram_target()
    if opts["measure"]:
        from trainwright.hardware.measure import measure_setup

        setup = measure_setup(model, setup)
    result = check_fit(model, setup, gpu.memory_gib if gpu else None)
    data = report(model, result, gpu)
    data["measured_ratio"] = kept_ratio(grimoire, gpu, result.estimate)
    if opts["measure"]:
        from trainwright.hardware.vram_measure import measure_into

        return measure_into(data, model, setup, result.estimate, as_json, render)
    emit(data, as_json, render)
    return 1 if data["fits"] is False else 0


def kept_ratio(grimoire: Any, gpu: Any, est: Any) -> dict[str, Any] | None:
    """The measured/estimated ratio studio.md keeps for this GPU, with the corrected total."""
    from trainwright.hardware.measured import ratio_for
    from trainwright.hardware.vram import GIB
    from trainwright.state.grimoire import Grimoire

    if gpu is None or gpu.name == "system RAM":
        return None
    g = grimoire if isinstance(grimoire, Grimoire) else Grimoire(grimoire)
    try:
        kept = ratio_for(g, gpu.name)
    except TrainwrightError:  # a damaged studio.md does not block an estimate for --vram GB
        return None
    if kept is None:
        return None
    ratio, day = kept
    corrected = (est.reserved * ratio + est.total - est.reserved) / GIB
    return {"ratio": ratio, "date": day, "corrected_total_gib": round(corrected, 2)}
