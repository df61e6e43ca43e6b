"""Count every catalog part's parameters by building it on the meta device, and compare.

    .venv/bin/python bench/param_counts.py

Needs torch, transformers and diffusers (fitting-only dependencies, not runtime ones). Prints one
line per part: the catalog's count, the built count, and OK or the difference. Nothing is
downloaded: each architecture is built from the sizes written in resources/models/catalog.yaml
(token models) or from the published component configs reproduced in bench/image_fits.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "bench"))

from trainwright.hardware import catalog  # noqa: E402

VAE = {
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "layers_per_block": 2,
}


def _count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def build(part: catalog.Part, model: catalog.Model) -> Any:
    import diffusers
    import transformers as tf
    from image_fits import DITS, UNETS

    if part.role == "decoder":
        cfg = tf.AutoConfig.for_model(**catalog.hf_config(part))
        if part.model_type == "bert":
            return tf.AutoModelForSequenceClassification.from_config(cfg)
        return tf.AutoModelForCausalLM.from_config(cfg)
    if part.profile == "tiny-unet":  # the embedded backend's own model
        from trainwright.backends.tiny_model.model import TinyDenoiser

        return TinyDenoiser()
    if part.profile in UNETS:
        return diffusers.UNet2DConditionModel(**UNETS[part.profile]["config"])
    if part.profile in DITS:
        spec = DITS[part.profile]
        cfg = dict(spec["config"])
        cfg[spec["double"]] = model.double_blocks
        if spec["single"]:
            cfg[spec["single"]] = model.single_blocks
        if spec.get("dual"):
            cfg[spec["dual"]] = tuple(range(model.dual_blocks))
        if part.profile == "flux" and model.id == "flux-1-schnell":
            cfg["guidance_embeds"] = False
        return getattr(diffusers, spec["class"])(**cfg)
    if part.role == "vae":
        return diffusers.AutoencoderKL(
            **VAE, latent_channels=model.latent_channels, use_quant_conv=model.latent_channels == 4
        )
    if part.profile == "t5":
        return tf.T5EncoderModel(
            tf.T5Config(
                d_model=part.hidden,
                d_ff=part.intermediate,
                num_layers=part.layers,
                num_heads=part.heads,
                d_kv=part.hidden // part.heads,
                vocab_size=part.vocab,
                feed_forward_proj="gated-gelu",
            )
        )
    cfg = tf.CLIPTextConfig(
        hidden_size=part.hidden,
        intermediate_size=part.intermediate,
        num_hidden_layers=part.layers,
        num_attention_heads=part.heads,
        vocab_size=part.vocab,
        projection_dim=part.hidden,
    )
    with_projection = part.hidden == 1280 or model.family == "sd3"
    return (tf.CLIPTextModelWithProjection if with_projection else tf.CLIPTextModel)(cfg)


def main() -> int:
    import torch

    bad = 0
    cat = catalog.load()
    for model_id in cat.ids():
        model = cat.get(model_id)
        for name, part in model.parts.items():
            with torch.device("meta"):
                built = _count(build(part, model))
            ok = built == part.params
            bad += not ok
            diff = "OK" if ok else f"DIFFERS by {built - part.params:+d}"
            print(
                f"{model_id:16s} {name:15s} catalog {part.params:>14,d} built {built:>14,d} {diff}"
            )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
