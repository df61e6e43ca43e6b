"""torchtune experiment plans on tiny-llm with what a person gets wrong (issue 15): no local
checkpoint for the model, and a checkpoint folder without the tokenizer the config reads. Both
are named by their config key before any job is submitted. (`tune` missing is in
tests/test_torchtune_tiny.py: it needs an interpreter without torchtune beside it.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import Case, cli, ids, run_case

PLAN = """\
# Runs plan: tt

- **Backend**: torchtune

## Runs

| Run | Base model | Method | Dataset | GPUs | Learning rate | Max steps |{extra_head}
|---|---|---|---|---|---|---|{extra_rule}
| base | tiny-llm | base | ../data.json | - | | |{extra_base}
| run1 | tiny-llm | lora | ../data.json | cpu | 3e-4 | 5 |{extra_run}
"""


def _plan(root: Path, checkpoint: str | None) -> None:
    (root / "data.json").write_text(json.dumps([{"input": "a", "output": "b"}] * 20))
    extra = {"extra_head": "", "extra_rule": "", "extra_base": "", "extra_run": ""}
    if checkpoint:
        extra = {
            "extra_head": " Checkpoint dir |",
            "extra_rule": "---|",
            "extra_base": f" {checkpoint} |",
            "extra_run": f" {checkpoint} |",
        }
    (root / "tt").mkdir()
    (root / "tt" / "runs_plan.md").write_text(PLAN.format(**extra))
    for step in ("plan", "setup-dirs"):
        proc = cli(root, "runs", step, "tt")
        assert proc.returncode == 0, proc.stdout + proc.stderr


def no_checkpoint(root: Path) -> list[str]:
    _plan(root, None)
    return ["runs", "configs", "tt"]


def no_tokenizer(root: Path) -> list[str]:
    model = root / "weights"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    _plan(root, "../weights")
    return ["runs", "configs", "tt"]


def says(*fragments: str):
    def check(result) -> None:
        text = result.out + result.err
        for frag in fragments:
            assert frag in text, (frag, text)

    return check


CASES = [
    Case("tt-plan-without-local-checkpoint", "cluster", "bad-file", "refused",
         setup=no_checkpoint, may_change=["tt/*", "tt/*/*"],
         check=says("run1/finetune.yaml: checkpointer.checkpoint_dir is SET-ME",
                    "no local checkpoint", "'Checkpoint dir'")),
    Case("tt-tokenizer-path-missing", "cluster", "bad-file", "refused",
         setup=no_tokenizer, may_change=["tt/*", "tt/*/*"],
         check=says("tokenizer.path", "weights/vocab.json does not exist")),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
