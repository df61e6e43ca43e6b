"""`trainwright vram`: accuracy against published measurements, the physics, the CLI."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import REPO, assert_one_line_error, run_cli
from trainwright.hardware import catalog
from trainwright.hardware.vram import GIB, Setup, check_fit, estimate

sys.path.insert(0, str(REPO / "bench"))
import vram_accuracy  # noqa: E402

POINTS = vram_accuracy.load_points(REPO / "tests" / "data" / "vram-points.yaml")


@pytest.mark.parametrize("point", POINTS, ids=lambda p: p["id"])
def test_estimate_is_within_15_percent_and_never_10_percent_low(point: dict) -> None:
    row = vram_accuracy.evaluate(point)
    assert -0.10 <= row["error"] <= 0.15, row


def _llm(**kw: object) -> float:
    s = Setup(**{"seq_len": 1024, "batch": 2, "gradient_checkpointing": False, **kw})
    return estimate(catalog.load().get("llama-3.1-8b"), s).total


def test_the_physics_points_the_right_way() -> None:
    assert _llm(batch=4) > _llm(batch=2)
    assert _llm(gradient_checkpointing=True) < _llm()
    assert _llm(method="qlora") < _llm()
    assert _llm(method="full", optimizer="adamw") > _llm(method="full", optimizer="adamw8bit")
    assert _llm(targets="all-linear", rank=64) > _llm(targets="q,v", rank=8)
    assert _llm(attention="eager") > _llm()
    sdxl = catalog.load().get("sdxl")
    base = Setup(resolution=(1024, 1024))
    assert estimate(sdxl, replace(base, cache_latents=True, cache_text_encoder=True)).total < (
        estimate(sdxl, base).total
    )
    assert estimate(sdxl, replace(base, resolution=(768, 768))).total < estimate(sdxl, base).total


def test_weights_are_bytes_per_parameter() -> None:
    model = catalog.load().get("llama-2-7b")
    bf16 = estimate(model, Setup(seq_len=8, rank=1)).breakdown["weights"]
    assert bf16 == pytest.approx(model.main.params * 2, rel=1e-6)
    nf4 = estimate(model, Setup(seq_len=8, rank=1, method="qlora")).breakdown["weights"]
    assert 0.25 < nf4 / bf16 < 0.35


def test_fit_recommends_the_largest_batch_and_keeps_the_effective_batch() -> None:
    model = catalog.load().get("llama-3.2-3b")
    s = Setup(seq_len=2048, batch=16, gradient_accumulation=2, gradient_checkpointing=False)
    fit = check_fit(model, s, 24.0)
    assert fit.fits is False and 1 <= fit.recommended_batch < 16
    assert fit.recommended_batch * fit.recommended_gradient_accumulation >= 32
    smaller = estimate(model, replace(s, batch=fit.recommended_batch)).total
    assert smaller <= 24.0 * 0.8 * GIB
    bigger = estimate(model, replace(s, batch=fit.recommended_batch + 1)).total
    assert bigger > 24.0 * 0.8 * GIB


def test_json_keys_and_exit_codes() -> None:
    proc = run_cli("vram", "--model", "sdxl", "--resolution", "1024", "--vram", "24", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) >= {
        "total_gib", "breakdown", "fits", "margin", "available_gib", "recommended_batch",
        "recommended_gradient_accumulation", "assumptions",
    }  # fmt: skip
    assert set(data["breakdown"]) == {
        "weights_gib", "trainable_gib", "gradients_gib", "optimizer_gib", "activations_gib",
        "overhead_gib", "overlap_gib", "cuda_context_gib",
    }  # fmt: skip
    assert data["fits"] is True and data["available_gib"] == 24.0
    parts = sum(data["breakdown"].values())
    assert parts == pytest.approx(data["total_gib"], abs=0.05)
    too_small = run_cli("vram", "--model", "flux-1-dev", "--vram", "12", "--json")
    assert too_small.returncode == 1
    assert json.loads(too_small.stdout)["fits"] is False
    assert json.loads(too_small.stdout)["advice"]


def test_gpu_from_studio_md(tmp_path: Path) -> None:
    g = tmp_path / "grimoire"
    assert run_cli("--grimoire", str(g), "grimoire", "new", "p").returncode == 0
    studio = g / "studio.md"
    studio.write_text(
        studio.read_text().replace(
            "## Models", "### GPU: home\n- **Name**: my card\n- **VRAM GB**: 11\n\n## Models"
        )
    )
    proc = run_cli("--grimoire", str(g), "vram", "--model", "sd-1.5", "--json")
    data = json.loads(proc.stdout)
    assert data["available_gib"] == 11.0 and data["gpu"] == "my card"
    named = run_cli("--grimoire", str(g), "vram", "--model", "sd-1.5", "--gpu", "home", "--json")
    assert json.loads(named.stdout)["available_gib"] == 11.0


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--model", "sdxl", "--rank", "0"], "--rank must be a positive"),
        (["--model", "sdxl", "--rank", "-4"], "--rank must be a positive"),
        (["--model", "sdxl", "--resolution", "1000"], "not a multiple of 64"),
        (["--model", "flux-1-dev", "--resolution", "1020x1024"], "not a multiple of 16"),
        (["--model", "sdxl", "--batch", "0"], "--batch must be at least 1"),
        (["--model", "sdxl", "--optimizer", "adamq"], "unknown optimizer"),
        (["--model", "sdxl", "--gpu", "RTX 4091"], "not in the GPU table"),
        (["--model", "sdxl", "--seq-len", "512"], "image model"),
        (["--model", "llama-3-8b", "--resolution", "512"], "language model"),
        (["--model", "sdxl", "--hf-config", "x.json"], "exactly one of"),
        (["--model", "llama-3-8b", "--targets", "foo_proj"], "unknown LoRA target"),
        (["--model", "sdxl", "--resolution", "big"], "--resolution must be"),
        (["--model", "sdxl", "--vram", "-3"], "--vram must be a positive"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], fragment: str) -> None:
    assert_one_line_error(run_cli("vram", *args), fragment)


def test_trace_counts_live(tmp_path: Path) -> None:
    pytest.importorskip("transformers", reason="--trace needs transformers (not a test extra)")
    cfg = {
        "model_type": "llama", "hidden_size": 128, "num_hidden_layers": 4,
        "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 352,
        "vocab_size": 512,
    }  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    args = ["vram", "--hf-config", str(path), "--seq-len", "64", "--json"]
    traced = run_cli(*args, "--trace", "--no-gradient-checkpointing")
    fitted = run_cli(*args, "--no-gradient-checkpointing")
    assert traced.returncode == fitted.returncode == 0, traced.stderr
    a = json.loads(traced.stdout)["breakdown"]["activations_gib"]
    b = json.loads(fitted.stdout)["breakdown"]["activations_gib"]
    assert a == pytest.approx(b, rel=0.05, abs=0.001)
