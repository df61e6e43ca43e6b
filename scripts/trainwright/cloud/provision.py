"""The instance made ready to train: `cloud setup` (a venv with the pack and the backend) and
`cloud validate` (Gate 3 there, through the same probe as `env check --ssh`).

setup makes `<remote folder>/.venv` with `--system-site-packages`: the providers' images ship a
CUDA build of PyTorch in their system Python, and reusing it saves gigabytes of downloads and a
mismatched build. The pack goes in from a wheel built here (or found in --wheelhouse), forced
over any older copy in the image; the backend's packages come from the same wheel's extras
(`trainwright[torch]`, `trainwright[tune]`: the pins in the pack's own metadata) or, for a
backend installed by name, its package list. --no-index installs only from --wheelhouse.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from trainwright.cloud import records
from trainwright.cloud.bringup import state_dir
from trainwright.cloud.deploy import _dest, _rsync, target_for
from trainwright.errors import TrainwrightError
from trainwright.hardware import remote_probe
from trainwright.state.grimoire import Grimoire

VENV = ".venv"
WHEELHOUSE = ".wheelhouse"


def _source_tree() -> Path | None:
    import trainwright

    root = Path(trainwright.__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "trainwright"' in pyproject.read_text(encoding="utf-8"):
        return root
    return None


def pack_wheel(g: Grimoire, wheelhouse: Path | None) -> Path:
    """A trainwright wheel: the one in --wheelhouse, else one built here from the source tree."""
    if wheelhouse is not None:
        found = sorted(wheelhouse.glob("trainwright-*.whl"))
        if found:
            return found[-1]
    src = _source_tree()
    if src is None:
        raise TrainwrightError(
            "no trainwright wheel to install on the instance: give --wheelhouse DIR holding one "
            "(pip wheel --no-deps trainwright -w DIR)"
        )
    out = state_dir(g) / "wheelhouse"
    out.mkdir(exist_ok=True)
    for old in out.glob("trainwright-*.whl"):
        old.unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    found = sorted(out.glob("trainwright-*.whl"))
    if proc.returncode != 0 or not found:
        why = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise TrainwrightError(f"could not build the trainwright wheel here ({why})")
    return found[-1]


def install_steps(
    python: str, venv: str, wheel_name: str, requirements: list[str], no_index: bool
) -> list[str]:
    """Shell lines, run in the folder holding WHEELHOUSE: a venv on the image's Python (its
    PyTorch reused), the pack's wheel forced over any older copy, then the backend's packages.
    `python` and `venv` are shell words as they should appear (quoted by the caller)."""
    pip = [f"{venv}/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    pip += ["--find-links", WHEELHOUSE] + (["--no-index"] if no_index else [])
    head = " ".join(pip)
    wheel = shlex.quote(f"{WHEELHOUSE}/{wheel_name}")
    return [
        # the image's own pip when it has one: a fresh venv's bundled pip and setuptools would
        # shadow the image's newer ones
        f"{{ {python} -c 'import pip' 2>/dev/null && {python} -m venv --system-site-packages "
        f"--without-pip {venv} || {python} -m venv --system-site-packages {venv}; }}",
        f"{head} --force-reinstall --no-deps {wheel}",
        " ".join([head, wheel, *(shlex.quote(r) for r in requirements)]),
    ]


def backend_requirements(g: Grimoire, project: str, wheel_name: str) -> list[str]:
    """What the backend needs, as pip arguments (the pack's own extras carry the pins)."""
    from trainwright.hardware.env_check import backend_module
    from trainwright.hardware.env_gate import needs_for

    backend = needs_for(g, project).backend
    if not backend:
        return []
    install = getattr(backend_module(backend), "INSTALL", {}) or {}
    line = str(install.get("install") or "")
    m = re.search(r"trainwright\[([a-z0-9_,-]+)\]", line)
    if m:
        return [f"{WHEELHOUSE}/{wheel_name}[{m.group(1)}]"]
    if install.get("clone"):
        raise TrainwrightError(
            f"the {backend} backend is a git checkout, not a package: on the instance, "
            f"{line or 'clone it'} (setup installs packages only)"
        )
    return [str(p) for p in install.get("packages") or []]


def setup(
    g: Grimoire,
    project: str,
    base_python: str,
    wheelhouse: Path | None,
    no_index: bool,
    timeout: float = 3600,
) -> dict[str, Any]:
    t = target_for(g, project)
    base_python = remote_probe.check_python(base_python)
    if wheelhouse is not None and not wheelhouse.is_dir():
        raise TrainwrightError(f"--wheelhouse {wheelhouse} is not a folder")
    if no_index and wheelhouse is None:
        raise TrainwrightError("--no-index installs only from --wheelhouse DIR: give one")
    wheel = pack_wheel(g, wheelhouse)
    reqs = backend_requirements(g, project, wheel.name)
    t.remote.run(t.remote.in_folder(f"mkdir -p {WHEELHOUSE}"))
    sources = [str(p) for p in sorted(wheelhouse.glob("*.whl"))] if wheelhouse else []
    if str(wheel) not in sources:
        sources.append(str(wheel))
    _rsync([*sources, _dest(t.remote, f"{WHEELHOUSE}/")], t.remote, g.project_root, timeout)
    py = base_python if base_python.startswith("~") else shlex.quote(base_python)
    steps = [
        *install_steps(py, VENV, wheel.name, reqs, no_index),
        f"{VENV}/bin/python -m trainwright --version",
        "pwd",
    ]
    proc = t.remote.run(t.remote.in_folder(" && ".join(steps)), timeout=timeout, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit {proc.returncode}"
        raise TrainwrightError(f"setup on {t.remote.address} failed: {why}")
    out = proc.stdout.strip().splitlines()
    python = f"{out[-1]}/{VENV}/bin/python"
    records.update(g, t.record.title, {"Remote python": python})
    return {
        "project": project,
        "instance": t.remote.address,
        "python": python,
        "version": out[-2] if len(out) >= 2 else "",
        "wheel": wheel.name,
        "backend_requirements": reqs,
        "no_index": no_index,
    }


def validate(g: Grimoire, project: str) -> tuple[Any, dict[str, Any]]:
    """Gate 3 on the instance, recorded like `env check PROJECT --ssh`; (result, output)."""
    from trainwright.hardware import env_gate
    from trainwright.state import gates

    t = target_for(g, project)
    r = t.remote
    target = remote_probe.Target(
        r.login, r.options(), remote_probe.check_python(r.python), r.folder
    )
    result = env_gate.check(g, project, target)
    where = f"{t.record.provider} instance {t.record.id} ({r.address}, over ssh)"
    if result.updates and "" in result.updates:
        result.updates[""]["Checked on"] = where
    gates.record(g, project, 3, result)
    records.update(g, t.record.title, {"Validated": f"Gate 3 {result.decision}"})
    return result, {"instance": r.address, "checked_on": where}
