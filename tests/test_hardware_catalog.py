"""The model catalog and a person's own config.json: sizes, counts, lookups, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_cli
from trainwright.errors import TrainwrightError
from trainwright.hardware import catalog
from trainwright.hardware.gpu import lookup_gpu

REQUIRED = {
    "sd-1.5", "sd-1.4", "sdxl", "pony-v6", "flux-1-dev", "flux-1-schnell", "sd-3.5-medium",
    "sd-3.5-large", "llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "llama-3.1-8b",
    "llama-3-70b", "llama-3.1-70b", "llama-3.2-1b", "llama-3.2-3b", "mistral-7b",
    "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b",
    "qwen2.5-72b", "gemma-2-2b", "gemma-2-9b", "phi-1.5", "phi-3-mini", "bert-large",
}  # fmt: skip


def test_catalog_has_every_model_the_issue_names() -> None:
    cat = catalog.load()
    assert REQUIRED <= set(cat.ids())
    for model_id in cat.ids():
        model = cat.get(model_id)
        assert model.source and model.main.params > 0
        if model.is_image and model.id != "tiny":  # tiny: pixels in, captions embedded inside
            assert model.resolution_multiple and model.roles("vae") and model.roles("text_encoder")


def test_derived_models_share_the_architecture() -> None:
    cat = catalog.load()
    assert cat.get("pony-v6").parts == cat.get("sdxl").parts
    assert cat.get("pony").id == "pony-v6"  # alias
    assert cat.get("sd-3.5-large").main.params > 3 * cat.get("sd-3.5-medium").main.params


@pytest.mark.parametrize(
    "model_id", sorted(m for m in REQUIRED if not m.startswith(("sd", "pony", "flux")))
)
def test_decoder_counts_match_the_closed_form(model_id: str) -> None:
    """The catalog's counts (built on the meta device) equal the count from the sizes."""
    part = catalog.load().get(model_id).main
    assert catalog.decoder_params(part) == part.params


def test_lookup_suggests_close_names() -> None:
    with pytest.raises(TrainwrightError, match="did you mean.*llama-3.1-8b"):
        catalog.load().get("llama-3.1-8")


def _write_config(tmp_path: Path, **cfg: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


# The published config.json of four families (the keys that matter), and the catalog twin.
HF_CONFIGS = {
    "llama-3.2-1b": {
        "model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 16,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
        "intermediate_size": 8192, "vocab_size": 128256, "tie_word_embeddings": True,
    },
    "mistral-7b": {
        "model_type": "mistral", "hidden_size": 4096, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
        "vocab_size": 32000, "tie_word_embeddings": False, "sliding_window": 4096,
    },
    "qwen2.5-7b": {
        "model_type": "qwen2", "hidden_size": 3584, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "intermediate_size": 18944,
        "vocab_size": 152064, "tie_word_embeddings": False,
    },
    "gemma-2-2b": {
        "model_type": "gemma2", "hidden_size": 2304, "num_hidden_layers": 26,
        "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
        "intermediate_size": 9216, "vocab_size": 256000,
    },
}  # fmt: skip


@pytest.mark.parametrize("twin", sorted(HF_CONFIGS))
def test_hf_config_reads_llama_mistral_qwen_gemma(tmp_path: Path, twin: str) -> None:
    model = catalog.from_hf_config(_write_config(tmp_path, **HF_CONFIGS[twin]))
    assert model.main.params == catalog.load().get(twin).main.params
    assert model.main.profile == catalog.load().get(twin).main.profile


def test_hf_config_estimate_equals_the_catalog_twin(tmp_path: Path) -> None:
    path = _write_config(tmp_path, **HF_CONFIGS["qwen2.5-7b"])
    a = run_cli("vram", "--hf-config", str(path), "--seq-len", "1024", "--json")
    b = run_cli("vram", "--model", "qwen2.5-7b", "--seq-len", "1024", "--json")
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert json.loads(a.stdout)["total_gib"] == json.loads(b.stdout)["total_gib"]


@pytest.mark.parametrize(
    "cfg,fragment",
    [
        ({"model_type": "llama", "hidden_size": 64}, "missing or has a non-positive"),
        ({**HF_CONFIGS["llama-3.2-1b"], "num_hidden_layers": 0}, "num_hidden_layers"),
        ({**HF_CONFIGS["llama-3.2-1b"], "model_type": "mamba"}, "not one the estimator knows"),
    ],
)
def test_bad_hf_config_is_one_line_exit_2(
    tmp_path: Path, cfg: dict[str, object], fragment: str
) -> None:
    path = _write_config(tmp_path, **cfg)
    before = path.read_text()
    assert_one_line_error(run_cli("vram", "--hf-config", str(path)), fragment)
    assert path.read_text() == before


def test_hf_config_not_json(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    assert_one_line_error(run_cli("vram", "--hf-config", str(path)), "not valid JSON")


def test_unknown_model_cli_suggests(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("vram", "--model", "sdxl-bse"), "unknown model", "sdxl")


def test_gpu_table_names_and_aliases() -> None:
    assert lookup_gpu("NVIDIA GeForce RTX 4090").memory_gib == pytest.approx(24.0, abs=0.1)
    assert lookup_gpu("A100-SXM4-80GB").name == "A100 80GB"
    assert lookup_gpu("h200").memory_gib > 139
    with pytest.raises(TrainwrightError, match="did you mean"):
        lookup_gpu("RTX 4091")
