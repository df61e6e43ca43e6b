"""A tiny language model of a real family, built here: no download, no network.

`make_model(folder)` writes a random-init Qwen2 model (hidden 32, 2 layers, about 40 k
parameters) with a byte-level BPE tokenizer trained on the bundled sentences and a ChatML chat
template, in the layout `from_pretrained` reads (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json). `make_datasets(folder)` writes an SFT set
(conversational `messages`) and a DPO set (`prompt` / `chosen` / `rejected`) as JSONL.
Trainers that load Hugging Face models (TRL, PEFT) train it for real on the CPU in seconds,
which is what the tests and the demo need; it learns the fixed sentences, nothing more.

Run: `python -m trainwright.demo.tiny_llm FOLDER` writes FOLDER/model and FOLDER/data.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HIDDEN = 32
LAYERS = 2
HEADS = 4
KV_HEADS = 2
INTERMEDIATE = 64
MAX_POSITIONS = 512
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
THINGS = [
    ("sky", "blue"),
    ("grass", "green"),
    ("snow", "white"),
    ("coal", "black"),
    ("sun", "yellow"),
    ("blood", "red"),
    ("sea", "blue"),
    ("leaf", "green"),
    ("milk", "white"),
    ("night", "black"),
    ("lemon", "yellow"),
    ("cherry", "red"),
]
WRONG = {
    "blue": "red",
    "green": "purple",
    "white": "black",
    "black": "white",
    "yellow": "grey",
    "red": "green",
}
QUESTIONS = ["What colour is the {t}?", "Tell me the colour of the {t}.", "Which colour has {t}?"]


def _pairs() -> list[tuple[str, str, str]]:
    """(question, right answer, wrong answer) for every thing and question form."""
    out = []
    for question in QUESTIONS:
        for thing, colour in THINGS:
            right = f"The {thing} is {colour}."
            wrong = f"The {thing} is {WRONG[colour]}."
            out.append((question.format(t=thing), right, wrong))
    return out


def sft_rows() -> list[dict[str, Any]]:
    return [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a, _ in _pairs()
    ]


def dpo_rows() -> list[dict[str, str]]:
    return [{"prompt": q, "chosen": " " + a, "rejected": " " + w} for q, a, w in _pairs()]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_datasets(folder: Path | str) -> dict[str, Path]:
    """sft.jsonl (36 conversations) and dpo.jsonl (36 preference pairs) in `folder`."""
    folder = Path(folder)
    return {
        "sft": _write_jsonl(folder / "sft.jsonl", sft_rows()),
        "dpo": _write_jsonl(folder / "dpo.jsonl", dpo_rows()),
    }


def _tokenizer(extra_text: list[str] | None = None, vocab_size: int = 384) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    text = [s for q, a, w in _pairs() for s in (q, a, w)] + ["user", "assistant", "system"]
    text += extra_text or []
    tok.train_from_iterator(text, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        model_max_length=MAX_POSITIONS,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def config_dict(vocab: int) -> dict[str, Any]:
    """The transformers Qwen2 config (as a dict) of the tiny model."""
    return {
        "model_type": "qwen2",
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "intermediate_size": INTERMEDIATE,
        "vocab_size": vocab,
        "max_position_embeddings": MAX_POSITIONS,
        "tie_word_embeddings": True,
    }


def make_model(folder: Path | str, seed: int = 0) -> Path:
    """Write the tiny Qwen2 model and its tokenizer into `folder`; the same seed gives the same
    weights."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    folder = Path(folder)
    tok = _tokenizer()
    vocab = -(-len(tok) // 64) * 64
    cfg = Qwen2Config(
        **{k: v for k, v in config_dict(vocab).items() if k != "model_type"},
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m trainwright.demo.tiny_llm FOLDER", file=sys.stderr)
        return 2
    folder = Path(args[0])
    model = make_model(folder / "model")
    data = make_datasets(folder / "data")
    print(f"model: {model}\nsft: {data['sft']}\ndpo: {data['dpo']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
