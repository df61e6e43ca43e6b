"""`trainwright vram --framework`: each trainer's loss head (resources/models/loss-heads.yaml)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from helpers import REPO, assert_one_line_error, run_cli
from trainwright import pack
from trainwright.errors import TrainwrightError
from trainwright.hardware import catalog, loss_heads, vram
from trainwright.hardware.vram import GIB, Setup, estimate

LLM = Setup(seq_len=8192, batch=1, method="lora", targets="all-linear")


def _head(model: str, framework: str, **kw: object) -> dict:
    est = estimate(catalog.load().get(model), replace(LLM, framework=framework, **kw))
    return {**est.details["loss_head"], "total": est.total}


@pytest.fixture
def fresh_table():
    loss_heads.table.cache_clear()
    yield
    loss_heads.table.cache_clear()


def test_the_data_file_loads_with_every_framework_described() -> None:
    names = vram.frameworks()
    assert {"generic", "hf", "trl", "torchtune", "torchtune-compile", "fused-ce", "unsloth",
            "none"} <= set(names)  # fmt: skip
    assert vram.DEFAULT_FRAMEWORK in names and Setup().framework == vram.DEFAULT_FRAMEWORK
    for name in names:
        entry = loss_heads.get(name)
        assert entry["description"] and entry["source"]


def test_the_default_keeps_the_estimate_before_frameworks() -> None:
    # the rule before: the family's traced kept part plus one fp32 gradient, 4 bytes per token
    # per vocabulary entry each
    model = catalog.load().get("llama-3.1-8b")
    head = _head("llama-3.1-8b", "generic")
    tokens = 8192
    assert head["kept_bytes"] == pytest.approx(4.0 * model.main.vocab * tokens, rel=1e-3)
    assert head["peak_bytes"] == pytest.approx(4.0 * model.main.vocab * tokens, rel=1e-6)


def test_frameworks_order_as_traced_at_a_128k_vocabulary_and_long_sequence() -> None:
    model = "llama-3.1-8b"  # vocabulary 128,256
    at = {f: _head(model, f) for f in ("hf", "torchtune", "torchtune-compile", "fused-ce",
                                       "unsloth", "trl", "generic")}  # fmt: skip
    peak = {f: h["kept_bytes"] + h["peak_bytes"] for f, h in at.items()}
    assert peak["hf"] > peak["generic"] > peak["torchtune"] > peak["torchtune-compile"]
    assert peak["torchtune-compile"] > peak["fused-ce"] and peak["unsloth"] > peak["fused-ce"]
    assert at["hf"]["total"] > at["torchtune"]["total"] > at["fused-ce"]["total"]
    # traced: hf keeps fp32 log-probs (4 B) and peaks at 12 B per token per vocabulary entry
    vocab, tokens = catalog.load().get(model).main.vocab, 8192
    assert peak["hf"] == pytest.approx(12.0 * vocab * tokens, rel=1e-3)
    # the fused kind holds a few bytes per hidden unit, nothing per vocabulary entry
    hidden = catalog.load().get(model).main.hidden
    assert peak["fused-ce"] == pytest.approx(tokens * (6.0 * hidden + 4.0), rel=1e-6)
    # TRL holds one bf16 tile of 4096 tokens x 32768 vocabulary entries
    assert at["trl"]["peak_bytes"] >= 4096 * 32768 * 2


def test_the_loss_head_grows_with_tokens_but_the_trl_tile_does_not() -> None:
    short, long = _head("qwen2.5-7b", "hf", seq_len=1024), _head("qwen2.5-7b", "hf")
    assert long["peak_bytes"] == pytest.approx(8 * short["peak_bytes"], rel=1e-6)
    a, b = _head("qwen2.5-7b", "trl", seq_len=4096), _head("qwen2.5-7b", "trl")
    tile = 4096 * 32768 * 2
    assert b["peak_bytes"] - tile == pytest.approx(2 * (a["peak_bytes"] - tile), rel=1e-6)


def test_fp32_training_takes_the_fp32_factors() -> None:
    bf16 = _head("llama-3.2-1b", "torchtune-compile")
    fp32 = _head("llama-3.2-1b", "torchtune-compile", precision="fp32")
    assert fp32["kept_bytes"] == pytest.approx(2 * bf16["kept_bytes"], rel=1e-6)


def test_image_models_and_classifiers_are_unaffected() -> None:
    sdxl = catalog.load().get("sdxl")
    base = estimate(sdxl, Setup(resolution=(1024, 1024)))
    for name in vram.frameworks():
        est = estimate(sdxl, Setup(resolution=(1024, 1024), framework=name))
        assert est.total == base.total and "loss_head" not in est.details
    bert = catalog.load().get("bert-large")
    s = Setup(method="full", precision="fp32", seq_len=512, attention="eager")
    assert estimate(bert, replace(s, framework="hf")).total == estimate(bert, s).total


def test_unknown_framework_from_python_lists_the_known_ones() -> None:
    with pytest.raises(TrainwrightError, match="unknown framework 'megatron'.*hf.*torchtune"):
        estimate(catalog.load().get("llama-3.2-1b"), Setup(seq_len=512, framework="megatron"))
    with pytest.raises(TrainwrightError, match="for image trainers"):
        estimate(catalog.load().get("llama-3.2-1b"), Setup(seq_len=512, framework="none"))


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("frameworks: [unclosed", "not valid YAML"),
        ("schema_version: 1\ndefault: hf\nframeworks:\n  hf: {description: x}\n", "frameworks/hf"),
        (
            "schema_version: 1\ndefault: nope\nframeworks:\n  hf: {description: x, source: y, "
            "kept: {}, peak: {vocab: -1}, layer_transient: max}\n",
            "frameworks/hf/peak/vocab",
        ),
        (
            "schema_version: 1\ndefault: nope\nframeworks:\n  hf: {description: x, source: y, "
            "kept: {}, peak: {}, layer_transient: max}\n",
            "default 'nope' is not a framework",
        ),
    ],
)
def test_a_damaged_data_file_is_a_clear_error(
    text: str, fragment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_table: None
) -> None:
    bad = tmp_path / "loss-heads.yaml"
    bad.write_text(text)
    monkeypatch.setattr(loss_heads, "LOSS_HEADS", str(bad))  # absolute: pack root / it = it
    with pytest.raises(TrainwrightError) as err:
        estimate(catalog.load().get("llama-3.2-1b"), Setup(seq_len=512, framework="hf"))
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_the_shipped_file_matches_its_schema_and_the_default_is_generic() -> None:
    raw = yaml.safe_load(pack.read_text(loss_heads.LOSS_HEADS))
    assert raw["default"] == vram.DEFAULT_FRAMEWORK == "generic"
    assert loss_heads.get("none").get("image_only") is True


ARGS = ["vram", "--model", "llama-3.1-8b", "--seq-len", "8192", "--vram", "80"]


def test_cli_framework_json_names_it_and_shows_the_loss_head() -> None:
    out = {}
    for name in ("hf", "torchtune", "fused-ce"):
        proc = run_cli(*ARGS, "--framework", name, "--json")
        assert proc.returncode == 0, proc.stderr
        out[name] = json.loads(proc.stdout)
        assert out[name]["framework"] == name and out[name]["loss_head"]["framework"] == name
        parts = sum(out[name]["breakdown"].values())
        assert parts == pytest.approx(out[name]["total_gib"], abs=0.05)
    assert out["hf"]["total_gib"] > out["torchtune"]["total_gib"] > out["fused-ce"]["total_gib"]
    assert out["hf"]["loss_head"]["kept_gib"] > out["fused-ce"]["loss_head"]["kept_gib"]
    default = json.loads(run_cli(*ARGS, "--json").stdout)
    assert default["framework"] == "generic"
    model = catalog.load().get("llama-3.1-8b")
    want = estimate(model, replace(LLM, targets="attn", framework="torchtune")).total / GIB
    assert out["torchtune"]["total_gib"] == pytest.approx(want, abs=0.01)


def test_cli_framework_human_output_and_help() -> None:
    proc = run_cli(*ARGS, "--framework", "hf")
    assert proc.returncode == 0, proc.stderr
    assert "loss head (hf):" in proc.stdout and "GiB kept in the activations" in proc.stdout
    helptext = run_cli("vram", "--help").stdout
    for name in vram.frameworks():
        assert f"{name}:" in helptext


def test_cli_unknown_framework_is_a_usage_error() -> None:
    proc = run_cli(*ARGS, "--framework", "megatron")
    assert_one_line_error(proc, "--framework", "megatron")
    assert_one_line_error(run_cli(*ARGS, "--framework", "none"), "for image trainers")


def test_the_bench_table_runs() -> None:
    import sys

    sys.path.insert(0, str(REPO / "bench"))
    import vram_frameworks

    rows = vram_frameworks.rows()
    assert rows and all({"point", "framework", "published", "estimate", "error"} <= set(r)
                        for r in rows)  # fmt: skip


@pytest.mark.parametrize(
    "framework",
    [pytest.param("hf", marks=pytest.mark.slow), "torchtune", "torchtune-unchunked"],
)
def test_the_data_file_holds_what_the_cpu_trace_measures(framework: str) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("torchtune")
    loss_trace = _bench_module("loss_trace")

    traced = loss_trace.per_vocab(framework, vocabs=(1024, 4096), hidden=32, tokens=128)
    entry = loss_heads.get("hf" if framework == "torchtune-unchunked" else framework)
    kept = 4.0 if entry.get("kept_from_profile") else entry["kept"]["vocab"]
    assert traced["kept"] == pytest.approx(kept, abs=0.01)
    assert traced["peak"] - traced["kept"] == pytest.approx(entry["peak"]["vocab"], abs=0.01)


def _bench_module(name: str):  # noqa: ANN202 - a module loaded from bench/
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module
