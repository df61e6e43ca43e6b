"""Issue 18's bad inputs for measured memory: `vram --measure` where there is nothing to measure
on (no driver; a GPU but a CPU-only torch, Gate 3's words), a model the pack cannot build, and a
studio.md whose kept ratio is damaged or absurd."""

from __future__ import annotations

import pytest
from harness import Case, run_case
from room_kit import fake_tool, params, said, write

NO_DRIVER = {"TRAINWRIGHT_NVIDIA_SMI": "/nonexistent/nvidia-smi"}
RTX = {
    "TRAINWRIGHT_NVIDIA_SMI": fake_tool(
        "smi", "rtx4090-measure", 'echo "NVIDIA GeForce RTX 4090, 24564, 1024, 535.104.05, 8.9"'
    )
}
M = ["vram", "--model", "qwen2.5-0.5b", "--measure"]
BERT = (
    '{"model_type": "bert", "hidden_size": 1024, "num_hidden_layers": 24,'
    ' "num_attention_heads": 16, "intermediate_size": 4096, "vocab_size": 30522}'
)


def _studio(ratio: str):
    def setup(p):
        path = p / "grimoire" / "studio.md"
        text = path.read_text(encoding="utf-8") if path.exists() else "# Studio\n"
        write(
            path,
            text.rstrip("\n")
            + "\n\n## Measured\n\n### GPU: lab\n- **Name**: NVIDIA GeForce RTX 4090\n"
            f"- **VRAM GB**: 24\n- **Measured/estimated**: {ratio}\n"
            "- **Measured on**: 2026-12-06\n",
        )

    return setup


def _no_kept_ratio(r) -> None:
    assert "measured on this GPU" not in r.out, r.out


def _bert(p):
    write(p / "model" / "config.json", BERT)
    return ["vram", "--hf-config", "model/config.json", "--method", "full", "--measure"]


CASES = [
    Case("measure-no-driver", "hardware", "resource-exhaustion", "clear-error", M,
         env=NO_DRIVER, check=said("needs an NVIDIA GPU", "estimate above")),
    Case("measure-cpu-torch-on-a-gpu", "hardware", "lying-tool", "clear-error", M, env=RTX,
         check=said("CPU-only build", "RTX 4090")),
    Case("measure-unbuildable-model", "hardware", "bad-file", "clear-error",
         ["vram", "--model", "flux-1-dev", "--measure"], env=RTX,
         check=said("no config the pack can build")),
    Case("measure-unbuildable-hf-config", "hardware", "bad-file", "clear-error", setup=_bert,
         env=RTX, check=said("bert", "--measure builds")),
    Case("kept-ratio-not-a-number", "hardware", "corrupt-state", "clear-error",
         ["vram", "--model", "qwen2.5-0.5b", "--gpu", "lab"], setup=_studio("banana")),
    Case("kept-ratio-damaged-with-vram-given", "hardware", "corrupt-state", "correct",
         ["vram", "--model", "qwen2.5-0.5b", "--vram", "24"], setup=_studio("banana"),
         check=said("VRAM estimate", "FITS")),
    Case("kept-ratio-zero", "hardware", "silent-nonsense", "correct",
         ["vram", "--model", "qwen2.5-0.5b", "--gpu", "lab"], setup=_studio("0"),
         check=_no_kept_ratio),
]  # fmt: skip


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
