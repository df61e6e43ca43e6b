"""Run trainwright the way a person does: from a `trainwright init` project's root, flags at their
defaults, paths as typed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

_TEMPLATES: dict[str, Path] = {}


def init_project(root: Path) -> Path:
    """A fresh project at root, made by `trainwright init` (one real init per session, copied)."""
    key = "template"
    if key not in _TEMPLATES or not _TEMPLATES[key].is_dir():
        import tempfile

        tpl = Path(tempfile.mkdtemp(prefix="tw-init-")) / "project"
        tpl.mkdir()
        proc = tw(tpl, "init", ".")
        assert proc.returncode == 0, proc.stderr
        _TEMPLATES[key] = tpl
    shutil.copytree(_TEMPLATES[key], root, symlinks=True, dirs_exist_ok=True)
    return root


def tw(
    cwd: Path, *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`trainwright ARGS` in a subprocess whose working folder is cwd."""
    return subprocess.run(
        [sys.executable, "-m", "trainwright", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def make_dataset(folder: Path, count: int = 24, trigger: str = "zzq") -> Path:
    """count painted pictures with captions (96 px: no two of them are near copies)."""
    from trainwright.backends.tiny_model.data import write_example_dataset

    write_example_dataset(folder, count, trigger=trigger, size=96)
    return folder


def out(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
