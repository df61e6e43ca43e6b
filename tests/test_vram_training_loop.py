"""What a trainer's loop does to memory beyond its loss head: gradients freed after each step,
the optimizer step in backward, activation offloading, torchao's 4-bit linear, and the caching
allocator holding both checkpointing phases (`trainwright vram`, issue 14 section 3)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from helpers import assert_one_line_error, run_cli
from trainwright.backends import torchtune
from trainwright.errors import TrainwrightError
from trainwright.hardware import catalog
from trainwright.hardware.vram import GIB, Setup, estimate

LLAMA = "llama-3.2-3b"
FULL = Setup(
    method="full", precision="bf16", batch=2, seq_len=4096, gradient_checkpointing=False,
    master_weights=False, foreach=False,
)  # fmt: skip
LORA = Setup(method="lora", targets="all-linear", batch=2, seq_len=4096, lora_dropout=0.0)


def _est(setup: Setup, model: str = LLAMA):
    return estimate(catalog.load().get(model), setup)


def test_freed_gradients_and_activations_count_once_without_accumulation() -> None:
    one = _est(replace(FULL, framework="torchtune"))
    two = _est(replace(FULL, framework="torchtune", gradient_accumulation=2))
    b = one.breakdown
    assert b["activations"] > b["gradients"]  # no checkpointing: the activations are larger
    assert b["overlap"] == pytest.approx(-b["gradients"])
    assert two.breakdown["overlap"] == 0.0  # accumulated gradients live through the next batch
    assert two.allocated - one.allocated == pytest.approx(b["gradients"])
    assert any("freed after every step" in n for n in one.assumptions)


def test_the_rule_before_frameworks_still_counts_both() -> None:
    est = _est(replace(FULL, framework="generic"))
    assert est.breakdown["overlap"] == 0.0


def test_optimizer_in_backward_holds_one_gradient_the_largest() -> None:
    model = catalog.load().get(LLAMA)
    est = _est(replace(FULL, framework="torchtune", optimizer_in_backward=True))
    embedding = model.main.vocab * model.main.hidden
    assert est.breakdown["gradients"] == pytest.approx(embedding * 2)
    assert est.breakdown["gradients"] < est.breakdown["trainable"] / 5
    with pytest.raises(TrainwrightError, match="gradient accumulation 1"):
        _est(replace(FULL, optimizer_in_backward=True, gradient_accumulation=4))


def test_offloading_takes_the_checkpointed_inputs_off_the_card() -> None:
    on = _est(replace(LORA, framework="torchtune"))
    off = _est(replace(LORA, framework="torchtune", offload_activations=True))
    layers = catalog.load().get(LLAMA).main.layers
    saved = on.breakdown["activations"] - off.breakdown["activations"]
    assert saved > 0.5 * GIB
    # all but two layers' inputs leave: the saving is (layers - 2) / layers of them
    kept_two = on.breakdown["activations"] - saved * layers / (layers - 2)
    assert kept_two > 0
    assert any("offloaded to CPU memory" in n for n in off.assumptions)
    with pytest.raises(TrainwrightError, match="needs gradient checkpointing"):
        _est(replace(LORA, offload_activations=True, gradient_checkpointing=False))


def test_unsloth_checkpointing_offloads_by_itself() -> None:
    est = _est(replace(LORA, framework="unsloth"))
    assert any("offloaded to CPU memory" in n for n in est.assumptions)
    plain = _est(replace(LORA, framework="unsloth", gradient_checkpointing=False))
    assert not any("offloaded" in n for n in plain.assumptions)


def test_torchao_nf4_keeps_what_lora_keeps_bitsandbytes_more() -> None:
    def acts(method: str, framework: str) -> float:
        setup = replace(LORA, method=method, framework=framework, gradient_checkpointing=False)
        return _est(setup).breakdown["activations"]

    assert acts("qlora", "torchtune") == pytest.approx(acts("lora", "torchtune"))
    assert acts("qlora", "hf") > acts("lora", "hf")


def test_checkpointing_phases_peak_apart_but_the_allocator_holds_both() -> None:
    est = _est(replace(LORA, framework="hf", seq_len=16384, batch=1))
    generic = _est(
        replace(LORA, framework="hf", seq_len=16384, batch=1, gradient_checkpointing=False)
    )
    assert est.allocated < generic.allocated
    assert est.reserved > est.allocated * 1.06  # the cached blocks of the other phase


def test_cli_flags_and_their_bad_combinations() -> None:
    base = ("vram", "--model", LLAMA, "--method", "full", "--precision", "bf16", "--seq-len",
            "4096", "--batch", "2", "--framework", "torchtune", "--json")  # fmt: skip
    plain = run_cli(*base)
    tuned = run_cli(*base, "--optimizer-in-backward", "--offload-activations", "--fused-optimizer")
    assert plain.returncode == tuned.returncode == 0, plain.stderr + tuned.stderr
    a, b = json.loads(plain.stdout), json.loads(tuned.stdout)
    assert b["total_gib"] < a["total_gib"] - 4  # 3B parameters' gradients and step temporary
    assert "overlap_gib" in a["breakdown"]
    assert_one_line_error(
        run_cli(*base, "--optimizer-in-backward", "--gradient-accumulation", "2"),
        "gradient accumulation 1",
    )
    assert_one_line_error(
        run_cli(*base, "--offload-activations", "--no-gradient-checkpointing"),
        "needs gradient checkpointing",
    )
    human = run_cli(*base[:-1])
    assert "gradients/activations overlap" in human.stdout


def test_a_torchtune_config_says_what_its_loop_does() -> None:
    config = {
        "batch_size": 2, "tokenizer": {"max_seq_len": 4096}, "optimizer_in_bwd": True,
        "enable_activation_offloading": True, "enable_activation_checkpointing": True,
        "optimizer": {"_component_": "torch.optim.AdamW", "fused": True},
    }  # fmt: skip
    settings, _ = torchtune.cluster_vram(None, config)
    assert settings["optimizer_in_backward"] and settings["offload_activations"]
    assert settings["foreach"] is False
    settings, _ = torchtune.cluster_vram(None, {"optimizer": {"fused": False}})
    assert not settings["optimizer_in_backward"] and "foreach" not in settings
