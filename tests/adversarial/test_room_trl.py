"""The trl backend's bad inputs: keys TRL does not know, a DPO dataset without preference
columns, trainers and flavours that do not exist, an image model, a misspelt backend name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import Case, cli, ids, run_case
from room_kit import ok, project_dir, said, write


def llm_project(project: Path, rows: list[dict] | None = None) -> None:
    """`grimoire new t1` with the tiny Qwen2 as its base model and a small JSONL dataset."""
    rows = rows or [{"prompt": "q", "completion": "a"}] * 4
    write(project / "data" / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    ok(cli(project, "grimoire", "new", "t1"))
    ok(cli(project, "grimoire", "set", "intent", "--project", "t1", "Base model=tiny-qwen2",
           "Dataset folder=data"))  # fmt: skip


def configured(trainer: str, rows: list[dict] | None = None, extra: str = "", data: str = ""):
    """A project configured for TRL; then `extra` appended to trl.yaml by hand, or the dataset
    replaced by `data`."""

    def setup(project: Path) -> None:
        llm_project(project, rows)
        ok(cli(project, "config", "--project", "t1", "--backend", "trl", f"trainer={trainer}",
               "dataset_dir=data/train.jsonl"))  # fmt: skip
        if extra:
            path = project_dir(project) / "trl.yaml"
            path.write_text(path.read_text() + extra)
        if data:
            write(project / "data" / "train.jsonl", data)

    return setup


GATE_FILES = ("grimoire/training/t1/config.md", "grimoire/training/t1/status.md")
CONFIG_FILES = (*GATE_FILES, "grimoire/training/t1/trl.yaml",
                "grimoire/training/t1/trainwright-plan.json")  # fmt: skip

CASES = [
    Case("trl-unknown-override", "backends", "bad-file", "clear-error",
         ["config", "--project", "t1", "--backend", "trl", "lora_rnk=4"], setup=llm_project,
         check=said("lora_rnk", "lora_r", where="err")),
    Case("trl-unknown-trainer", "backends", "bad-file", "clear-error",
         ["config", "--project", "t1", "--backend", "trl", "trainer=ppo"], setup=llm_project,
         check=said("sft, dpo", where="err")),
    Case("trl-unknown-flavour", "backends", "bad-file", "clear-error",
         ["config", "--project", "t1", "--backend", "trl", "flavour=axolotl"],
         setup=llm_project, check=said("hf, unsloth", where="err")),
    Case("trl-image-model", "backends", "silent-nonsense", "clear-error",
         ["config", "--project", "t1", "--backend", "trl", "--model", "sdxl"],
         setup=llm_project, check=said("does not train image models", where="err")),
    Case("backend-misspelt", "backends", "bad-file", "clear-error",
         ["config", "--project", "t1", "--backend", "trll"], setup=llm_project,
         check=said("trl", "torchtune", where="err")),
    Case("trl-dpo-without-preference-columns", "backends", "silent-nonsense", "refused",
         ["gate", "check", "t1", "--gate", "2"], setup=configured("dpo"),
         check=said("lacks chosen, rejected", "completion, prompt"), may_change=GATE_FILES),
    Case("trl-key-edited-in-by-hand", "backends", "bad-file", "refused",
         ["gate", "check", "t1", "--gate", "2"],
         setup=configured("sft", extra="learning_rat: 0.1\n"),
         check=said("'learning_rat' (did you mean 'learning_rate'?)"), may_change=GATE_FILES),
    Case("trl-sft-without-text-columns", "backends", "silent-nonsense", "refused",
         ["gate", "check", "t1", "--gate", "2"],
         setup=configured("sft", rows=[{"question": "q", "reply": "a"}]),
         check=said("lacks text (or messages)", "question, reply"), may_change=GATE_FILES),
    Case("trl-dataset-not-json", "backends", "bad-file", "refused",
         ["gate", "check", "t1", "--gate", "2"],
         setup=configured("sft", data="prompt,completion\nq,a\n{}\n"), may_change=GATE_FILES,
         check=said("cannot be read", "line 1 is not a JSON object")),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
