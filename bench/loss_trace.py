"""Measure, on the CPU, what each training framework's loss head keeps for backward and what it
holds at its peak, in bytes per token per vocabulary entry.

The loss head is the last norm's output projected onto the vocabulary, the cross-entropy and its
backward. Each framework's own code runs on a random-init model built from a config (nothing is
downloaded); torch's profiler records every CPU allocation, so the live total is known at every
moment. Running the same step at two vocabulary sizes and differencing leaves only the part that
grows with the vocabulary (the layers, embeddings and inputs cancel).

- kept: bytes alive when backward starts (what autograd saved, plus what the trainer still holds);
- peak: the most bytes alive at any moment of forward + backward, above the starting point.

Behind resources/hardware/loss-heads.yaml (see bench/trace_loss_heads.py). torch, transformers,
trl and torchtune are imported only here, lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainwright.errors import TrainwrightError

FRAMEWORKS = ("hf", "trl", "torchtune", "torchtune-unchunked", "torchtune-compile")


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise TrainwrightError("tracing a loss head needs torch: pip install torch") from None
    return torch


@dataclass
class Measure:
    kept: int  # bytes alive when backward starts, above the start
    peak: int  # most bytes alive during forward + backward, above the start


def measure(step: Callable[[], Any], backward: Callable[[Any], None]) -> Measure:
    """Profile `step()` (the forward, returning what the trainer holds into backward) and then
    `backward(held)`; the allocations' running sum gives kept and peak."""
    torch = _torch()
    from torch.profiler import ProfilerActivity, profile

    marks: list[int] = []
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        held = step()
        with torch.profiler.record_function("trainwright-backward-starts"):
            pass
        backward(held)
        del held
    events = sorted(prof.profiler.kineto_results.events(), key=lambda e: e.start_ns())
    total = peak = 0
    for e in events:
        if e.name() == "[memory]":
            total += e.nbytes()
            peak = max(peak, total)
        elif e.name() == "trainwright-backward-starts":
            marks.append(total)
    if not marks:
        raise TrainwrightError("the profiler recorded no backward marker")
    return Measure(marks[0], peak)


def _qwen2(vocab: int, hidden: int, dtype: Any) -> Any:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    )
    cfg._attn_implementation = "sdpa"
    model = Qwen2ForCausalLM(cfg).to(dtype)
    _lora_like(model, "q_proj")
    return model


def _lora_like(model: Any, name: str) -> None:
    """Freeze everything but one projection inside the layer, as LoRA leaves the head frozen:
    backward then runs through the whole loss head without a vocabulary-sized weight gradient."""
    for n, p in model.named_parameters():
        p.requires_grad_(name in n and n.endswith("weight"))


def _step_hf(vocab: int, hidden: int, tokens: int, dtype: Any, trl: bool) -> Measure:
    torch = _torch()
    torch.manual_seed(0)
    model = _qwen2(vocab, hidden, dtype)
    model.train()
    ids = torch.randint(0, vocab, (1, tokens))
    if trl:
        from trl.trainer.utils import add_fused_lm_head

        # as SFTTrainer.__init__ (trl 1.16) patches the model
        add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))

        def step() -> Any:
            # SFTTrainer.compute_loss: fused head, loss from log_probs, the two metrics
            out = model(input_ids=ids, labels=ids, use_cache=False, fused_lm_head=True)
            loss = -out.log_probs.sum() / out.label_mask.sum().clamp(min=1)
            float(out.entropy.detach().sum())
            float(out.is_top1.sum())
            return loss
    else:

        def step() -> Any:
            # Trainer.compute_loss: outputs["loss"], the outputs dropped on return
            return model(input_ids=ids, labels=ids, use_cache=False)["loss"]

    return measure(step, lambda loss: loss.backward())


def _step_torchtune(
    vocab: int, hidden: int, tokens: int, dtype: Any, chunked: bool, compiled: bool
) -> Measure:
    torch = _torch()
    from torchtune.models.llama3 import llama3
    from torchtune.modules.loss import CEWithChunkedOutputLoss

    torch.manual_seed(0)
    model = llama3(
        vocab_size=vocab,
        num_layers=1,
        num_heads=4,
        num_kv_heads=2,
        embed_dim=hidden,
        max_seq_len=4096,
        intermediate_dim=2 * hidden,
    ).to(dtype)
    _lora_like(model, "q_proj")
    model.train()
    ids = torch.randint(0, vocab, (1, tokens))
    if chunked:
        loss_fn: Any = CEWithChunkedOutputLoss()
        model.set_num_output_chunks(loss_fn.num_output_chunks)
        if compiled:  # what training.compile_loss does
            loss_fn.compute_cross_entropy = torch.compile(loss_fn.compute_cross_entropy)
    else:
        loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100)
        if compiled:
            loss_fn = torch.compile(loss_fn)
    labels = torch.cat([ids[:, 1:], torch.full((1, 1), -100)], dim=1)

    def step() -> Any:
        # full_finetune_single_device._loss_step (torchtune 0.6.1)
        logits = model(ids)
        if chunked:
            loss = loss_fn(logits, labels)
        else:
            loss = loss_fn(logits.reshape(-1, logits.size(-1)), labels.reshape(-1))
        del logits  # "free logits otherwise it peaks backward memory"
        return loss

    if compiled:  # compile outside the measurement, as the first training step does
        step().backward()
        model.zero_grad(set_to_none=True)
    return measure(step, lambda loss: loss.backward())


def trace_step(framework: str, vocab: int, hidden: int, tokens: int, dtype: str) -> Measure:
    torch = _torch()
    dt = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    if framework in ("hf", "trl"):
        return _step_hf(vocab, hidden, tokens, dt, trl=framework == "trl")
    if framework.startswith("torchtune"):
        return _step_torchtune(
            vocab,
            hidden,
            tokens,
            dt,
            chunked=framework != "torchtune-unchunked",
            compiled=framework == "torchtune-compile",
        )
    raise TrainwrightError(f"no loss-head trace for {framework!r}: one of {', '.join(FRAMEWORKS)}")


def per_vocab(
    framework: str,
    *,
    vocabs: tuple[int, int] = (4096, 16384),
    hidden: int = 64,
    tokens: int = 256,
    dtype: str = "bf16",
) -> dict[str, float]:
    """Bytes per token per vocabulary entry, kept and at peak, from two vocabulary sizes."""
    small, big = (trace_step(framework, v, hidden, tokens, dtype) for v in vocabs)
    scale = tokens * (vocabs[1] - vocabs[0])
    return {
        "kept": round((big.kept - small.kept) / scale, 3),
        "peak": round((big.peak - small.peak) / scale, 3),
    }
