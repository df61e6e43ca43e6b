"""What a text dataset's rows must hold for supervised (SFT) and preference (DPO) training.

The neutral column rules, shared by Gate 1's text checks and by any LLM trainer that checks a
config's dataset before it runs: the file kinds a text dataset comes in, the columns each kind of
training needs, and the column names of a file read from its first rows.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

# file suffix -> the Hugging Face `datasets` builder that reads it
DATA_SUFFIXES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
TRAININGS = ("sft", "dpo")

NEEDS = {
    "dpo": "preference columns prompt / chosen / rejected (or chosen / rejected holding whole "
    "conversations)",
    "sft": "a text column, a messages column (conversations), or prompt / completion",
}
# What Gate 1 also takes as SFT rows: instruction pairs (alpaca's instruction / input / output,
# torchtune's instruct_dataset input / output). Whether the chosen trainer reads them is Gate 2's
# question: TRL does not, so its config check names the columns it wants.
INSTRUCTION_PAIRS = ({"input", "output"}, {"instruction", "output"})
NEEDS_ANY_TRAINER = NEEDS["sft"] + ", or instruction pairs input / output (instruction / output)"


def missing_columns(
    training: str, columns: set[str], text_field: str = "text", *, pairs: bool = False
) -> list[str]:
    """The columns `training` needs that `columns` lacks ([] when nothing is missing);
    `pairs`: instruction pairs count as SFT rows too (Gate 1, before a trainer is chosen)."""
    if training == "dpo":
        return [c for c in ("chosen", "rejected") if c not in columns]
    if pairs and any(p <= columns for p in INSTRUCTION_PAIRS):
        return []
    if text_field in columns or "messages" in columns or {"prompt", "completion"} <= columns:
        return []
    if "prompt" in columns:
        return ["completion"]
    return [text_field if text_field != "text" else "text (or messages)"]


def is_data_file(path: Path) -> bool:
    return path.suffix.lower() in DATA_SUFFIXES


def columns_of(path: Path) -> set[str] | None:
    """Column names from the first rows of a JSON, JSON Lines, CSV or parquet file; None when
    they cannot be read (parquet without pyarrow)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
            return set(next(csv.reader(fh), []))
    if suffix == ".parquet":
        if importlib.util.find_spec("pyarrow") is None:
            return None
        import pyarrow.parquet as pq

        return set(pq.read_schema(path).names)
    with open(path, encoding="utf-8", errors="replace") as fh:
        head = fh.read(1 << 20)
    stripped = head.lstrip()
    if stripped.startswith("[") or (suffix == ".json" and not is_json_lines(stripped)):
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            raise ValueError(f"{path} is not valid JSON ({exc})") from None
        if isinstance(rows, dict):
            return set(rows)
        if not isinstance(rows, list):
            raise ValueError(f"{path} holds a JSON {type(rows).__name__}, not rows")
        return {k for row in rows[:20] if isinstance(row, dict) for k in row}
    cols: set[str] = set()
    for n, line in enumerate(head.splitlines()[:20], 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            if n == len(head.splitlines()):  # cut off by the 1 MiB read
                break
            raise ValueError(f"{path} line {n} is not a JSON object") from None
        if isinstance(row, dict):
            cols |= set(row)
    return cols


def is_json_lines(text: str) -> bool:
    first = text.split("\n", 1)[0].strip()
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:
        return False
