"""A package the tests need beside the project's venv, installed from the index at test time:
a failure fails the test under CI (which installs everything) and skips it elsewhere."""

from __future__ import annotations

import os
import subprocess

import pytest


def install_or_skip(cmd: list[str], what: str, timeout: float = 600) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"pip install {what} failed: {proc.stderr[-1500:]}")
        pytest.skip(f"{what} could not be installed here")
