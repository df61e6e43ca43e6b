"""runs_plan.md: the runs of one experiment, as a Markdown table or as `## Run: NAME` sections.

Parsing never stops at the first problem: every problem is collected with its line number, so
`trainwright runs validate` can list them all and a person fixes the file in one pass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwright.cluster.plan_markdown import (
    LABELS,
    Entry,
    Problem,
    cell_value,
    missing_columns,
    norm_header,
    scan,
)
from trainwright.cluster.timelimit import parse_time
from trainwright.errors import StateFileError, TrainwrightError
from trainwright.state.document import decode_state_bytes

PLAN_NAME = "runs_plan.md"

METHODS = {
    "lora": "lora",
    "qlora": "qlora",
    "full": "full",
    "full finetune": "full",
    "full fine tune": "full",
    "base": "base",
    "baseline": "base",
    "none": "base",
    "base model": "base",
    "no finetune": "base",
    "eval only": "base",
}
INT_PARAMS = ("epochs", "max_steps", "batch_size", "gradient_accumulation_steps", "lora_rank")
INT_PARAMS += ("max_seq_len",)


@dataclass
class PlannedRun:
    name: str
    line: int
    model: str
    method: str  # lora | qlora | full | base
    dataset: str
    backend: str
    gpus: int | None  # None: CPU-only run, or a base-model run without GPUs
    nodes: int = 1
    params: dict[str, Any] = field(default_factory=dict)  # canonical hyper-parameters
    time: str | None = None  # SLURM time limit, normalised to D-HH:MM:SS
    sweep: str | None = None
    notes: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # columns trainwright does not know
    on_cpu: bool = False  # the GPUs cell says cpu

    def extra_value(self, *names: str) -> str | None:
        wanted = {norm_header(n) for n in names}
        for key, value in self.extra.items():
            if norm_header(key) in wanted and cell_value(value) is not None:
                return cell_value(value)
        return None

    @property
    def trains(self) -> bool:
        return self.method != "base"

    @property
    def gpus_per_node(self) -> int:
        return (self.gpus or 0) // max(self.nodes, 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "line": self.line,
            "model": self.model,
            "method": self.method,
            "dataset": self.dataset,
            "backend": self.backend,
            "gpus": self.gpus,
            "nodes": self.nodes,
            "params": dict(self.params),
            "time": self.time,
            "sweep": self.sweep,
            "notes": self.notes,
            "extra": dict(self.extra),
        }


@dataclass
class Plan:
    path: Path
    experiment: str
    runs: list[PlannedRun]
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def run(self, name: str) -> PlannedRun:
        for r in self.runs:
            if r.name == name:
                return r
        raise TrainwrightError(
            f"no run named {name!r} in {self.path}; runs: {', '.join(r.name for r in self.runs)}"
        )

    def sweeps(self) -> dict[str, list[PlannedRun]]:
        out: dict[str, list[PlannedRun]] = {}
        for r in self.runs:
            if r.sweep and r.trains:
                out.setdefault(r.sweep, []).append(r)
        return out

    def require_valid(self) -> Plan:
        """Raise a one-line error naming the first problem (and how many more) unless valid."""
        if self.problems:
            first = self.problems[0]
            more = len(self.problems) - 1
            tail = (
                f" (and {more} more problem{'s' if more > 1 else ''}: "
                "`trainwright runs validate` lists them all)"
                if more
                else ""
            )
            raise StateFileError(self.path, first.message + tail, first.line)
        return self


# Backend-specific checks (known models, GPU limits): injected by the caller so this module
# stays free of backend imports. Returns the problems found in one run, as text.
# Each problem is (column, text); the column names the cell whose line is reported.
RunCheck = Callable[["PlannedRun"], list[tuple[str, str]]]


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("yes", "y", "true", "on", "1", "packed"):
        return True
    if low in ("no", "n", "false", "off", "0", "unpacked"):
        return False
    raise ValueError(f"should be yes or no, got {text!r}")


def check_run_name(name: str) -> str | None:
    """A run name becomes a folder name: no slash, no control characters, no leading dot/dash."""
    if "/" in name or "\\" in name:
        return f"run name {name!r} contains a slash; it becomes a folder name"
    if name.startswith((".", "-", "~")):
        return f"run name {name!r} must not start with '.', '-' or '~'"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"run name {name!r} contains control characters"
    if len(name) > 100:
        return f"run name {name[:20]!r}... is longer than 100 characters"
    return None


def parse_plan_text(
    text: str,
    path: Path,
    check: RunCheck | None = None,
    backends: tuple[str, ...] = (),
    cpu_backends: tuple[str, ...] = (),
) -> Plan:
    """`backends`: the names a plan may use, the default (for a plan that names none) first."""
    problems: list[Problem] = []
    lines = text.split("\n")
    top, entries, found_table = scan(lines, problems)
    defaults = set(filter(None, top.pop("__defaults__", "").split(",")))
    experiment = top.get("experiment") or path.parent.name or "experiment"
    default_backend = (top.get("backend") or (backends[0] if backends else "")).strip().lower()
    if not entries:
        problems.append(
            Problem(
                1,
                "no runs found: add a table with a 'Run' column (Run | Base model | Method | "
                "Dataset | GPUs) or '## Run: NAME' sections",
            )
        )
    if found_table:
        missing_columns(lines, entries, defaults, problems)
    runs: list[PlannedRun] = []
    names: dict[str, int] = {}
    for entry in entries:
        run = _build(entry, default_backend, backends, cpu_backends, problems)
        if run is None:
            continue
        if check is not None and run.backend in backends:
            for col, text in check(run):
                line = entry.cells.get(col, ("", run.line))[1]
                problems.append(Problem(line, f"run {run.name!r}: {text}"))
        if run.name in names:
            problems.append(
                Problem(
                    run.line, f"duplicate run name {run.name!r} (first at line {names[run.name]})"
                )
            )
            continue
        names[run.name] = run.line
        runs.append(run)
    _check_sweeps(runs, problems)
    problems.sort(key=lambda p: p.line)
    return Plan(path, experiment, runs, problems)


@dataclass
class _Row:
    """One entry being read: its cells, and where its problems go."""

    entry: Entry
    name: str
    problems: list[Problem]

    def get(self, col: str) -> tuple[str | None, int]:
        raw, line = self.entry.cells.get(col, ("", self.entry.line))
        return cell_value(raw), line

    def problem(self, line: int, text: str) -> None:
        self.problems.append(Problem(line, f"run {self.name!r}: {text}"))


def _build(
    entry: Entry,
    default_backend: str,
    backends: tuple[str, ...],
    cpu_backends: tuple[str, ...],
    problems: list[Problem],
) -> PlannedRun | None:
    raw_name, line = cell_value(entry.cells.get("run", ("", entry.line))[0]), entry.line
    if raw_name is None:
        problems.append(Problem(line, "a run has no name (the 'Run' cell is empty)"))
        return None
    bad = check_run_name(raw_name)
    if bad:
        problems.append(Problem(line, bad))
        return None
    row = _Row(entry, raw_name, problems)
    for col in ("model", "method", "dataset"):
        if col not in entry.cells:
            if not entry.table:  # a table's missing column is reported once, at its header
                row.problem(entry.line, f"'{LABELS[col]}' is missing")
        elif row.get(col)[0] is None:
            row.problem(row.get(col)[1], f"'{LABELS[col]}' is empty")
    method = _method(row)
    backend_raw, bline = row.get("backend")
    backend = (backend_raw or default_backend).lower()
    if backend not in backends:
        row.problem(bline, f"backend {backend!r} is unknown; known: {', '.join(backends)}")
    gpus = _gpus(row, method, backend, cpu_backends)
    nodes = _nodes(row, method, gpus)
    time_raw, tline = row.get("time")
    time = None
    if time_raw is not None:
        try:
            time = parse_time(time_raw)
        except ValueError as exc:
            row.problem(tline, str(exc))
    return PlannedRun(
        name=raw_name,
        line=entry.line,
        model=row.get("model")[0] or "",
        method=method,
        dataset=row.get("dataset")[0] or "",
        backend=backend,
        gpus=gpus,
        nodes=nodes,
        params=_params(row),
        time=time,
        sweep=row.get("sweep")[0],
        notes=row.get("notes")[0] or "",
        extra=dict(entry.extra),
        on_cpu=(row.get("gpus")[0] or "").lower() == "cpu",
    )


def _method(row: _Row) -> str:
    raw, line = row.get("method")
    if raw is None:
        return "lora"
    method = METHODS.get(norm_header(raw))
    if method is None:
        row.problem(
            line,
            f"method {raw!r} is unknown; use lora, qlora, full or base "
            "(a base-model run: evaluated, not fine-tuned)",
        )
        return "lora"
    return method


def _gpus(row: _Row, method: str, backend: str, cpu_backends: tuple[str, ...]) -> int | None:
    """The total GPU count; None for a CPU run or a base-model run without GPUs."""
    raw, line = row.get("gpus")
    if raw is None:
        if method != "base":
            if "gpus" in row.entry.cells:
                row.problem(line, "'GPUs' is empty")
            elif not row.entry.table:
                row.problem(row.entry.line, "'GPUs' is missing")
        return None
    if raw.lower() == "cpu":
        if backend not in cpu_backends and method != "base":
            row.problem(
                line,
                f"backend {backend!r} needs GPUs; only "
                f"{', '.join(cpu_backends) or 'no backend'} can train on the CPU",
            )
        return None
    try:
        gpus = int(raw)
    except ValueError:
        row.problem(line, f"GPUs {raw!r} is not a whole number")
        return None
    if gpus < 1:
        row.problem(
            line,
            f"GPU count is {gpus}; a run needs at least 1 GPU (write 'cpu' for a CPU-only backend)",
        )
        return None
    return gpus


def _nodes(row: _Row, method: str, gpus: int | None) -> int:
    raw, line = row.get("nodes")
    nodes = 1
    if raw is not None:
        try:
            nodes = int(raw)
            if nodes < 1:
                raise ValueError
        except ValueError:
            row.problem(line, f"Nodes {raw!r} is not a whole number >= 1")
            return 1
    if gpus is not None and nodes > 1 and gpus % nodes:
        row.problem(
            row.get("gpus")[1],
            f"{gpus} GPUs do not split evenly over {nodes} nodes "
            "(GPUs is the total over all nodes)",
        )
    on_cpu = (row.get("gpus")[0] or "").lower() == "cpu"
    if nodes > 1 and gpus is None and method != "base" and not on_cpu:
        row.problem(line, "a multi-node run needs GPUs (or 'cpu' for a CPU-only backend)")
    return nodes


def _params(row: _Row) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for col in (*INT_PARAMS, "learning_rate", "lora_alpha", "seed", "packed"):
        raw, line = row.get(col)
        if raw is None:
            continue
        try:
            params[col] = _param(col, raw)
        except ValueError as exc:
            row.problem(line, f"{LABELS[col]} {exc}")
    if params.get("packed") and "max_seq_len" not in params:
        row.problem(
            row.get("packed")[1],
            "packing needs a maximum sequence length; add 'Max seq len' "
            "(packing fills blocks of that many tokens with samples)",
        )
    return params


# The largest value that still means something (a cell beyond it is a typo, not a plan).
MAXIMA: dict[str, float] = {
    "epochs": 100_000,
    "max_steps": 1_000_000_000,
    "batch_size": 65_536,
    "gradient_accumulation_steps": 65_536,
    "lora_rank": 4096,
    "max_seq_len": 4_194_304,
    "seed": 2**63 - 1,
    "learning_rate": 10.0,
    "lora_alpha": 65_536,
}
_WHOLE = re.compile(r"[+-]?[0-9][0-9_]*", re.ASCII)
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


def _param(col: str, raw: str) -> Any:
    if col == "packed":
        return _bool(raw)
    if col in INT_PARAMS or col == "seed":
        if not _WHOLE.fullmatch(raw.strip()) or len(raw) > 40:
            raise ValueError(f"{raw!r} is not a whole number (digits 0-9)")
        value = int(raw.replace("_", ""))
        if col != "seed" and value < 1:
            raise ValueError(f"is {value}; it must be at least 1")
        if col == "seed" and value < 0:
            raise ValueError(f"is {value}; it must be 0 or more")
    else:
        if not _DECIMAL.fullmatch(raw.strip()):
            raise ValueError(f"{raw!r} is not a number (digits 0-9)")
        value = float(raw)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"is {raw}; it must be a finite number above 0")
    if value > MAXIMA[col]:
        raise ValueError(f"is {raw}; it must be at most {MAXIMA[col]:g}")
    return value


def _check_sweeps(runs: list[PlannedRun], problems: list[Problem]) -> None:
    groups: dict[str, list[PlannedRun]] = {}
    for r in runs:
        if r.sweep:
            groups.setdefault(r.sweep, []).append(r)
    for sweep, members in groups.items():
        first = members[0]
        for r in members[1:]:
            for attr in ("backend", "gpus", "nodes", "method"):
                if getattr(r, attr) != getattr(first, attr):
                    problems.append(
                        Problem(
                            r.line,
                            f"run {r.name!r}: sweep {sweep!r} runs as one job array, so every "
                            f"run in it needs the same {attr} ({first.name!r} has "
                            f"{getattr(first, attr)!r}, this one {getattr(r, attr)!r})",
                        )
                    )
        if any(not r.trains for r in members):
            problems.append(
                Problem(first.line, f"sweep {sweep!r} contains a base-model run; sweeps train")
            )


def read_plan(
    experiment_dir: Path,
    check: RunCheck | None = None,
    backends: tuple[str, ...] = (),
    cpu_backends: tuple[str, ...] = (),
) -> Plan:
    path = Path(experiment_dir) / PLAN_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StateFileError(
            path, "file not found; create it with `trainwright runs plan EXPERIMENT_DIR`"
        ) from None
    except IsADirectoryError:
        raise StateFileError(path, "is a folder, expected a Markdown file") from None
    return parse_plan_text(decode_state_bytes(data, path), path, check, backends, cpu_backends)
