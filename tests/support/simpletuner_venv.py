"""SimpleTuner 3.1.6 in a virtual environment of its own, for the tests that run its parser.

It cannot live in the project's .venv: SimpleTuner 3.1.6 (the last release for Python 3.11)
needs torchao>=0.14.1, torchtune 0.6.1 needs torchao 0.10.0. The venv lives outside the
checkout, in ~/.cache/trainwright-test/simpletuner-venv (XDG_CACHE_HOME is honoured;
TRAINWRIGHT_SIMPLETUNER_VENV names another folder): it is ~1.6 GB and takes minutes to build, and
CI runs in a fresh clone each time, so a per-machine cache is what makes it "built once". A stamp
in it holds the hash of the pins (PACKAGES below and simpletuner-constraints.txt) and the
Python version; when they change it is rebuilt. It is built into a temporary folder and renamed
into place, under a file lock, so an interrupted or concurrent build never leaves half a venv.

Only what SimpleTuner's argument parser imports is installed (found by trying: its field registry
imports every model module, hence diffusers, transformers, torchvision, torchaudio, librosa,
spacy ...), not its web service's or trainers' extras. torch is pinned to 2.13.0, the CPU build
on this machine's disk: any other version would download gigabytes. simpletuner, torchvision
and torchaudio go in with --no-deps (their metadata would pull other torch builds). PyPI's
torchvision/torchaudio wheels are CUDA builds whose C++ extensions cannot load against the CPU
torch: torchaudio's are removed (it then imports as a build without them), and the check script
declares torchvision's two op schemas (see simpletuner_check.py). Neither is used by the parser.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONSTRAINTS = HERE / "simpletuner-constraints.txt"
CHECK_SCRIPT = HERE / "simpletuner_check.py"
PACKAGES = [
    "torch==2.13.0",
    "torchao==0.14.1",
    "diffusers==0.36.0",
    "transformers==5.24.0",
    "accelerate==1.16.0",
    "peft==0.21.2",
    "torch-optimi==0.3.3",
    "fastapi==0.165.0",
    "pillow==13.0.0",
    "ftfy==6.3.1",
    "einops==0.8.2",
    "sentencepiece==0.2.3",
    "loguru==0.7.3",
    "beautifulsoup4==4.15.0",
    "librosa==0.11.0",
    "spacy==3.8.18",
    "py3langid==0.4.0",
    "pypinyin==0.55.0",
    "hangul-romanize==0.1.0",
    "num2words==0.5.14",
    "prodigy-plus-schedule-free==2.0.1",  # without these two SimpleTuner lists no prodigy
    "bitsandbytes==0.50.2",  # and no bnb-* optimizer, and refuses the name at parse time
]
NO_DEPS = ["simpletuner==3.1.6", "torchvision==0.28.0", "torchaudio==2.11.1"]
BUILD_TIMEOUT_S = 1500
STAMP = ".trainwright-pins"


class BuildError(RuntimeError):
    """The venv could not be built (most often: no network to reach the package index)."""


def venv_dir() -> Path:
    override = os.environ.get("TRAINWRIGHT_SIMPLETUNER_VENV")
    if override:
        return Path(override).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "trainwright-test" / "simpletuner-venv"


def pins_digest() -> str:
    """The pins and the base interpreter (not this checkout's .venv path: CI clones elsewhere)."""
    text = "\n".join(PACKAGES + NO_DEPS) + CONSTRAINTS.read_text() + sys.base_prefix + sys.version
    return hashlib.sha256(text.encode()).hexdigest()


def is_current(venv: Path) -> bool:
    stamp = venv / STAMP
    return stamp.is_file() and stamp.read_text().strip() == pins_digest()


def _run(cmd: list[str], deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise BuildError(f"building SimpleTuner's venv took more than {BUILD_TIMEOUT_S} s")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=left)
    except subprocess.TimeoutExpired:
        raise BuildError(
            f"building SimpleTuner's venv took more than {BUILD_TIMEOUT_S} s: {' '.join(cmd[:6])}"
        ) from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if "ERROR" in ln]
        raise BuildError(
            f"`{' '.join(cmd[:5])} ...` failed (exit {proc.returncode}); no network to the "
            f"package index? {' | '.join(lines[-3:]) or proc.stderr.strip()[-300:]}"
        )


def _build(target: Path) -> None:
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    _run([sys.executable, "-m", "venv", str(target)], deadline)
    pip = [str(target / "bin/python"), "-m", "pip", "install", "--quiet", "-c", str(CONSTRAINTS)]
    _run(pip + PACKAGES, deadline)
    _run(pip + ["--no-deps"] + NO_DEPS, deadline)
    for lib in (target / "lib").glob("python3*/site-packages/torchaudio/lib/*.so"):
        lib.unlink()
    (target / STAMP).write_text(pins_digest() + "\n")


def ensure(venv: Path | None = None) -> Path:
    """The venv's python, building the venv first when it is missing or its pins changed."""
    venv = venv or venv_dir()
    python = venv / "bin/python"
    if is_current(venv):
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_current(venv):
            return python
        tmp = venv.parent / f".{venv.name}.building"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _build(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if venv.exists():
            if not (venv / STAMP).is_file():
                shutil.rmtree(tmp)
                raise BuildError(f"{venv} exists and is not a venv these tests built; move it")
            shutil.rmtree(venv)  # ours, with stale pins
        # venv scripts hold absolute paths: the rename keeps them valid only if the python
        # symlinks are used, which is how the tests call it (bin/python -m ...).
        tmp.rename(venv)
    return python


if __name__ == "__main__":
    start = time.monotonic()
    print(ensure(), f"{time.monotonic() - start:.1f} s")
