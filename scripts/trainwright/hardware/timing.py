"""A rough training-time estimate: FLOPs per step over the card's bf16 throughput.

Forward FLOPs are 2 x parameters x tokens (a DiT's image+text tokens; an LLM's tokens; for the
SD UNets, latent pixels / 16, the width at which their convolutions and attention mostly run).
A training step costs three forwards (forward + backward), four with gradient checkpointing.
Achieved throughput is taken as 35% of the datasheet peak. Good to a factor of about two.
"""

from __future__ import annotations

from trainwright.hardware.catalog import Model

UTILISATION = 0.35


def forward_flops(model: Model, per_example: int) -> float:
    """per_example: tokens (LLM) or pixels per image side squared (image models)."""
    main = model.main
    if not model.is_image:
        return 2.0 * main.params * per_example
    factor = model.latent_factor or 8
    latent_px = per_example / (factor * factor)
    if model.patch:
        tokens = latent_px / (model.patch**2) + (model.text_tokens or 0)
        return 2.0 * main.params * tokens
    return 2.0 * main.params * latent_px / 16


def seconds_per_step(
    model: Model, per_example: int, examples: int, tflops: float, checkpointing: bool
) -> float:
    passes = 4 if checkpointing else 3
    return forward_flops(model, per_example) * examples * passes / (tflops * 1e12 * UTILISATION)


def describe(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
