"""runs_status.yaml: where each run stands. Read-validate-modify-write under the folder's lock.

A hand-edited file that is not valid YAML, or not the expected shape, is refused with its file
and line before anything is submitted, and it is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from trainwright.clock import now_iso
from trainwright.cluster import states
from trainwright.errors import StateFileError
from trainwright.state.atomic import atomic_write_text, locked
from trainwright.state.document import decode_state_bytes

STATUS_NAME = "runs_status.yaml"
HEADER = """\
# Where each run of this experiment stands. Written by `trainwright runs plan|launch|monitor`
# (atomically, under a lock). Keys you add to a run (a `notes:` line, say) are kept; comments
# are not, so write notes as keys. Show it with `trainwright runs monitor`.
"""


@functools.cache
def _schema() -> dict[str, Any]:
    text = (
        resources.files("trainwright.cluster") / "schemas" / "runs-status.schema.json"
    ).read_text()
    return json.loads(text)


def status_path(experiment_dir: Path) -> Path:
    return Path(experiment_dir) / STATUS_NAME


def _line_of(text: str, keys: list[Any]) -> int | None:
    """1-based line of the value at `keys` in the YAML text (best effort)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(key):
                    line, node = k.start_mark.line + 1, v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def parse_status(text: str, path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise StateFileError(
            path,
            f"not valid YAML ({problem}); fix that line by hand or restore the file, "
            "nothing was submitted",
            line,
        ) from None
    except yaml.YAMLError as exc:
        raise StateFileError(path, f"not valid YAML ({exc})") from None
    if data is None:
        data = {"runs": {}}
    if not isinstance(data, dict):
        raise StateFileError(path, "should be a mapping with a 'runs:' key", 1)
    if data.get("runs") is None:
        data["runs"] = {}
    errors = sorted(
        jsonschema.Draft202012Validator(_schema()).iter_errors(data),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
    )
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "top level"
        raise StateFileError(
            path, f"{where}: {err.message}", _line_of(text, list(err.absolute_path))
        )
    return data


def read_status(experiment_dir: Path) -> dict[str, Any]:
    """The parsed file; an empty one when it does not exist yet."""
    path = status_path(experiment_dir)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {"runs": {}}
    except IsADirectoryError:
        raise StateFileError(path, "is a folder, expected a YAML file") from None
    return parse_status(decode_state_bytes(raw, path), path)


def render_status(data: dict[str, Any]) -> str:
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return HEADER + body


def write_status(experiment_dir: Path, data: dict[str, Any]) -> None:
    data["updated"] = now_iso()
    text = render_status(data)
    parse_status(text, status_path(experiment_dir))  # never write what we could not read back
    atomic_write_text(status_path(experiment_dir), text)


@contextlib.contextmanager
def editing(
    experiment_dir: Path, timeout: float = 60.0, write: bool = True
) -> Iterator[dict[str, Any]]:
    """Hold the experiment's lock, yield the status to change in place, write it back on success.

    On an exception, or with write=False (a dry run), nothing is written.
    """
    with locked(experiment_dir, timeout=timeout):
        data = read_status(experiment_dir)
        before = render_status({k: v for k, v in data.items() if k != "updated"})
        yield data
        if not write:
            return
        after = render_status({k: v for k, v in data.items() if k != "updated"})
        if after != before or not status_path(experiment_dir).exists():
            write_status(experiment_dir, data)


def run_entry(data: dict[str, Any], name: str) -> dict[str, Any]:
    runs = data.setdefault("runs", {})
    entry = runs.get(name)
    if entry is None:
        entry = runs[name] = {"state": states.PLANNED}
    return entry


def sync_with_plan(data: dict[str, Any], experiment: str, runs: list[Any]) -> list[str]:
    """Add the plan's new runs (PLANNED, or SKIPPED for base models); never drop an entry."""
    if "experiment" not in data:
        rest = dict(data)
        data.clear()
        data.update({"experiment": experiment, **rest})
    added = []
    for run in runs:
        if run.name not in data.setdefault("runs", {}):
            entry: dict[str, Any] = {"state": states.PLANNED if run.trains else states.SKIPPED}
            if not run.trains:
                entry["reason"] = "base-model run: evaluated as is, nothing to fine-tune"
            data["runs"][run.name] = entry
            added.append(run.name)
    return added
