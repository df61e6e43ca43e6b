"""runs_plan.md as text: tables, `## Run: NAME` sections, `## Defaults`, cells with their lines.

This module only finds what is written where; plan.py turns it into typed, checked runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from trainwright.state.document import FENCE, FIELD, HEADING

# Canonical column -> the header spellings people use (compared after normalising case,
# underscores, dashes and a trailing "(...)").
COLUMNS: dict[str, tuple[str, ...]] = {
    "run": ("run", "name", "run name", "run id", "id"),
    "model": ("base model", "model"),
    "method": ("method", "fine tune", "finetune", "training"),
    "dataset": ("dataset", "data"),
    "gpus": ("gpus", "gpu", "# gpus", "num gpus", "gpu count", "n gpus"),
    "nodes": ("nodes", "num nodes", "# nodes"),
    "backend": ("backend", "framework", "trainer"),
    "learning_rate": ("learning rate", "lr"),
    "epochs": ("epochs", "epoch"),
    "max_steps": ("max steps", "max steps per epoch", "steps"),
    "batch_size": ("batch size", "batch", "bs"),
    "gradient_accumulation_steps": (
        "gradient accumulation",
        "gradient accumulation steps",
        "grad accum",
        "accumulation",
    ),
    "lora_rank": ("lora rank", "rank"),
    "lora_alpha": ("lora alpha", "alpha"),
    "max_seq_len": ("max seq len", "seq len", "sequence length", "max sequence length"),
    "packed": ("packed", "packing"),
    "seed": ("seed",),
    "time": ("time", "time limit", "walltime", "wall time"),
    "sweep": ("sweep", "array", "sweep group"),
    "notes": ("notes", "note", "comment", "purpose", "description"),
}
REQUIRED = ("run", "model", "method", "dataset", "gpus")
LABELS = {
    "run": "Run",
    "model": "Base model",
    "method": "Method",
    "dataset": "Dataset",
    "gpus": "GPUs",
    "nodes": "Nodes",
    "backend": "Backend",
    "learning_rate": "Learning rate",
    "epochs": "Epochs",
    "max_steps": "Max steps",
    "batch_size": "Batch size",
    "gradient_accumulation_steps": "Grad accum",
    "lora_rank": "LoRA rank",
    "lora_alpha": "LoRA alpha",
    "max_seq_len": "Max seq len",
    "packed": "Packed",
    "seed": "Seed",
    "time": "Time",
    "sweep": "Sweep",
    "notes": "Notes",
}
EMPTY = {"", "-", "—", "–", "n/a", "na"}
_RUN_HEADING = re.compile(r"^run\s*:\s*(.+)$", re.I)
_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


@dataclass
class Problem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def norm_header(text: str) -> str:
    text = re.sub(r"\(.*?\)|\[.*?\]", "", text.replace("*", "").replace("`", ""))
    text = re.sub(r"[_\-/]+", " ", text.strip().lower())
    return " ".join(text.split())


_ALIASES = {alias: key for key, names in COLUMNS.items() for alias in names}


def column_for(header: str) -> str | None:
    return _ALIASES.get(norm_header(header))


def split_row(line: str) -> list[str]:
    """Cells of a `| a | b |` row; `\\|` is a literal bar inside a cell."""
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    cells = re.split(r"(?<!\\)\|", body)
    return [c.strip().replace("\\|", "|") for c in cells]


def cell_value(raw: str) -> str | None:
    text = raw.strip().strip("`").strip()
    return None if text.lower() in EMPTY else text


@dataclass
class Entry:
    """One run as written (a table row or a `## Run:` section): raw cells with their lines."""

    line: int
    cells: dict[str, tuple[str, int]]  # canonical column -> (raw text, line)
    extra: dict[str, str] = field(default_factory=dict)
    table: bool = False


def scan(lines: list[str], problems: list[Problem]) -> tuple[dict[str, str], list[Entry], bool]:
    """Find the top fields, the `## Defaults` fields and every run entry."""
    top: dict[str, str] = {}
    defaults: dict[str, tuple[str, int]] = {}
    entries: list[Entry] = []
    section = ""
    current: Entry | None = None
    in_fence = False
    idx = 0
    found_table = False
    while idx < len(lines):
        line = lines[idx]
        lineno = idx + 1
        if FENCE.match(line):
            in_fence = not in_fence
            idx += 1
            continue
        if in_fence:
            idx += 1
            continue
        heading = HEADING.match(line)
        if heading:
            title = heading.group(2).strip()
            run = _RUN_HEADING.match(title)
            if run and len(heading.group(1)) >= 2:
                current = Entry(lineno, {"run": (run.group(1).strip(), lineno)})
                entries.append(current)
                section = "run"
            elif len(heading.group(1)) == 1 and section == "":
                current = None  # the title: fields under it are the plan's top fields
            else:
                current = None
                section = "defaults" if norm_header(title) == "defaults" else title
            idx += 1
            continue
        if (
            line.lstrip().startswith("|")
            and idx + 1 < len(lines)
            and _SEPARATOR.match(lines[idx + 1])
        ):
            header = split_row(line)
            columns = [column_for(h) for h in header]
            if "run" in columns:
                found_table = True
                idx = read_table(lines, idx, header, columns, entries, problems)
                current = None
                continue
        fld = FIELD.match(line)
        if fld:
            key, value = fld.group("key").strip(), fld.group("value")
            col = column_for(key)
            if current is not None:
                if col is None:
                    current.extra[key] = value.strip()
                elif col in current.cells and col != "run":
                    problems.append(
                        Problem(lineno, f"'{key}' is set twice for run {current.cells['run'][0]!r}")
                    )
                elif col != "run":
                    current.cells[col] = (value, lineno)
            elif section == "defaults":
                if col is None or col == "run":
                    problems.append(Problem(lineno, f"unknown default '{key}'"))
                else:
                    defaults[col] = (value, lineno)
            elif section == "":
                top[key.lower()] = value.strip()
        idx += 1
    for entry in entries:
        for col, cell in defaults.items():
            if col not in entry.cells or cell_value(entry.cells[col][0]) is None:
                entry.cells.setdefault(col, cell)
                if cell_value(entry.cells[col][0]) is None:
                    entry.cells[col] = cell
    top["__defaults__"] = ",".join(defaults)
    return top, entries, found_table


def read_table(
    lines: list[str],
    start: int,
    header: list[str],
    columns: list[str | None],
    entries: list[Entry],
    problems: list[Problem],
) -> int:
    seen: dict[str, int] = {}
    for pos, col in enumerate(columns):
        if col is None:
            continue
        if col in seen:
            problems.append(
                Problem(start + 1, f"column '{header[pos]}' repeats column '{header[seen[col]]}'")
            )
        else:
            seen[col] = pos
    idx = start + 2
    while idx < len(lines) and lines[idx].lstrip().startswith("|"):
        lineno = idx + 1
        cells = split_row(lines[idx])
        if len(cells) != len(header):
            problems.append(
                Problem(
                    lineno,
                    f"row has {len(cells)} cells but the header has {len(header)} "
                    "(a missing or extra '|'?)",
                )
            )
        entry = Entry(lineno, {}, table=True)
        for pos, text in enumerate(cells[: len(header)]):
            col = columns[pos]
            if col is None:
                entry.extra[header[pos]] = text
            elif seen.get(col) == pos:
                entry.cells[col] = (text, lineno)
        entries.append(entry)
        idx += 1
    return idx


def missing_columns(
    lines: list[str], entries: list[Entry], defaults: set[str], problems: list[Problem]
) -> None:
    """A required column absent from a table's header (and not given under Defaults): one
    problem. A row with fewer cells is not a missing column: read_table reports the row."""
    reported: set[tuple[int, str]] = set()
    for entry in entries:
        if not entry.table:
            continue
        header = header_line(lines, entry.line)
        present = {column_for(h) for h in split_row(lines[header - 1])}
        for col in REQUIRED:
            if col not in present and col not in defaults and (header, col) not in reported:
                reported.add((header, col))
                problems.append(
                    Problem(
                        header,
                        f"column '{LABELS[col]}' is missing from the runs table "
                        "(add it, or give it once under '## Defaults')",
                    )
                )


def header_line(lines: list[str], row_line: int) -> int:
    idx = row_line - 1
    while idx > 0 and lines[idx - 1].lstrip().startswith("|"):
        idx -= 1
    return idx + 1
