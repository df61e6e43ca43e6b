"""Gate 1 for an LLM's text dataset, from a `trainwright init` project root with paths as a
person types them: GO on clean rows, NO-GO naming the line, the columns or the repeats, and a
GO that goes stale when the JSONL is edited afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import run_cli


def rows(n: int, **extra: str) -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        | extra
        for i in range(n)
    ]


def write(path: Path, items: list, raw: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in items) + raw)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "studio"
    assert run_cli("init", str(root)).returncode == 0
    assert run_cli("grimoire", "new", "demo", cwd=root).returncode == 0
    return root


def intent(root: Path, *fields: str) -> None:
    done = run_cli("grimoire", "set", "intent", "--project", "demo", *fields, cwd=root)
    assert done.returncode == 0, done.stderr


def gate(root: Path) -> tuple[int, str]:
    proc = run_cli("gate", "check", "demo", "--gate", "1", cwd=root)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout + proc.stderr


def test_clean_sft_jsonl_is_go_and_goes_stale_when_edited(root: Path) -> None:
    write(root / "data" / "chat.jsonl", rows(24))
    intent(root, "Base model=tiny-qwen2", "Dataset folder=data/chat.jsonl")
    code, out = gate(root)
    assert code == 0 and "Gate 1 (dataset) for demo: GO" in out, out
    assert "24 SFT rows" in out
    report = (root / "grimoire/training/demo/dataset-report.md").read_text()
    assert "- **Rows**: 24" in report and "- **Training**: SFT" in report
    status = json.loads(run_cli("gate", "status", "demo", "--json", cwd=root).stdout)
    assert status["gates"][0]["ok"] is True
    with open(root / "data" / "chat.jsonl", "a") as fh:
        fh.write(json.dumps(rows(1)[0] | {"note": "late"}) + "\n")
    status = json.loads(run_cli("gate", "status", "demo", "--json", cwd=root).stdout)
    assert status["gates"][0]["decision"] == "GO" and status["gates"][0]["stale"] is True


def test_a_broken_line_is_named_by_its_number(root: Path) -> None:
    write(root / "data" / "chat.jsonl", rows(12), raw='{"messages": [oops\n')
    write(root / "data" / "more.jsonl", rows(3, extra="x"))
    intent(root, "Dataset folder=data", "Type=chat")  # a folder of JSONL, no images
    code, out = gate(root)
    assert code == 1 and "NO-GO" in out, out
    assert "1 rows do not parse (chat.jsonl line 13)" in out


def test_dpo_without_preference_columns_names_them(root: Path) -> None:
    write(root / "pairs.jsonl", rows(20))
    intent(root, "Dataset folder=pairs.jsonl", "Type=dpo")
    code, out = gate(root)
    assert code == 1, out
    assert "the DPO dataset lacks chosen, rejected" in out and "its columns are messages" in out


def test_dpo_pairs_that_teach_nothing_and_repeats(root: Path) -> None:
    pairs = [{"prompt": f"p{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(15)]
    pairs += [pairs[2], pairs[5], {"prompt": "same", "chosen": "x", "rejected": "x"}]
    write(root / "pairs.jsonl", pairs)
    intent(root, "Dataset folder=" + str(root / "pairs.jsonl"), "Type=dpo")  # absolute path
    code, out = gate(root)
    assert code == 1, out
    assert "2 rows are exact duplicates (line 16 repeats line 3, line 17 repeats line 6)" in out
    assert "1 pairs have chosen equal to rejected" in out and "line 18" in out


def test_malformed_conversation_and_too_few_rows(root: Path) -> None:
    bad = {"messages": [{"speaker": "user", "text": "hi"}]}
    write(root / "chat.jsonl", [*rows(4), bad])
    intent(root, "Dataset folder=chat.jsonl")
    code, out = gate(root)
    assert code == 1, out
    assert "1 conversations are malformed" in out and "line 5" in out
    assert "4 usable rows; SFT needs at least 10" in out


def test_an_image_folder_still_gets_the_image_gate(root: Path) -> None:
    from PIL import Image

    (root / "imgs").mkdir()
    Image.new("RGB", (64, 64)).save(root / "imgs" / "a.png")
    intent(root, "Dataset folder=imgs", "Type=style")
    code, out = gate(root)
    assert code == 1 and "intent.md has no trigger word" in out, out


def test_status_asks_no_trigger_word_of_a_text_project(root: Path) -> None:
    write(root / "chat.jsonl", rows(12))
    intent(root, "Base model=tiny-qwen2", "Dataset folder=chat.jsonl")
    out = run_cli("status", "demo", cwd=root).stdout
    assert "intent still needs" not in out and "phase gate 1" in out, out
    assert "next: trainwright gate check demo --gate 1" in out


def test_a_very_long_row_warns_but_does_not_block(root: Path) -> None:
    long = {"text": "word " * 8000}  # 40000 characters, over the 32000 of text_limits.yaml
    write(root / "notes.jsonl", [{"text": f"row {i}"} for i in range(11)] + [long])
    intent(root, "Dataset folder=notes.jsonl", "Type=instruct")
    code, out = gate(root)
    assert code == 0 and "GO" in out, out
    assert "1 rows are longer than 32000 characters" in out and "line 12" in out


def test_instruction_pairs_pass_gate_1_and_other_columns_do_not(root: Path) -> None:
    """torchtune's instruct_dataset reads input / output, alpaca instruction / output: Gate 1
    takes them as SFT rows (whether the trainer reads them is Gate 2's check)."""
    pairs = [{"input": f"say {i}", "output": f"{i}"} for i in range(24)]
    write(root / "data" / "instruct.json.jsonl", pairs)
    intent(root, "Base model=tiny-qwen2", "Dataset folder=data/instruct.json.jsonl")
    code, out = gate(root)
    assert code == 0 and "GO" in out, out
    write(
        root / "data" / "instruct.json.jsonl",
        [{"question": "q", "answer": str(i)} for i in range(24)],
    )
    code, out = gate(root)
    assert code == 1 and "instruction pairs input / output" in out, out
