"""What a run reads from disk (its dataset, a base model file), checked before it is submitted.

A run that cannot find its dataset or meets an unreadable image fails in its first second on the
cluster, after waiting in the queue; the pre-flight checks here catch that on the login node.
A failure for such a lasting reason is recorded with a fingerprint of these inputs, so a relaunch
can tell whether anything changed since (see launch.decide).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from trainwright.cluster.checks import TINY_MODELS
from trainwright.cluster.runs_plan import PlannedRun
from trainwright.run.failures import classify

# Failure kinds (run/failures.py) that a second try without a change fails the same way.
LASTING = frozenset({"dataset", "model", "config", "package", "cuda"})


def _local(value: Any, base: Path | None = None) -> Path | None:
    """A path the config names: absolute, or relative to `base` (the trainer's working folder)
    when given; without a base a bare name is not a path (a hub dataset such as alpaca)."""
    if not isinstance(value, str) or not value.strip():
        return None
    path = Path(value.strip()).expanduser()
    if path.is_absolute():
        return path
    return base / path if base is not None else None


def paths_read(run: PlannedRun, config: dict[str, Any], folder: Path) -> dict[str, Path]:
    """What the run reads, by role: 'dataset' (a folder of images or a data file) and 'model'.
    `folder` is the run's folder, where the trainer starts."""
    found: dict[str, Path] = {}
    if run.backend == "tiny":
        dataset = _local(config.get("dataset"), folder)
        if dataset is not None:
            found["dataset"] = dataset
        named = config.get("base_model")
        model = None if str(named).lower() in TINY_MODELS else _local(named, folder)
        if model is not None:
            found["model"] = model
    else:
        dataset = config.get("dataset")
        if isinstance(dataset, dict):
            dataset = dataset.get("data_files") or dataset.get("source")
        path = _local(dataset)
        if path is not None:
            found["dataset"] = path
    return found


def problems(run: PlannedRun, config: dict[str, Any], config_path: Path) -> list[str]:
    """What would stop the run at its start: a missing or unreadable dataset or model file, and
    for the tiny trainer whatever its own start-up checks refuse (config keys, images, captions)."""
    where = f"run {run.name!r}: {config_path}"
    if run.backend == "tiny":
        return [f"{where}: {p}" for p in _tiny_problems(config_path)]
    out: list[str] = []
    for role, path in paths_read(run, config, config_path.parent).items():
        if not path.exists():
            out.append(f"{where}: the {role} {path} does not exist")
        elif not os.access(path, os.R_OK):
            out.append(f"{where}: the {role} {path} cannot be read (permissions)")
    return out


def _tiny_problems(config_path: Path) -> list[str]:
    """The tiny trainer's own start-up steps, short of loading torch: its config, the base
    model file, and every image and caption of its dataset (decoded, as it will be)."""
    from trainwright.backends.tiny_model import data, train

    try:
        cfg = train.load_config(config_path)
    except train.TinyError as exc:
        return [str(exc)]
    problems = []
    model = cfg["base_model"]
    if model != train.BUNDLED and not Path(model).is_file():
        problems.append(f"the base model {model} does not exist")
    elif model != train.BUNDLED and not os.access(model, os.R_OK):
        problems.append(f"the base model {model} cannot be read (permissions)")
    try:
        data.load_folder(
            cfg["dataset"], cfg["trigger_word"], cfg["resolution"], cfg["caption_extension"]
        )
    except data.DatasetError as exc:
        audit = f" (trainwright audit {cfg['dataset']} lists them all)"
        problems.append(f"{exc}{audit if 'image' in str(exc) else ''}")
    return problems


def fingerprint(run: PlannedRun, config_path: Path, config: dict[str, Any]) -> str:
    """A digest of the config's bytes and of the names, sizes and times of what the run reads:
    equal digests mean nothing the run depends on changed."""
    h = hashlib.sha256()
    try:
        h.update(config_path.read_bytes())
    except OSError:
        h.update(b"<no config>")
    for role, path in sorted(paths_read(run, config, config_path.parent).items()):
        h.update(f"\0{role}\0{path}".encode())
        for item in _listing(path):
            h.update(item.encode("utf-8", "surrogateescape"))
    return "sha256:" + h.hexdigest()


def _listing(path: Path, limit: int = 200_000) -> list[str]:
    """`relpath size mtime` of every file under path (path itself when a file), sorted."""
    out: list[str] = []
    try:
        if not path.is_dir():
            st = path.stat()
            return [f"\0.\0{st.st_size}\0{st.st_mtime_ns}"]
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full, follow_symlinks=False)
                except OSError:
                    continue
                out.append(f"\0{os.path.relpath(full, path)}\0{st.st_size}\0{st.st_mtime_ns}")
                if len(out) >= limit:
                    return out
    except OSError as exc:
        return [f"\0<unreadable {exc.errno}>"]
    return out


def lasting_kind(trainer_text: str, exit_code: int | None) -> str | None:
    """The failure's kind when a second try without a change would fail the same way."""
    kind = classify(trainer_text, exit_code).kind
    return kind if kind in LASTING else None
