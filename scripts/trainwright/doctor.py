"""`trainwright doctor`: what is installed, without importing anything heavy."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from trainwright import __version__, pack
from trainwright.errors import TrainwrightError
from trainwright.hardware.gpu import probe_gpus

OPTIONAL = {
    "torch": "pip install 'trainwright[torch]'",
    "safetensors": "pip install 'trainwright[torch]'",
    "triton": "pip install 'trainwright[gpu]'",
    "torchao": "pip install 'trainwright[tune]'",
}


def optional_packages() -> dict[str, str]:
    """The extras, and every package a backend imports (its INSTALL data), with the install."""
    from trainwright import backends

    out = dict(OPTIONAL)
    for mod in backends.all_backends():
        spec = getattr(mod, "INSTALL", None) or {}
        for package in spec.get("packages") or []:
            out.setdefault(package, backends.install_hint(mod))
    return out


def package_info(name: str) -> dict[str, Any]:
    present = importlib.util.find_spec(name) is not None
    version = None
    if present:
        try:
            version = md.version(name)
        except md.PackageNotFoundError:
            version = None
    return {
        "installed": present,
        "version": version,
        "install": None if present else optional_packages().get(name),
    }


def slurm_info() -> dict[str, Any]:
    """sbatch on PATH, its version, and whether it can reach a cluster configuration."""
    sbatch = shutil.which("sbatch")
    info: dict[str, Any] = {
        "found": sbatch is not None,
        "sbatch": sbatch,
        "version": None,
        "configured": False,
        "error": None,
    }
    if not sbatch:
        info["error"] = "sbatch not found"
        return info
    try:
        out = subprocess.run([sbatch, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        info["error"] = f"sbatch --version could not run: {exc}"
        return info
    lines = (out.stdout + out.stderr).splitlines()
    version = next((ln.strip() for ln in lines if ln.startswith("slurm")), None)
    info["version"] = version
    info["configured"] = version is not None
    if version is None:
        info["error"] = next((ln for ln in lines if "fatal" in ln), lines[-1] if lines else None)
    return info


def diagnose(grimoire: Path) -> dict[str, Any]:
    try:
        pack_root: str | None = str(pack.pack_root())
    except TrainwrightError:
        pack_root = None
    return {
        "trainwright": __version__,
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "platform": f"{platform.system()} {platform.machine()}",
        "packages": {name: package_info(name) for name in optional_packages()},
        "gpu": probe_gpus().as_dict(),
        "slurm": slurm_info(),
        "pack": {"root": pack_root, "found": pack_root is not None},
        "grimoire": {"path": str(grimoire), "exists": grimoire.is_dir()},
    }


def render(report: dict[str, Any]) -> str:
    def mark(ok: bool) -> str:
        return "ok " if ok else "-- "

    lines = [
        f"trainwright {report['trainwright']}  (python {report['python']['version']}, "
        f"{report['platform']})"
    ]
    for name, info in report["packages"].items():
        if info["installed"]:
            lines.append(f"  {mark(True)}{name} {info['version'] or ''}".rstrip())
        else:
            lines.append(f"  {mark(False)}{name} not installed ({info['install']})")
    gpu = report["gpu"]
    if gpu["found"]:
        for g in gpu["gpus"]:
            lines.append(
                f"  {mark(True)}GPU {g['index']}: {g['name']}, {g['memory_total_gib']} GiB, "
                f"driver {g['driver_version']}"
            )
    else:
        lines.append(f"  {mark(False)}no GPU found: {gpu['error']}")
    slurm = report["slurm"]
    if slurm["configured"]:
        lines.append(f"  {mark(True)}SLURM: {slurm['version']} ({slurm['sbatch']})")
    elif slurm["found"]:
        lines.append(
            f"  {mark(False)}SLURM: {slurm['sbatch']} found but no cluster is configured "
            f"({slurm['error']})"
        )
    else:
        lines.append(f"  {mark(False)}SLURM: sbatch not found (only needed for cluster runs)")
    lines.append(f"  {mark(report['pack']['found'])}pack: {report['pack']['root']}")
    g = report["grimoire"]
    lines.append(
        f"  {mark(g['exists'])}grimoire: {g['path']}"
        + ("" if g["exists"] else " (not created yet: run 'trainwright init')")
    )
    return "\n".join(lines)
