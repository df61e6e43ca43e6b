"""Setup helpers for the test_room_*.py tables: files a person (or a hostile world) leaves around.

Every helper writes inside the project folder a case is given, except `fake_bin`, whose stand-in
tools (an nvidia-smi that lies, an sbatch that hangs) do not depend on the project and live in one
folder per kind under the temp folder, so a case's `env` can name them.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from harness import Result, cli

PY = os.environ.get("PYTHON", "python3")


def png(path: Path, size: tuple[int, int] = (64, 64), color: tuple[int, int, int] = (200, 30, 30)):
    """A real picture (PNG, or JPEG by suffix), its folder made."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, color)
    for x in range(0, size[0], 7):
        img.putpixel((x, x % size[1]), (x % 255, 90, 200))
    img.save(path)
    return path


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def dataset(project: Path, folder: str = "ds", count: int = 4) -> Path:
    """A small captioned dataset of painted pictures (the demo's generator)."""
    from trainwright.backends.tiny_model.data import write_example_dataset

    write_example_dataset(project / folder, count, size=48)
    return project / folder


def ok(proc) -> None:
    assert proc.returncode == 0, proc.stderr + proc.stdout


def training_project(
    project: Path, name: str = "t1", folder: str = "ds", count: int = 4, config: bool = False
) -> None:
    """`grimoire new` + intent (relative dataset folder), as the /train skill does it."""
    dataset(project, folder, count)
    ok(cli(project, "grimoire", "new", name))
    ok(
        cli(
            project,
            "grimoire",
            "set",
            "intent",
            "--project",
            name,
            "Type=style",
            "Base model=tiny",
            "Trigger word=exstyle",
            f"Dataset folder={folder}",
        )
    )
    if config:
        ok(cli(project, "config", "--project", name, "--backend", "tiny", "--preset", "quick"))


def project_dir(project: Path, name: str = "t1") -> Path:
    return project / "grimoire" / "training" / name


def _bin_root() -> Path:
    return Path(tempfile.gettempdir()) / f"trainwright-adversarial-bin-{os.getuid()}"


def fake_bin(kind: str, tools: dict[str, str]) -> str:
    """A folder holding shell scripts named after tools; returns a PATH with it first."""
    folder = _bin_root() / kind
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in tools.items():
        script = folder / name
        script.write_text("#!/bin/sh\n" + body + "\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC | stat.S_IXGRP | stat.S_IXOTH)
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


def fake_tool(kind: str, name: str, body: str) -> str:
    """One stand-in tool; returns its absolute path (for TRAINWRIGHT_NVIDIA_SMI and the like)."""
    fake_bin(kind, {name: body})
    return str(_bin_root() / kind / name)


def said(*words: str, where: str = "both"):
    """A check: the output names every word (case-insensitive)."""

    def check(r: Result) -> None:
        text = {"out": r.out, "err": r.err}.get(where, r.out + r.err).lower()
        missing = [w for w in words if w.lower() not in text]
        assert not missing, f"output does not mention {missing}:\n{r.out}\n{r.err}"

    return check


def exists(*rels: str):
    def check(r: Result) -> None:
        gone = [p for p in rels if not (r.project / p).exists()]
        assert not gone, f"missing after the command: {gone}"

    return check


def absent(*rels: str):
    def check(r: Result) -> None:
        there = [p for p in rels if (r.project / p).exists() or (r.project / p).is_symlink()]
        assert not there, f"should not exist: {there}"

    return check


def json_out(test=None):
    """A check: stdout is strict JSON (no NaN), and `test(data)` holds."""

    def check(r: Result) -> None:
        def no_const(c: str):
            raise AssertionError(f"not JSON: {c}")

        data = json.loads(r.out, parse_constant=no_const)
        if test is not None:
            test(data)

    return check


def both(*checks):
    def check(r: Result) -> None:
        for c in checks:
            c(r)

    return check


def args_abs(project: Path, *parts: str) -> str:
    return str(project / Path(*parts))


def seq(*items: str) -> Sequence[str]:
    return list(items)


def params(cases, slow: Sequence[str] = (), xfail: dict[str, str] | None = None) -> list:
    """The pytest parameters of a table: slow cases marked slow, known failures marked xfail
    (strict, with the reason and whose part fixes them)."""
    from harness import ids

    xfail = xfail or {}
    ids(cases)
    unknown = (set(slow) | set(xfail)) - {c.id for c in cases}
    assert not unknown, f"marks for no case: {unknown}"
    out = []
    for c in cases:
        marks = []
        if c.id in slow:
            marks.append(pytest.mark.slow)
        if c.id in xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=xfail[c.id]))
        out.append(pytest.param(c, marks=marks, id=c.id))
    return out
