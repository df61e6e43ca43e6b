"""How close `trainwright vram --framework` comes to published peaks that show framework effects.

    .venv/bin/python bench/vram_frameworks.py [--markdown]

The points are those of ../shared/calibration/framework-points.md (copied below with their
settings, as the sources state them): torchtune's optimisation ladder (Llama 3.2 3B, batch 2,
packed to 4096 tokens, A100, "Peak Memory Active" = allocated) and LLaMA-Factory's Hugging Face vs
Unsloth comparison (LLaMA2-7B; figures in GB, whole numbers, as nvidia-smi shows them). None of
them was used to set a factor: the loss heads are traced (resources/models/loss-heads.yaml).

Rows whose optimisation the estimator does not model (compile's effect on the layers without
checkpointing, Unsloth's fused layer kernels) or whose settings the source leaves inconsistent are
listed with the reason in `note`, never dropped, and summarised apart. Settings a source leaves
unstated are in `assumed`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from trainwright.hardware import catalog  # noqa: E402
from trainwright.hardware.vram import GIB, Setup, estimate  # noqa: E402

UNITS = {"GB": 1e9, "GiB": 2**30}
TARGET = {"median": 0.08, "under": -0.05, "over": 0.25}

# torchtune README (0.6.1 package METADATA, "Optimization flags"): full_finetune_single_device,
# Llama 3.2 3B, batch 2, max sequence 4096, bf16 (pure: no fp32 master copy), torch AdamW, SDPA.
# torchtune's configs that use torch AdamW set `fused: True` (llama3_2/3B_full.yaml,
# 3B_lora_single_device.yaml, 3B_qlora_single_device.yaml): no foreach temporary at the step.
TT = Setup(
    method="full",
    precision="bf16",
    optimizer="adamw",
    batch=2,
    seq_len=4096,
    gradient_checkpointing=False,
    master_weights=False,
    foreach=False,
)
TT_AC = replace(TT, gradient_checkpointing=True)
TT_OPT_BWD = replace(TT_AC, optimizer_in_backward=True)
TT_OFFLOAD = replace(TT_OPT_BWD, offload_activations=True)
# The LoRA / QLoRA rows' command (README): compile, chunked CE, AC, activation offloading,
# optimizer_in_bwd=False, torch AdamW.
TT_LORA = replace(
    TT, method="lora", rank=64, targets="q_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
    lora_dropout=0.0, gradient_checkpointing=True, offload_activations=True,
)  # fmt: skip  # llama3_2/3B_lora_single_device.yaml: q, v, output_proj + MLP, rank 64, dropout 0
TT_NOTE = "torchtune README ladder"
# LLaMA-Factory wiki "Performance comparison" (rev. 2024-04-15). Unstated: batch, rank, targets,
# checkpointing. Assumed from LLaMA-Factory's example configs of the time: batch 1, LoRA rank 8 on
# q_proj,v_proj, dropout 0, fp16, gradient checkpointing on; GB read as nvidia-smi (CUDA context
# included).
LF = Setup(
    method="lora",
    precision="fp16",
    rank=8,
    targets="q,v",
    batch=1,
    seq_len=1024,
    lora_dropout=0.0,
    gradient_checkpointing=True,
    master_weights=False,
)
LF_ASSUMED = "batch 1, rank 8 q,v, fp16, checkpointing (unstated; LLaMA-Factory examples)"
# The comparison table's rows are not judged: the same wiki page's context sweep puts the
# Hugging Face QLoRA run at 1k tokens at 6 GB where the table puts it at 9 GB, so the table ran
# settings it does not state (batch, targets) and no assumption fits both.
LF_TABLE = "comparison table: its unstated settings differ from the sweep's (QLoRA 1k: 9 vs 6 GB)"

POINTS: list[dict[str, Any]] = [
    {"point": "tt-baseline-unpacked", "model": "llama-3.2-3b", "framework": "hf", "setup": None,
     "peak": 25.5, "unit": "GiB", "metric": "alloc",
     "note": "not estimable: unpacked alpaca batches, their length is not stated"},
    {"point": "tt-packed", "model": "llama-3.2-3b", "framework": "hf", "setup": TT,
     "peak": 60.0, "unit": "GiB", "metric": "alloc", "note": "",
     "assumed": "torchtune's plain cross-entropy traces identical to hf (4 kept, 12 at peak)"},
    {"point": "tt-packed-compile", "model": "llama-3.2-3b", "framework": "hf", "setup": TT,
     "peak": 51.0, "unit": "GiB", "metric": "alloc",
     "note": "compile of the layers and of the plain loss not modelled (errs high)"},
    {"point": "tt-chunked-ce", "model": "llama-3.2-3b", "framework": "torchtune-compile",
     "setup": TT, "peak": 42.9, "unit": "GiB", "metric": "alloc",
     "note": "compile of the layers not modelled (errs high)"},
    {"point": "tt-activation-ckpt", "model": "llama-3.2-3b", "framework": "torchtune-compile",
     "setup": TT_AC, "peak": 24.9, "unit": "GiB", "metric": "alloc", "note": ""},
    {"point": "tt-opt-in-bwd", "model": "llama-3.2-3b", "framework": "torchtune-compile",
     "setup": TT_OPT_BWD, "peak": 23.1, "unit": "GiB", "metric": "alloc", "note": ""},
    {"point": "tt-act-offload", "model": "llama-3.2-3b", "framework": "torchtune-compile",
     "setup": TT_OFFLOAD, "peak": 21.8, "unit": "GiB", "metric": "alloc", "note": ""},
    {"point": "tt-8bit-adamw", "model": "llama-3.2-3b", "framework": "torchtune-compile",
     "setup": replace(TT_OFFLOAD, optimizer="adamw8bit"), "peak": 17.6, "unit": "GiB",
     "metric": "alloc", "note": ""},
    {"point": "tt-lora", "model": "llama-3.2-3b", "framework": "torchtune-compile",
     "setup": TT_LORA, "peak": 8.5, "unit": "GiB", "metric": "alloc", "note": ""},
    {"point": "tt-qlora", "model": "llama-3.2-3b", "framework": "torchtune-compile",
     "setup": replace(TT_LORA, method="qlora"), "peak": 4.6, "unit": "GiB", "metric": "alloc",
     "note": ""},
    {"point": "lf-lora16-hf", "model": "llama-2-7b", "framework": "hf", "setup": LF,
     "peak": 18, "unit": "GB", "metric": "smi", "note": LF_TABLE, "assumed": LF_ASSUMED},
    {"point": "lf-lora16-hf-fa2", "model": "llama-2-7b", "framework": "hf", "setup": LF,
     "peak": 17, "unit": "GB", "metric": "smi", "note": LF_TABLE, "assumed": LF_ASSUMED},
    {"point": "lf-lora16-unsloth", "model": "llama-2-7b", "framework": "unsloth", "setup": LF,
     "peak": 16, "unit": "GB", "metric": "smi", "note": LF_TABLE,
     "assumed": LF_ASSUMED},
    {"point": "lf-qlora-hf", "model": "llama-2-7b", "framework": "hf",
     "setup": replace(LF, method="qlora"), "peak": 9, "unit": "GB", "metric": "smi",
     "note": LF_TABLE,
     "assumed": LF_ASSUMED},
    {"point": "lf-qlora-unsloth", "model": "llama-2-7b", "framework": "unsloth",
     "setup": replace(LF, method="qlora"), "peak": 7, "unit": "GB", "metric": "smi",
     "note": LF_TABLE, "assumed": LF_ASSUMED},
]  # fmt: skip
SWEEP = {  # QLoRA 4-bit context sweep: tokens -> (FA2 GB, Unsloth + FA2 GB); None = OOM
    1024: (6, 5), 2048: (7, 6), 4096: (9, 7), 8192: (12, 8), 16384: (19, 10),
    32768: (32, 16), 65536: (None, 25), 102400: (None, 37),
}  # fmt: skip
for _tokens, (_fa2, _uns) in SWEEP.items():
    _s = replace(LF, method="qlora", seq_len=_tokens)
    for _fw, _peak in (("hf", _fa2), ("unsloth", _uns)):
        POINTS.append(
            {"point": f"lf-qlora-{_tokens // 1024}k-{_fw}", "model": "llama-2-7b",
             "framework": _fw, "setup": _s, "peak": _peak, "unit": "GB", "metric": "smi",
             "note": "published: out of memory" if _peak is None else
             ("Unsloth's fused layer kernels not modelled (errs high at long context)"
              if _fw == "unsloth" else ""),
             "assumed": "QLoRA as above; sequences of the stated length"}
        )  # fmt: skip


def rows() -> list[dict[str, Any]]:
    cat = catalog.load()
    out = []
    for p in POINTS:
        row = {k: p.get(k, "") for k in ("point", "framework", "note", "assumed")}
        published = None if p["peak"] is None else p["peak"] * UNITS[p["unit"]] / GIB
        figures: dict[str, float | None] = {"estimate": None, "generic": None}
        if p["setup"] is not None:
            # "generic": the estimator before this issue, which knew neither the framework nor
            # its loop (optimizer in backward, offloading, a fused optimizer step)
            before = replace(
                p["setup"], framework="generic", optimizer_in_backward=False,
                offload_activations=False, foreach=True,
            )  # fmt: skip
            for key, setup in (
                ("estimate", replace(p["setup"], framework=p["framework"])),
                ("generic", before),
            ):
                est = estimate(cat.get(p["model"]), setup)
                figures[key] = (est.total if p["metric"] == "smi" else est.allocated) / GIB
        errors = {
            key: None if published is None or v is None else v / published - 1
            for key, v in figures.items()
        }
        row.update(
            published=published,
            estimate=figures["estimate"],
            error=errors["estimate"],
            generic_error=errors["generic"],
            metric=p["metric"],
        )
        out.append(row)
    return out


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+.1%}" if pct else f"{v:.2f}"


def summary(table: list[dict[str, Any]], judged: set[str] | None = None) -> dict[str, Any]:
    """Median |error|, most under and most over, over the rows with both figures and no
    unmodelled optimisation (`judged` names them; default: rows without a note)."""
    errs = [
        r["error"]
        for r in table
        if r["error"] is not None and (r["point"] in judged if judged else not r["note"])
    ]
    if not errs:
        return {"n": 0}
    med = statistics.median(abs(e) for e in errs)
    res = {"n": len(errs), "median": med, "under": min(errs), "over": max(errs)}
    res["meets"] = (
        med < TARGET["median"] and min(errs) >= TARGET["under"] and (max(errs) <= TARGET["over"])
    )
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    table = rows()
    if args.markdown:
        print(
            "| point | framework | metric | published GiB | estimate GiB | error | "
            "error before | note |"
        )
        print("|---|---|---|---:|---:|---:|---:|---|")
        for r in table:
            print(
                f"| {r['point']} | {r['framework']} | {r['metric']} | {_fmt(r['published'])} | "
                f"{_fmt(r['estimate'])} | {_fmt(r['error'], True)} | "
                f"{_fmt(r['generic_error'], True)} | {r['note']} |"
            )
    else:
        for r in table:
            print(
                f"{r['point']:24s} {r['framework']:18s} published {_fmt(r['published']):>6s} "
                f"estimate {_fmt(r['estimate']):>6s} GiB {_fmt(r['error'], True):>7s} "
                f"(generic {_fmt(r['generic_error'], True):>7s})  {r['note']}"
            )
    for label, sel in (("modelled rows", None), ("all rows", {r["point"] for r in table})):
        s = summary(table, sel)
        if s["n"]:
            print(
                f"{label}: n={s['n']} median |error| {s['median']:.1%}, most under "
                f"{s['under']:+.1%}, most over {s['over']:+.1%} -> "
                f"{'meets' if s['meets'] else 'misses'} the targets (median < 8%, under >= -5%, "
                "over <= +25%)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
