"""`vram --measure` runs the estimated training, not a stand-in: the optimizer, the step in
backward, accumulation, precision, the framework's loss head and a 4-bit base are those the
setup names, and what the steps cannot reproduce is refused with the reason. The CUDA peaks
themselves are read on a GPU (bench/gpu_check.sh); here the same steps run on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_cli
from support.pip_install import install_or_skip
from trainwright.errors import TrainwrightError
from trainwright.hardware import catalog, measure
from trainwright.hardware.vram import Setup

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

TINY = catalog.load().get("tiny-qwen2")
BNB = "bitsandbytes==0.50.2"
REPO = Path(__file__).resolve().parents[1]


def train(setup: Setup, steps: int = 2, batch: int = 2) -> tuple:
    return measure.train(TINY, setup, batch, steps, "cpu", torch)


def test_the_step_in_backward_gives_each_parameter_its_own_optimizer_and_frees_its_gradient():
    s = Setup(method="full", seq_len=16, optimizer_in_backward=True, precision="fp32")
    _, params, opts = train(s)
    assert isinstance(opts, dict) and set(opts) == set(params)
    assert all(p.grad is None for p in params)  # applied and freed inside backward
    assert {int(opts[p].state[p]["step"]) for p in params} == {2}


def test_accumulation_runs_that_many_micro_batches_per_optimizer_step(monkeypatch):
    calls = []
    build = measure._language

    def counting(*args, **kwargs):
        net, step = build(*args, **kwargs)
        return net, lambda: (calls.append(1), step())[1]

    monkeypatch.setattr(measure, "_language", counting)
    _, _, opt = train(Setup(method="lora", seq_len=16, gradient_accumulation=3), steps=2)
    assert len(calls) == 6 and {int(v["step"]) for v in opt.state.values()} == {2}
    calls.clear()
    train(Setup(method="lora", seq_len=16), steps=2)
    assert len(calls) == 2


def test_the_fused_flag_builds_fused_adamw_and_the_default_the_foreach_one():
    p = [torch.nn.Parameter(torch.zeros(4))]
    assert measure.make_optimizer(Setup(foreach=False), p, torch).defaults["fused"] is True
    assert measure.make_optimizer(Setup(), p, torch).defaults["foreach"] is True
    sgd = measure.make_optimizer(Setup(optimizer="sgd"), p, torch)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9
    assert type(measure.make_optimizer(Setup(optimizer="adafactor"), p, torch)).__name__ == (
        "Adafactor"
    )
    with pytest.raises(TrainwrightError, match="cannot build the optimizer"):
        measure.make_optimizer(Setup(optimizer="rmsprop"), p, torch)


def test_torchtunes_chunked_loss_is_the_same_loss_as_transformers():
    s = Setup(method="full", framework="torchtune", seq_len=16, precision="fp32")
    net, _ = measure._language(TINY, s, torch, 2, "cpu")
    ids = torch.randint(0, 384, (2, 16))
    chunked = measure._chunked_loss(net, torch, 8)(ids)
    assert float(chunked) == pytest.approx(float(net(input_ids=ids, labels=ids).loss), rel=1e-5)


@pytest.mark.parametrize(
    "setup,weights,trainable",
    [
        (Setup(method="full", precision="fp32"), torch.float32, torch.float32),
        (Setup(method="full", precision="bf16"), torch.bfloat16, torch.bfloat16),
        # fp16 keeps fp32 master weights and autocasts
        (Setup(method="full", precision="fp16"), torch.float32, torch.float32),
        (Setup(method="lora", precision="bf16"), torch.bfloat16, None),
    ],
)
def test_the_precision_is_the_setups(setup, weights, trainable):
    net, step = measure._language(TINY, setup, torch, 1, "cpu")
    frozen = {p.dtype for p in net.parameters() if not p.requires_grad}
    train_dtypes = {p.dtype for p in net.parameters() if p.requires_grad}
    if setup.method == "full":
        assert train_dtypes == {trainable} and not frozen
    else:
        assert frozen == {weights} and train_dtypes  # the LoRA adapters
    assert torch.isfinite(step())


@pytest.mark.parametrize(
    "change,words",
    [
        ({"framework": "trl"}, "reproduce trl's loss head"),
        ({"framework": "unsloth"}, "reproduce unsloth's loss head"),
        ({"offload_activations": True}, "activation offloading"),
        ({"base_quant": "int8"}, "not int8"),
        ({"device": "cpu"}, "--device cuda"),
        ({"method": "qlora", "framework": "torchtune"}, "torchao's NF4"),
    ],
)
def test_what_the_steps_cannot_reproduce_is_refused_with_the_reason(change, words):
    assert words in (measure.unmeasurable(TINY, Setup(**change)) or "")


def test_a_setup_the_steps_reproduce_is_not_refused():
    for s in (
        Setup(),
        Setup(method="full", optimizer="sgd", optimizer_in_backward=True, foreach=False),
        Setup(framework="torchtune", gradient_accumulation=4, precision="fp16"),
    ):
        assert measure.unmeasurable(TINY, s) is None


def test_image_settings_the_steps_cannot_reproduce_are_refused():
    sdxl = catalog.load().get("sdxl")
    assert "text encoder" in measure.unmeasurable(sdxl, Setup(train_text_encoder=True))
    assert "language models only" in measure.unmeasurable(sdxl, Setup(base_quant="nf4"))


def test_missing_packages_are_named(monkeypatch):
    real = measure.importlib.util.find_spec
    monkeypatch.setattr(
        measure.importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("bitsandbytes", "prodigyopt") else real(name, *a),
    )
    assert "pip install bitsandbytes" in measure.unmeasurable(TINY, Setup(method="qlora"))
    assert "pip install bitsandbytes" in measure.unmeasurable(TINY, Setup(optimizer="adamw8bit"))
    assert "pip install prodigyopt" in measure.unmeasurable(TINY, Setup(optimizer="prodigy"))


def test_the_command_says_why_it_will_not_measure_and_prints_the_estimate():
    proc = run_cli("vram", "--model", "qwen2.5-0.5b", "--framework", "trl", "--measure", "--json")
    assert proc.returncode == 2, proc.stderr
    data = json.loads(proc.stdout)
    assert data["measured"] is None and data["framework"] == "trl" and data["total_gib"] > 0
    err = proc.stderr.strip().splitlines()
    assert (
        len(err) == 1 and "reproduce trl's loss head" in err[0] and "Traceback" not in proc.stderr
    )


# --- bitsandbytes (4-bit base, 8-bit optimizers), in a folder of its own ----------------------
# Importing bitsandbytes makes peft and transformers take other paths in every later test, so
# it runs in a child process with bitsandbytes on its path only.

CHILD = """
import json, sys, torch
from trainwright.hardware import catalog, measure
from trainwright.hardware.vram import Setup
model = catalog.from_hf_config(sys.argv[1])
out = {}
s = Setup(method="qlora", seq_len=16, targets="all-linear", optimizer="adamw8bit")
net, params, opt = measure.train(model, s, 2, 2, "cpu", torch)
base = net.get_base_model()
out["layers"] = sorted({type(m).__module__.split(".")[0] + "." + type(m).__name__
                        for m in base.model.layers.modules() if "Linear" in type(m).__name__})
out["plain"] = [n for n, m in base.model.layers.named_modules()
                if type(m) is torch.nn.Linear and "lora_" not in n]
out["head"] = type(base.get_output_embeddings()).__name__
out["quantized"] = sorted({str(p.dtype) for n, p in base.named_parameters()
                           if n.endswith("base_layer.weight")})
out["trainable"] = sorted({n.split(".")[-3] for n, p in net.named_parameters() if p.requires_grad})
s = Setup(method="full", seq_len=16, optimizer="adamw8bit", precision="bf16")
net, params, opt = measure.train(model, s, 2, 1, "cpu", torch)
big = [p for p in params if p.numel() >= 4096]
out["states"] = sorted({str(opt.state[p]["state1"].dtype) for p in big})
out["opt"] = type(opt).__name__
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def bnb_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("bnb") / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    install_or_skip([*pip, BNB], BNB)
    return site


@pytest.mark.slow
def test_qlora_builds_a_4bit_base_with_lora_on_it_and_8bit_states(bnb_site, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "model_type": "qwen2",
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "intermediate_size": 128,
                "vocab_size": 256,
                "tie_word_embeddings": True,
            }  # fmt: skip
        )
    )
    env = dict(os.environ, PYTHONPATH=f"{bnb_site}{os.pathsep}{REPO / 'scripts'}")
    env.pop("HF_HUB_OFFLINE", None)  # measure sets it itself before importing bitsandbytes
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(config)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "bitsandbytes.Linear4bit" in out["layers"]  # the base layers under LoRA
    assert out["plain"] == []  # every decoder linear but the adapters' is 4-bit
    assert out["head"] == "Linear" and out["quantized"] == ["torch.uint8"]
    assert out["trainable"] == ["lora_A", "lora_B"]
    assert out["opt"] == "AdamW8bit" and out["states"] == ["torch.uint8"]


def test_the_report_says_what_the_steps_were():
    from trainwright.hardware.vram import estimate
    from trainwright.hardware.vram_measure import lines, summary

    s = Setup(method="qlora", optimizer="paged_adamw8bit", gradient_accumulation=4,
              framework="hf", seq_len=512)  # fmt: skip
    assert measure.ran(TINY, s) == (
        "PagedAdamW8bit (bitsandbytes), accumulation 4, bf16, NF4 base (bitsandbytes), "
        "checkpointing, labels= loss"
    )
    tt = Setup(method="full", foreach=False, optimizer_in_backward=True, framework="torchtune")
    assert measure.ran(TINY, tt).startswith("AdamW (fused), stepped in backward, bf16")
    assert measure.ran(TINY, tt).endswith("loss in 8 chunks")
    raw = {"gpu": "NVIDIA H100 80GB HBM3", "steps": 3, "batch": 1, "total_mib": 81559.0,
           "free_mib": 80000.0, "fits": True, "allocated_mib": 900.0, "reserved_mib": 1000.0,
           "params": 31008}  # fmt: skip
    m = summary(raw, estimate(TINY, s), TINY, s)
    assert m["ran"] == measure.ran(TINY, s)
    assert f"  steps: {m['ran']}" in lines(m)
