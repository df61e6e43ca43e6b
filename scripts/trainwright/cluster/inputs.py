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

from trainwright.cluster.adapters import adapter
from trainwright.cluster.runs_plan import PlannedRun
from trainwright.run.failures import classify
from trainwright.state.content_hash import file_sha256

# Failure kinds (run/failures.py) that a second try without a change fails the same way.
LASTING = frozenset({"dataset", "model", "config", "package", "cuda"})


def paths_read(run: PlannedRun, config: dict[str, Any], folder: Path) -> dict[str, Path]:
    """What the run reads, by role ('dataset', 'model'), as its backend says (`run_inputs`);
    `folder` is the run's folder, where the trainer starts."""
    backend = adapter(run.backend)
    return dict(backend.run_inputs(config, folder)) if hasattr(backend, "run_inputs") else {}


def problems(run: PlannedRun, config: dict[str, Any], config_path: Path) -> list[str]:
    """What would stop the run at its start: a missing or unreadable dataset or model file, and
    whatever the trainer's own start-up checks refuse (its `startup_problems`, when it has them:
    config keys, images, captions)."""
    where = f"run {run.name!r}: {config_path}"
    backend = adapter(run.backend)
    if hasattr(backend, "startup_problems"):
        return [f"{where}: {p}" for p in backend.startup_problems(config_path)]
    out: list[str] = []
    for role, path in paths_read(run, config, config_path.parent).items():
        if not path.exists():
            out.append(f"{where}: the {role} {path} does not exist")
        elif not os.access(path, os.R_OK):
            out.append(f"{where}: the {role} {path} cannot be read (permissions)")
    return out


def fingerprint(run: PlannedRun, config_path: Path, config: dict[str, Any]) -> str:
    """A digest of the config's content and of the names, sizes and times of what the run reads:
    equal digests mean nothing the run depends on changed."""
    h = hashlib.sha256()
    try:
        h.update(file_sha256(config_path)[0].encode())
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
