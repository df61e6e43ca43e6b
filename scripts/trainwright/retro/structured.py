"""YAML and JSON reports: runs_status.yaml of SLURM sweeps, sweep results, flat records.

Accepted shapes: `{runs: [...]}` / `{runs: {name: {...}}}` (also `jobs`, `experiments`,
`results`), a top-level list of mappings, or a mapping of run name to mapping. Nested mappings
inside a run (`metrics: {loss: 1.2}`, `config: {lr: ...}`) are read one level down.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from trainwright.retro.domains import Focus
from trainwright.retro.experiment_report import Report
from trainwright.retro.extract import from_rows

RUN_KEYS = ("runs", "jobs", "experiments", "results", "sweep")
LABEL_KEYS = ("name", "run", "run_name", "run_id", "id", "label", "config_name")


class StructuredError(ValueError):
    pass


def load(text: str, suffix: str) -> Any:
    try:
        if suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise StructuredError(f"invalid JSON on line {exc.lineno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" on line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise StructuredError(f"invalid YAML{where}: {problem}") from None


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (int, float, str)) for v in value):
        return ", ".join(str(v) for v in value)
    return None


def _flatten(run: dict[str, Any]) -> dict[str, str]:
    cells: dict[str, str] = {}
    for key, value in run.items():
        if isinstance(value, dict):
            for sub, inner in value.items():
                text = _scalar(inner)
                if text is not None:
                    cells.setdefault(str(sub), text)
        else:
            text = _scalar(value)
            if text is not None:
                cells[str(key)] = text
    return cells


def _runs(data: Any) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    top: dict[str, Any] = {}
    found: Any = None
    if isinstance(data, list):
        found = data
    elif isinstance(data, dict):
        for key in RUN_KEYS:
            if isinstance(data.get(key), (list, dict)):
                found = data[key]
                break
        top = {k: v for k, v in data.items() if found is None or data.get(k) is not found}
        if found is None and data and all(isinstance(v, dict) for v in data.values()):
            found, top = data, {}
    rows: list[tuple[str, dict[str, Any]]] = []
    if isinstance(found, dict):
        rows = [(str(k), v) for k, v in found.items() if isinstance(v, dict)]
    elif isinstance(found, list):
        for n, v in enumerate(found, start=1):
            if isinstance(v, dict):
                label = next((str(v[k]) for k in LABEL_KEYS if k in v), f"run {n}")
                rows.append((label, v))
    return top, rows


def from_structured(text: str, suffix: str, report: Report, focus: Focus) -> Report:
    data = load(text, suffix)
    top, rows = _runs(data)
    flat_top = {str(k): s for k, v in top.items() if (s := _scalar(v)) is not None}
    for key in ("title", "experiment", "name"):
        if key in flat_top and report.title == report.path:
            report.title = flat_top[key]
    return from_rows(report, focus, flat_top, ((label, _flatten(run)) for label, run in rows))
