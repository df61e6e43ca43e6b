"""The hardware room: vram and cost against bad numbers and bad model configs, and env check
against an nvidia-smi that lies (garbage, impossible memory, a failure, a hang)."""

from __future__ import annotations

import os

import pytest
from harness import Case, run_case
from room_kit import fake_tool, params, said, write

LLAMA = (
    '{"model_type": "llama", "hidden_size": %s, "num_hidden_layers": 32,'
    ' "num_attention_heads": 32, "intermediate_size": 11008, "vocab_size": 32000}'
)


def _hf(text: str | bytes):
    def setup(p):
        write(p / "model/config.json", text)

    return setup


def _smi(name: str, body: str) -> dict[str, str]:
    return {"TRAINWRIGHT_NVIDIA_SMI": fake_tool("smi", name, body)}


GARBAGE = _smi("garbage", r'printf "\000garbage ,,, NaN\n<html>oops</html>\n"')
NEGATIVE = _smi("negative", 'echo "NVIDIA H100, -81559, 999999999, 535.1, 9.0"')
INFINITE = _smi("infinite", 'echo "NVIDIA H100, inf, 0, 535.1, 9.0"')
USED_OVER = _smi("used-over", 'echo "NVIDIA H100, 81559, 999999, 535.1, 9.0"')
FAILING = _smi(
    "failing", 'echo "Failed to initialize NVML: Driver/library version mismatch" >&2\nexit 9'
)
SILENT = _smi("silent", "exit 0")
HANGING = _smi("hanging", "sleep 120")
HUGE = _smi("huge", "head -c 3000000 /dev/zero | tr '\\0' 'x'")
NOT_EXEC = {"TRAINWRIGHT_NVIDIA_SMI": os.devnull}


def _no_gpu_listed(r) -> None:
    assert "GB); driver" not in r.out, f"a GPU was believed:\n{r.out}"
    assert "nvidia-smi" in r.out, r.out


V = ["vram", "--model", "sdxl"]
CASES = [
    Case("vram-unknown-model", "hardware", "bad-file", "clear-error", ["vram", "--model", "nope"]),
    Case("vram-rank-zero", "hardware", "silent-nonsense", "clear-error", [*V, "--rank", "0"]),
    Case("vram-rank-negative", "hardware", "silent-nonsense", "clear-error", [*V, "--rank", "-4"]),
    Case(
        "vram-resolution-text", "hardware", "bad-file", "clear-error", [*V, "--resolution", "abc"]
    ),
    Case(
        "vram-resolution-zero",
        "hardware",
        "silent-nonsense",
        "clear-error",
        [*V, "--resolution", "0x0"],
    ),
    Case(
        "vram-resolution-huge",
        "hardware",
        "resource-exhaustion",
        "clear-error",
        [*V, "--resolution", "99999999"],
    ),
    Case(
        "vram-seq-negative", "hardware", "silent-nonsense", "clear-error", [*V, "--seq-len", "-5"]
    ),
    Case(
        "vram-accum-zero",
        "hardware",
        "silent-nonsense",
        "clear-error",
        [*V, "--gradient-accumulation", "0"],
    ),
    Case(
        "vram-dropout-five",
        "hardware",
        "silent-nonsense",
        "clear-error",
        [*V, "--lora-dropout", "5"],
    ),
    Case(
        "vram-optimizer-unknown",
        "hardware",
        "bad-file",
        "clear-error",
        [*V, "--optimizer", "nonsense"],
    ),
    Case("vram-vram-negative", "hardware", "silent-nonsense", "clear-error", [*V, "--vram", "-3"]),
    Case(
        "vram-hf-missing",
        "hardware",
        "path-escape",
        "clear-error",
        ["vram", "--hf-config", "model/config.json"],
    ),
    Case(
        "vram-hf-folder",
        "hardware",
        "bad-file",
        "clear-error",
        ["vram", "--hf-config", "model"],
        setup=_hf("{}"),
    ),
    Case(
        "vram-hf-binary",
        "hardware",
        "bad-file",
        "clear-error",
        ["vram", "--hf-config", "model/config.json"],
        setup=_hf(os.urandom(3000)),
    ),
    Case(
        "vram-hf-list",
        "hardware",
        "bad-file",
        "clear-error",
        ["vram", "--hf-config", "model/config.json"],
        setup=_hf("[1, 2]"),
    ),
    Case(
        "vram-hf-empty",
        "hardware",
        "bad-file",
        "clear-error",
        ["vram", "--hf-config", "model/config.json"],
        setup=_hf(""),
    ),
    Case(
        "vram-hf-negative",
        "hardware",
        "silent-nonsense",
        "clear-error",
        ["vram", "--hf-config", "model/config.json"],
        setup=_hf(LLAMA % "-4096"),
    ),
    Case(
        "vram-hf-string-size",
        "hardware",
        "bad-file",
        "clear-error",
        ["vram", "--hf-config", "model/config.json"],
        setup=_hf(LLAMA % '"big"'),
    ),
    Case(
        "vram-hf-huge-size",
        "hardware",
        "resource-exhaustion",
        "clear-error",
        ["vram", "--hf-config", "model/config.json"],
        setup=_hf(LLAMA % "1e30"),
    ),
    Case(
        "cost-hours-negative",
        "hardware",
        "silent-nonsense",
        "clear-error",
        ["cost", "--gpu", "RTX 4090", "--hours", "-1"],
    ),
    Case(
        "cost-hours-huge",
        "hardware",
        "resource-exhaustion",
        "clear-error",
        ["cost", "--gpu", "RTX 4090", "--hours", "1e300"],
    ),
    Case(
        "cost-hours-nan",
        "hardware",
        "silent-nonsense",
        "clear-error",
        ["cost", "--gpu", "RTX 4090", "--hours", "nan"],
    ),
    Case(
        "cost-gpus-zero",
        "hardware",
        "silent-nonsense",
        "clear-error",
        ["cost", "--gpu", "RTX 4090", "--hours", "2", "--gpus", "0"],
    ),
    Case(
        "cost-gpu-unknown",
        "hardware",
        "bad-file",
        "clear-error",
        ["cost", "--gpu", "Potato", "--hours", "2"],
    ),
    Case(
        "cost-provider-unknown",
        "hardware",
        "bad-file",
        "clear-error",
        ["cost", "--gpu", "RTX 4090", "--hours", "2", "--provider", "nope"],
    ),
    Case(
        "env-project-missing", "hardware", "corrupt-state", "clear-error", ["env", "check", "nope"]
    ),
    Case(
        "env-backend-unknown",
        "hardware",
        "bad-file",
        "clear-error",
        ["env", "check", "--backend", "nonsense"],
    ),
    Case(
        "smi-garbage",
        "hardware",
        "lying-tool",
        "correct",
        ["env", "check"],
        env=GARBAGE,
        check=_no_gpu_listed,
    ),
    Case(
        "smi-negative-memory",
        "hardware",
        "lying-tool",
        "correct",
        ["env", "check"],
        env=NEGATIVE,
        check=_no_gpu_listed,
    ),
    Case(
        "smi-infinite-memory",
        "hardware",
        "lying-tool",
        "correct",
        ["env", "check"],
        env=INFINITE,
        check=_no_gpu_listed,
    ),
    Case(
        "smi-used-over-total",
        "hardware",
        "lying-tool",
        "correct",
        ["env", "check"],
        env=USED_OVER,
        check=_no_gpu_listed,
    ),
    Case(
        "smi-fails",
        "hardware",
        "lying-tool",
        "correct",
        ["env", "check"],
        env=FAILING,
        check=said("Driver/library version mismatch"),
    ),
    Case(
        "smi-silent",
        "hardware",
        "lying-tool",
        "correct",
        ["env", "check"],
        env=SILENT,
        check=said("no GPUs"),
    ),
    Case(
        "smi-not-executable",
        "hardware",
        "lying-tool",
        "correct",
        ["env", "check"],
        env=NOT_EXEC,
        check=_no_gpu_listed,
    ),
    Case(
        "smi-huge-output",
        "hardware",
        "resource-exhaustion",
        "correct",
        ["env", "check"],
        env=HUGE,
        timeout=30,
        check=_no_gpu_listed,
    ),
    Case("vram-smi-garbage", "hardware", "lying-tool", "correct", [*V, "--json"], env=GARBAGE),
    Case(
        "smi-hangs",
        "hardware",
        "lying-tool",
        "correct",
        ["env", "check"],
        env=HANGING,
        timeout=60,
        check=said("nvidia-smi"),
    ),
]


@pytest.mark.parametrize("case", params(CASES, slow=["smi-hangs"]))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
