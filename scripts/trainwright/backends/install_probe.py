"""Is a backend's trainer installed? One rule for here and for a machine reached over ssh.

Each backend declares `INSTALL` as data (see the registry's docstring): the packages it imports,
the program it starts, a file trainwright ships for it, or the git clone people make of it. The
facts are collected here by `local_facts`, or on the remote machine by hardware/remote_probe.py's
script (same JSON shape, standard library only), and judged by `verdict` on either side, so the
two cannot disagree.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the installed trainwright package


def spec_of(module: Any) -> dict[str, Any]:
    return dict(getattr(module, "INSTALL", None) or {})


def request(spec: dict[str, Any]) -> dict[str, Any]:
    """What a probe must look at for this spec (JSON for the remote script)."""
    clone = spec.get("clone")
    return {
        "packages": list(spec.get("packages") or []),
        "executables": [e for e in (spec.get("executable"), (clone or {}).get("executable")) if e],
        "bundled": spec.get("bundled"),
        "clone": {k: clone[k] for k in ("env", "default", "marker", "modules")} if clone else None,
    }


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def venv_python(folder: Path) -> str | None:
    """The Python of a venv inside or beside a cloned trainer, as people set those up."""
    for cand in (
        folder / "venv",
        folder / ".venv",
        folder.parent / "venv",
        folder.parent / ".venv",
    ):
        exe = cand / "bin" / "python"
        if exe.exists():
            return str(exe)
    return None


def import_check(python: str, cwd: Path, modules: str) -> str | None:
    """None when `python -c 'import MODULES'` works in `cwd`, else its last error line."""
    try:
        out = subprocess.run(
            [python, "-c", f"import {modules}"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if out.returncode == 0:
        return None
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit {out.returncode}"


def clone_folder(clone: dict[str, Any], env: dict[str, str] | None = None) -> Path:
    """Absolute: the trainer runs in the project folder, not where the person typed the path."""
    env = os.environ if env is None else env
    raw = env.get(clone["env"]) or clone["default"]
    return Path(os.path.abspath(os.path.expanduser(raw)))


def local_facts(spec: dict[str, Any], deep: bool = True) -> dict[str, Any]:
    """The facts `verdict` judges, collected on this machine."""
    req = request(spec)
    here = str(Path(sys.executable).parent)
    facts: dict[str, Any] = {
        "python": sys.version.split()[0],
        "modules": {p: importlib.util.find_spec(p) is not None for p in req["packages"]},
        "versions": {p: _version(p) for p in req["packages"]},
        "which": {e: shutil.which(e, path=here) or shutil.which(e) for e in req["executables"]},
        "bundled": None,
        "clone": None,
    }
    if req["bundled"]:
        path = PACKAGE_ROOT / req["bundled"]
        facts["bundled"] = str(path) if path.is_file() else None
    clone = req["clone"]
    if clone:
        folder = clone_folder(clone)
        info: dict[str, Any] = {
            "folder": str(folder),
            "found": (folder / clone["marker"]).is_file(),
        }
        info["python"] = venv_python(folder) or sys.executable
        info["import_error"] = None
        if info["found"] and deep:
            info["import_error"] = import_check(info["python"], folder, clone["modules"])
        facts["clone"] = info
    return facts


def _missing(names: list[str], install: str) -> str:
    verb = "is" if len(names) == 1 else "are"
    return f"{' and '.join(names)} {verb} not installed: {install}"


def verdict(
    key: str, spec: dict[str, Any], facts: dict[str, Any], *, remote: bool = False
) -> tuple[bool, str, str, str | None]:
    """(installed, what was found or the fix, fingerprint, the python the trainer runs with)."""
    if facts.get("python") is None:
        return False, "no Python 3 on the remote machine: install python3 there", "", None
    install = str(spec.get("install") or f"install {key}")
    clone = spec.get("clone")
    which = facts.get("which") or {}
    if clone:
        info = facts.get("clone") or {}
        label, folder = clone.get("label", key), info.get("folder")
        if not info.get("found"):
            return (
                False,
                f"{label} not found at {folder}: clone it and set {clone['env']}",
                "",
                None,
            )
        exe = clone.get("executable")
        if exe and not which.get(exe):
            return False, f"{exe} is not on PATH ({clone.get('executable_install', '')})", "", None
        python = info.get("python")
        detail = f"{label} at {folder}"
        if info.get("import_error"):
            why = info["import_error"]
            return (
                False,
                f"{detail}, but `import {clone['modules']}` fails with {python}: {why}",
                "",
                python,
            )
        detail = f"{detail} (python {python})"
        return True, detail, f"{key}:{detail}", python
    packages = list(spec.get("packages") or [])
    mods = facts.get("modules") or {}
    missing = [p for p in packages if not mods.get(p)]
    exe = spec.get("executable")
    if not missing and exe and not which.get(exe):
        missing = [exe]
    if missing:
        return False, _missing(missing, install), "", None
    if spec.get("bundled") and not facts.get("bundled"):
        if remote:
            return False, f"trainwright is not installed there: {install}", "", None
        where = PACKAGE_ROOT / spec["bundled"]
        return (
            False,
            f"bundled file missing at {where}: {spec.get('bundled_fix', install)}",
            "",
            None,
        )
    first = packages[0] if packages else key
    version = (facts.get("versions") or {}).get(first)
    detail = f"{first} {version}" if version else first
    if exe:
        detail += f" ({which.get(exe)})"
    if spec.get("bundled"):
        detail += f", {Path(spec['bundled']).name}"
    return True, detail, f"{key}:{first}={version}", None
