"""SimpleTuner's names (issue 15 §5): `trainwright config --backend simpletuner` refuses an option
or a choice SimpleTuner 3.1.6's own parser does not know, and accepts what it does take that the
names file used to refuse (a checkpoint path to resume from, a precision only a CUDA machine
offers). The names file agrees with the installed parser: tests/test_backends_names.py."""

from __future__ import annotations

import json

import pytest
from harness import Case, Result, cli, run_case
from room_kit import ok, training_project

P = "grimoire/training/t1"
C = ["config", "--project", "t1", "--backend", "simpletuner", "--vram", "24"]


def _sdxl(p):
    training_project(p)
    ok(cli(p, "grimoire", "set", "intent", "--project", "t1", "Base model=sdxl"))


def _written(key: str, value: str):
    def check(r: Result) -> None:
        cfg = json.loads((r.project / P / "config/config.json").read_text())
        assert cfg[key] == value, cfg.get(key)

    return check


CASES = [
    Case("simpletuner-unknown-option", "backends", "bad-file", "clear-error",
         [*C, "lora_rnak=4"], setup=_sdxl),
    Case("simpletuner-unknown-attention", "backends", "bad-file", "clear-error",
         [*C, "attention_mechanism=flash-atn"], setup=_sdxl),
    Case("simpletuner-resume-from-path", "backends", "silent-nonsense", "correct",
         [*C, "resume_from_checkpoint=output/checkpoint-100"], setup=_sdxl,
         may_change=[f"{P}/*"], check=_written("resume_from_checkpoint", "output/checkpoint-100")),
    Case("simpletuner-cuda-precision", "backends", "silent-nonsense", "correct",
         [*C, "base_model_precision=nf4-bnb"], setup=_sdxl,
         may_change=[f"{P}/*"], check=_written("base_model_precision", "nf4-bnb")),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
