"""The catalog's `tiny-llm`, built here for torchtune: no download, no network.

`make_model(folder)` builds a random-init Qwen2 with torchtune's own component builder
(`torchtune.models.qwen2.qwen2`) at the catalog's small widths (2 layers, hidden 256, so that
torchao's NF4 blocks fit and QLoRA runs too) and saves it the way torchtune's
FullModelHFCheckpointer reads a Qwen2 checkpoint: `qwen2_tune_to_hf` weights in
model.safetensors beside a config.json. The tokenizer is tiny_llm's byte-level BPE, trained on
the bundled sentences, written as vocab.json + merges.txt for `qwen2_tokenizer`, and a
special_tokens.json (tokenizer.json's `added_tokens` shape): without it the Qwen2 tokenizer
uses its fixed ids 151643+, which overflow a 512-row embedding.
`make_dataset(path)` writes a few hundred instruction rows (input / output) as a JSON list, the
shape `torchtune.datasets.instruct_dataset(source="json")` loads.

Run: `python -m trainwright.backends.torchtune_tiny FOLDER` writes FOLDER/model and FOLDER/data.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from trainwright.demo.tiny_llm import SPECIAL, _pairs, _tokenizer

MODEL_ID = "tiny-llm"
NUMBERS = range(20)
OPS = {"plus": lambda a, b: a + b, "times": lambda a, b: a * b}
ASKS = ["What is {a} {op} {b}?", "Compute {a} {op} {b}."]


def instruct_rows() -> list[dict[str, str]]:
    """320 arithmetic questions plus the 36 colour questions, as input / output pairs."""
    rows = [
        {"input": ask.format(a=a, op=op, b=b), "output": f"{a} {op} {b} is {fn(a, b)}."}
        for a in NUMBERS
        for b in range(0, 15, 2)
        for ask, (op, fn) in zip(ASKS, OPS.items(), strict=True)
    ]
    rows += [{"input": q, "output": a} for q, a, _ in _pairs()]
    return rows


def make_dataset(path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(instruct_rows(), indent=1) + "\n", encoding="utf-8")
    return path


def builder_args(max_seq_len: int = 512) -> dict[str, Any]:
    """Keyword arguments of torchtune's qwen2 component builder at the catalog's widths (the
    config writer emits the same ones)."""
    from trainwright.backends.torchtune import component_widths
    from trainwright.hardware import catalog

    return component_widths(catalog.load().get(MODEL_ID), max_seq_len)


def _hf_config(args: dict[str, Any], tok: Any) -> dict[str, Any]:
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": args["embed_dim"],
        "num_hidden_layers": args["num_layers"],
        "num_attention_heads": args["num_heads"],
        "num_key_value_heads": args["num_kv_heads"],
        "intermediate_size": args["intermediate_dim"],
        "vocab_size": args["vocab_size"],
        "max_position_embeddings": args["max_seq_len"],
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-05,
        "hidden_act": "silu",
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "eos_token_id": tok.convert_tokens_to_ids("<|im_end|>"),
        "pad_token_id": tok.convert_tokens_to_ids("<|endoftext|>"),
    }


def make_model(folder: Path | str, seed: int = 0) -> Path:
    """Write tiny-llm's weights, config.json and tokenizer files into `folder`."""
    import torch
    from safetensors.torch import save_file
    from torchtune.models.qwen2 import qwen2
    from torchtune.models.qwen2._convert_weights import qwen2_tune_to_hf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    args = builder_args()
    text = [f"{r['input']} {r['output']}" for r in instruct_rows()]
    tok = _tokenizer(extra_text=text, vocab_size=args["vocab_size"] - 16)
    if len(tok) > args["vocab_size"]:
        raise RuntimeError(f"tokenizer has {len(tok)} ids, the embedding {args['vocab_size']}")
    torch.manual_seed(seed)
    model = qwen2(**args)
    torch.nn.init.normal_(model.tok_embeddings.weight, std=0.02)  # N(0, 1) gives a loss of ~240
    hf = qwen2_tune_to_hf(
        model.state_dict(),
        num_heads=args["num_heads"],
        num_kv_heads=args["num_kv_heads"],
        dim=args["embed_dim"],
        tie_word_embeddings=True,
    )
    save_file({k: v.contiguous() for k, v in hf.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(_hf_config(args, tok), indent=2) + "\n")
    tok.backend_tokenizer.model.save(str(folder))  # vocab.json, merges.txt
    special = [{"id": tok.convert_tokens_to_ids(t), "content": t, "special": True} for t in SPECIAL]
    (folder / "special_tokens.json").write_text(json.dumps({"added_tokens": special}, indent=1))
    return folder


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m trainwright.backends.torchtune_tiny FOLDER", file=sys.stderr)
        return 2
    folder = Path(args[0])
    model = make_model(folder / "model")
    data = make_dataset(folder / "data" / "instruct.json")
    print(f"model: {model}\ndataset: {data}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
