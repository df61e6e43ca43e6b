"""`trainwright vram --trace`: count a language model's activations live instead of using the
shipped constants (needs torch and transformers; nothing is downloaded)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from trainwright.errors import TrainwrightError
from trainwright.hardware import catalog
from trainwright.hardware.vram import Setup, _mode, constants, parse_targets

TRACE_SEQ = 128


def traced_model(model: catalog.Model, setup: Setup) -> catalog.Model:
    """The same model with its decoder's profile replaced by one measured now, on this CPU."""
    if model.is_image:
        raise TrainwrightError("--trace counts language models; image models use the constants")
    from trainwright.hardware import trace

    part = model.main
    if part.model_type not in trace.FAMILY_OF:
        raise TrainwrightError(f"--trace does not know model type {part.model_type!r}")
    dtype = "fp32" if setup.precision == "fp32" else "bf16"
    attention = setup.attention or model.attention
    dropout = setup.lora_dropout if setup.lora_dropout is not None else 0.05
    target_set, canon = parse_targets(setup.targets) if setup.method != "full" else ("all", ())
    mode = _mode(setup, target_set, dropout)
    targets = target_set if target_set != "all" else "all"
    if setup.method != "full" and target_set != "all":
        targets = ",".join(canon)
    seq = min(setup.seq_len or TRACE_SEQ, TRACE_SEQ)
    cfg = catalog.hf_config(part)
    entry: dict[str, Any] = {}
    gc_mode = "full" if mode == "full" else "lora-qv"
    for gc in (False, True):
        t = trace.trace_hf(
            cfg,
            method=setup.method,
            targets=targets,
            dropout=dropout,
            gc=gc,
            dtype=dtype,
            attention=attention,
            seq=seq,
        )
        prefix = "gc_" if gc else ""
        entry[prefix + "layer"] = {"one": t.per_layer}
        entry[prefix + "rest"] = {"one": t.rest}
    name = f"traced:{model.id}"
    profile = {f"{dtype}/{attention}/{mode}": entry, f"{dtype}/{attention}/{gc_mode}": entry}
    constants()["token_models"][name] = profile
    new_part = replace(part, profile=name)
    parts = {k: (new_part if v is part else v) for k, v in model.parts.items()}
    return replace(model, parts=parts)
