"""Gate 1 for a text dataset (an LLM's SFT or DPO rows): GO / NO-GO from the rows themselves.

dataset/gate.py sends a project here when intent.md's Dataset folder is a .jsonl, .json, .csv or
.parquet file, or a folder holding such files and no images. The training (SFT or DPO) comes
from intent.md's Type (sft, chat, instruct: SFT; dpo: DPO; anything else: SFT). The decision
is bound to the content hash of the dataset path, so editing a row afterwards makes it stale.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainwright.dataset.dataset_report import stamp, update_report
from trainwright.dataset.images import IMAGE_EXTS
from trainwright.dataset.text_columns import NEEDS, NEEDS_ANY_TRAINER, is_data_file, missing_columns
from trainwright.dataset.text_rows import Problem, Row, data_files, read
from trainwright.errors import TrainwrightError
from trainwright.state.content_hash import content_hash, special_kind
from trainwright.state.gates import GO, NO_GO, GateResult
from trainwright.state.grimoire import Grimoire
from trainwright.state.hints import shown_path

TRAINING_OF_TYPE = {"sft": "sft", "chat": "sft", "instruct": "sft", "dpo": "dpo"}
ROLES = {"system", "user", "assistant", "tool", "developer", "function"}
PROBLEM_TEXT = {
    "parse": "do not parse",
    "not-object": "are not JSON objects of columns",
    "not-utf8": "are not UTF-8 text",
    "long-line": "are too long to read",
    "unreadable": "cannot be read",
}


@functools.cache
def limits() -> dict[str, Any]:
    return yaml.safe_load((Path(__file__).with_name("text_limits.yaml")).read_text())


def training(lora_type: str | None) -> str:
    return TRAINING_OF_TYPE.get((lora_type or "").strip().lower(), "sft")


def existing(path: Path) -> Path:
    """The dataset path, refused in one line when it cannot be used at all."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if path.is_symlink():
            raise TrainwrightError(
                f"{path}: a link that cannot be followed (it loops or its target is gone)"
            ) from None
        if isinstance(exc, FileNotFoundError):
            what = "file" if is_data_file(path) else "folder"
            raise TrainwrightError(f"{path}: no such {what}") from None
        raise TrainwrightError(f"{path}: {exc.strerror or 'cannot be read'}") from None
    kind = special_kind(mode)
    if kind and kind != "folder":
        raise TrainwrightError(f"{path}: a {kind}, not a dataset file or folder")
    if not os.access(path, os.R_OK | (os.X_OK if kind else 0)):
        raise TrainwrightError(f"{path}: permission denied")
    return path


def is_text_dataset(path: Path, lora_type: str | None, text_model: bool) -> bool:
    """A data file, or a folder with data files and no images; an empty folder when the
    intent's Type or base model is a language one."""
    if not path.is_dir():
        return is_data_file(path)
    text = False
    for _top, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            suffix = Path(f).suffix.lower()
            if suffix in IMAGE_EXTS:
                return False
            text = text or is_data_file(Path(f))
    return text or text_model or (lora_type or "").strip().lower() in TRAINING_OF_TYPE


@dataclass
class Found:
    rows: int = 0
    problems: dict[str, list[Problem]] = field(default_factory=dict)
    lacking: list[tuple[Row, list[str]]] = field(default_factory=list)
    malformed: list[Row] = field(default_factory=list)
    same_pair: list[Row] = field(default_factory=list)
    duplicates: list[tuple[Row, Row]] = field(default_factory=list)
    long: list[Row] = field(default_factory=list)
    columns: set[str] = field(default_factory=set)
    chars: int = 0
    longest: int = 0


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and not value)


def _chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_chars(v) for v in value.values())
    if isinstance(value, list):
        return sum(_chars(v) for v in value)
    return 0


def _bad_conversation(value: Any) -> bool:
    if not isinstance(value, list) or not value:
        return True
    for turn in value:
        if not isinstance(turn, dict) or turn.get("role") not in ROLES:
            return True
        content = turn.get("content")
        if not isinstance(content, (str, list)) and not turn.get("tool_calls"):
            return True
    return False


def _malformed(row: dict[str, Any], kind: str) -> bool:
    if "messages" in row and not _empty(row["messages"]) and _bad_conversation(row["messages"]):
        return True
    keys = ("chosen", "rejected", "prompt") if kind == "dpo" else ("prompt", "completion")
    return any(isinstance(row.get(k), list) and _bad_conversation(row[k]) for k in keys)


def scan(path: Path, kind: str) -> Found:
    lim, found, seen = limits(), Found(), {}
    for file in data_files(path):
        for item in read(file, int(lim["max_line_bytes"])):
            if isinstance(item, Problem):
                found.problems.setdefault(item.kind, []).append(item)
                continue
            found.rows += 1
            row = item.value
            found.columns |= set(row)
            size = _chars(row)
            found.chars += size
            found.longest = max(found.longest, size)
            if size > lim["long_row_chars"]:
                found.long.append(item)
            filled = {k for k, v in row.items() if not _empty(v)}
            missing = missing_columns(kind, filled, pairs=True)
            if missing:
                found.lacking.append((item, missing))
                continue
            if _malformed(row, kind):
                found.malformed.append(item)
                continue
            if kind == "dpo" and row["chosen"] == row["rejected"]:
                found.same_pair.append(item)
            key = hashlib.sha256(
                json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode()
            ).digest()
            if key in seen:
                found.duplicates.append((item, seen[key]))
            else:
                seen[key] = item
    return found


def check(g: Grimoire, project: str, path: Path, lora_type: str | None) -> GateResult:
    """Gate 1 for the text dataset at `path` (already resolved by dataset/gate.py)."""
    lim, kind = limits(), training(lora_type)
    digest = content_hash(path).digest
    one_file = not path.is_dir()
    found = scan(path, kind)
    shown = shown_path(path)
    label = kind.upper()

    def at(file: Path, where: int | None, word: str = "line") -> str:
        name = "" if one_file else f"{file.relative_to(path).as_posix()} "
        return f"{name}{word} {where}" if where else (name.strip() or shown)

    def lines(rows: list[Any]) -> str:
        cut = rows[: lim["examples"]]
        text = ", ".join(at(r.file, r.where) for r in cut)
        return text + (f" and {len(rows) - len(cut)} more" if len(rows) > len(cut) else "")

    reasons: list[str] = []
    fixes: list[str] = []
    blocking = False

    def block(reason: str, fix: str) -> None:
        nonlocal blocking
        blocking = True
        reasons.append(reason)
        fixes.append(fix)

    files = data_files(path)
    if not files:
        block(
            f"{shown} holds no .jsonl, .json, .csv or .parquet file",
            f"put the rows in {shown} (or point 'Dataset folder' in intent.md at the file)",
        )
    for pkind, items in found.problems.items():
        reason = f"{len(items)} rows {PROBLEM_TEXT[pkind]} ({lines(items)})"
        if pkind == "unreadable" or all(i.where is None for i in items):
            reason = "; ".join(f"{at(i.file, None)} {i.reason}" for i in items[:3])
        else:
            reason += f": {items[0].reason}"
        block(reason, f"fix or remove those rows in {shown} (one JSON object per line)")
    if files and not found.rows:
        block(f"{shown} has no rows", f"write the training rows into {shown}")
    lacking_all = found.rows and len(found.lacking) == found.rows
    wanted = NEEDS_ANY_TRAINER if kind == "sft" else NEEDS[kind]
    absent = lacking_all and missing_columns(kind, found.columns, pairs=True)
    if absent:
        block(
            f"the {label} dataset lacks {', '.join(absent)}: {kind} needs {wanted}; "
            f"its columns are {', '.join(sorted(found.columns)) or 'none'}",
            "rename the columns, or set Type in intent.md to the training these rows are for",
        )
    elif found.lacking:
        missing = sorted({c for _, m in found.lacking for c in m})
        block(
            f"{len(found.lacking)} rows lack {', '.join(missing)} or have it empty "
            f"({lines([r for r, _ in found.lacking])})",
            f"fill in or remove those rows ({kind} needs {wanted})",
        )
    if found.malformed:
        block(
            f"{len(found.malformed)} conversations are malformed, each turn needs a role "
            f"({', '.join(sorted(ROLES))}) and a text content ({lines(found.malformed)})",
            'write each turn as {"role": "user", "content": "..."}',
        )
    if found.same_pair:
        block(
            f"{len(found.same_pair)} pairs have chosen equal to rejected, nothing to learn "
            f"({lines(found.same_pair)})",
            "give those pairs a worse rejected answer, or remove them",
        )
    if found.duplicates:
        shown_dups = ", ".join(
            f"{at(a.file, a.where)} repeats {at(b.file, b.where)}"
            for a, b in found.duplicates[: lim["examples"]]
        )
        block(
            f"{len(found.duplicates)} rows are exact duplicates ({shown_dups})",
            "remove the repeated rows: each one is trained on again and again",
        )
    usable = found.rows - len(found.lacking) - len(found.malformed) - len(found.duplicates)
    usable -= len(found.same_pair)
    low, usual = lim["min_rows"][kind], lim["usual_rows"][kind]
    if found.rows and usable < low:
        block(
            f"{usable} usable rows; {label} needs at least {low}",
            f"add {low - usable} or more rows",
        )
    elif found.rows and usable < usual:
        reasons.append(f"{usable} rows is fewer than the {usual}+ usual for {label} (not blocking)")
    if found.long:
        approx = lim["long_row_chars"] // lim["chars_per_token"]
        reasons.append(
            f"{len(found.long)} rows are longer than {lim['long_row_chars']} characters (about "
            f"{approx} tokens; cut at the config's max_length; not blocking): {lines(found.long)}"
        )
    if (lora_type or "").strip().lower() not in ("", *TRAINING_OF_TYPE):
        reasons.append(f"Type '{lora_type}' is an image LoRA type: the rows were checked for SFT")
    if not blocking:
        reasons.insert(0, f"{usable} {label} rows with the columns {label} needs, no duplicates")

    issues = found.rows - usable + sum(len(v) for v in found.problems.values())
    quality = [
        f"{found.rows} rows in {len(files)} file(s); columns: {', '.join(sorted(found.columns))}"
        if found.rows
        else "no rows read",
        *reasons[1 if not blocking else 0 :],
    ]
    average = found.chars // found.rows if found.rows else 0
    shape = [
        f"{found.rows - len(found.duplicates)} distinct rows of {found.rows}",
        f"average {average} characters a row, longest {found.longest}",
    ]
    if blocking:
        decision_text = "### If NO-GO\n\n" + "\n".join(f"- {f}" for f in fixes)
    else:
        limits_text = "; ".join(reasons[1:]) or "none found by the checks"
        decision_text = (
            f"### If GO\n\n- Ready to train {label} on {usable} rows from {shown}.\n"
            f"- Known limitations: {limits_text}"
        )
    update_report(
        g,
        project,
        blocks={
            ("Quality Issues", "quality-issues"): stamp("Found by trainwright", quality),
            ("Diversity Assessment", "diversity"): stamp("Measured by trainwright", shape),
            ("Gate 1 Decision", "gate-1-fixes"): decision_text,
        },
    )
    summary: dict[str, Any] = {
        "Training": label,
        "Rows": found.rows,
        "Duplicates found": len(found.duplicates),
        "Issues": issues,
    }
    return GateResult(
        NO_GO if blocking else GO,
        reasons,
        digest,
        fixes=fixes,
        updates={"Summary": summary},
        details={
            "dataset": str(path),
            "training": kind,
            "rows": found.rows,
            "usable": usable,
            "duplicates": len(found.duplicates),
            "problems": {k: len(v) for k, v in found.problems.items()},
        },
    )
