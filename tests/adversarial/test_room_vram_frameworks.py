"""The hardware room: `trainwright vram --framework` against names it does not know, a framework
that cannot apply, and an image model given a language trainer's framework."""

from __future__ import annotations

import pytest
from harness import Case, run_case
from room_kit import params, said

LLM = ["vram", "--model", "llama-3.1-8b", "--seq-len", "4096"]

CASES = [
    Case("vram-framework-unknown", "hardware", "bad-file", "clear-error",
         [*LLM, "--framework", "megatron"], check=said("megatron", "hf", "torchtune")),
    Case("vram-framework-empty", "hardware", "hostile-name", "clear-error",
         [*LLM, "--framework", ""]),
    Case("vram-framework-case", "hardware", "hostile-name", "clear-error",
         [*LLM, "--framework", "HF;rm -rf ~"]),
    Case("vram-framework-none-on-llm", "hardware", "silent-nonsense", "clear-error",
         [*LLM, "--framework", "none"], check=said("image trainers")),
    Case("vram-framework-on-image-model", "hardware", "silent-nonsense", "correct",
         ["vram", "--model", "sdxl", "--framework", "hf"], check=said("changes nothing")),
]  # fmt: skip


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
