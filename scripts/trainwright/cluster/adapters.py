"""What the cluster steps ask of a run's backend, and the file edits they share.

Each backend module says how its run starts, resumes and where it checkpoints
(`cluster_launch`), its batch keys and its process limit; this file finds the module through
the registry, reads a run's config and shrinks it after an out-of-memory by the one rule in
backends/common.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from trainwright.errors import TrainwrightError

CONFIG_NAME = "finetune.yaml"
SCRIPT_NAME = "finetune.slurm"


def read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainwrightError(
            f"{path}: config missing; write it first (`trainwright runs configs`)"
        ) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise TrainwrightError(f"{path}:{line}: not valid YAML ({exc.problem})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TrainwrightError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise TrainwrightError(f"{path}: expected `key: value` lines at the top level")
    return data


def adapter(name: str) -> Any:
    """The backend module of a planned run; a clear error when it cannot run on a cluster."""
    from trainwright import backends

    return backends.cluster_backend(name)


def batch_keys(name: str) -> tuple[str, str]:
    return tuple(adapter(name).BATCH_KEYS)  # type: ignore[return-value]


def max_processes(name: str) -> int | None:
    return getattr(adapter(name), "MAX_PROCESSES", None)


def backend_names() -> tuple[str, ...]:
    from trainwright import backends

    return tuple(backends.cluster_backends())


def cpu_backends() -> tuple[str, ...]:
    from trainwright import backends

    return tuple(
        n
        for n in backend_names()
        if backends.runs_on_cpu(backends.get(n)) or hasattr(backends.get(n), "cpu_problem")
    )


_TOP_KEY = r"^(?P<key>{key})(?P<sep>[ \t]*:[ \t]*)(?P<value>[^#\n]*?)(?P<rest>[ \t]*(#.*)?)$"


def set_top_level(text: str, updates: dict[str, int]) -> str:
    """Change top-level `key: value` lines in place (comments kept); append missing keys."""
    for key, value in updates.items():
        pattern = re.compile(_TOP_KEY.format(key=re.escape(key)), re.M)
        text, count = pattern.subn(lambda m, v=value: f"{m['key']}{m['sep']}{v}{m['rest']}", text)
        if count == 0:
            text = text.rstrip("\n") + f"\n{key}: {value}\n"
    return text


def halve_batch(config_path: Path, keys: tuple[str, str]) -> tuple[int, int, int, int]:
    """Shrink the run's config by the one out-of-memory rule. Returns old and new.

    Raises TrainwrightError when the batch is already 1.
    """
    from trainwright.backends.common import halve_batch as rule
    from trainwright.state.atomic import atomic_write_text

    config = read_config(config_path)
    batch_key, accum_key = keys
    batch = int(config.get(batch_key) or 1)
    accum = int(config.get(accum_key) or 1)
    try:
        new_batch, new_accum = rule(batch, accum)
    except ValueError:
        raise TrainwrightError(
            f"{config_path}: {batch_key} is already 1; it cannot shrink further"
        ) from None
    text = config_path.read_text(encoding="utf-8")
    new_text = set_top_level(text, {batch_key: new_batch, accum_key: new_accum})
    check = yaml.safe_load(new_text)
    if check.get(batch_key) != new_batch or check.get(accum_key) != new_accum:
        raise TrainwrightError(f"{config_path}: could not change {batch_key} in place")
    atomic_write_text(config_path, new_text)
    return batch, accum, new_batch, new_accum
