"""CLI conventions: --version, --help everywhere, --json, one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import click
import pytest

from helpers import REPO, assert_one_line_error, run_cli
from trainwright import __version__
from trainwright.cli import cli


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        out.append(prefix + (name,))
        if isinstance(cmd, click.Group):
            out += _all_commands(cmd, prefix + (name,))
    return out


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_python_dash_m_and_console_script_agree() -> None:
    import shutil
    import subprocess

    exe = shutil.which("trainwright", path=str(Path(os.sys.executable).parent))
    assert exe, "console script not installed"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout == run_cli("--version").stdout


@pytest.mark.parametrize("path", _all_commands(cli))
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    proc = run_cli(*path, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout and len(proc.stdout.splitlines()) >= 3


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["no-such-command"], "No such command"),
        (["doctor", "--bogus"], "--bogus"),
        (["grimoire", "show"], "Missing argument"),
        (["hash", "/nonexistent/path/xyz"], "no such file"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], fragment: str) -> None:
    assert_one_line_error(run_cli(*args), fragment)


DOCTOR_KEYS = {"trainwright", "python", "platform", "packages", "gpu", "slurm", "pack", "grimoire"}


def test_doctor_json_without_gpu(tmp_path: Path) -> None:
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "TRAINWRIGHT_NVIDIA_SMI": ""}
    proc = run_cli("doctor", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == DOCTOR_KEYS
    assert data["trainwright"] == __version__
    # the extras, and every package a backend imports (its INSTALL data)
    assert {"torch", "safetensors", "triton", "torchtune", "torchao", "trl", "peft"} <= set(
        data["packages"]
    )
    assert data["packages"]["trl"]["install"] in (None, "pip install 'trainwright[trl]'")
    assert data["gpu"]["found"] is False and "nvidia-smi" in data["gpu"]["error"]
    assert data["pack"]["found"] is True
    # The global flag form gives the same keys.
    again = json.loads(run_cli("--json", "doctor", env=env).stdout)
    assert set(again) == DOCTOR_KEYS


def test_doctor_with_recorded_nvidia_smi(tmp_path: Path) -> None:
    """A recorded `nvidia-smi --query-gpu` line (H200) stands in for the real binary."""
    fake = tmp_path / "nvidia-smi"
    csv = REPO / "tests" / "data" / "nvidia-smi-query-gpu.csv"
    fake.write_text(f"#!/bin/sh\ncase \"$*\" in *--query-gpu=*) cat '{csv}';; *) exit 9;; esac\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    proc = run_cli("doctor", "--json", env={"TRAINWRIGHT_NVIDIA_SMI": str(fake)})
    gpu = json.loads(proc.stdout)["gpu"]
    assert gpu["found"] is True and gpu["count"] == 1
    assert gpu["gpus"][0]["name"] == "NVIDIA H200"
    assert gpu["gpus"][0]["memory_total_mib"] == 143771
    assert gpu["gpus"][0]["compute_capability"] == "9.0"
    human = run_cli("doctor", env={"TRAINWRIGHT_NVIDIA_SMI": str(fake)}).stdout
    assert "NVIDIA H200, 140.4 GiB" in human


def test_doctor_reports_a_failing_nvidia_smi(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't communicate "
        'with the NVIDIA driver." >&2\nexit 9\n'
    )
    fake.chmod(0o755)
    gpu = json.loads(run_cli("doctor", "--json", env={"TRAINWRIGHT_NVIDIA_SMI": str(fake)}).stdout)[
        "gpu"
    ]
    assert gpu["found"] is False and "couldn't communicate" in gpu["error"]


def test_grimoire_env_var_is_honoured(tmp_path: Path) -> None:
    g = tmp_path / "elsewhere"
    proc = run_cli("grimoire", "new", "p1", env={"TRAINWRIGHT_GRIMOIRE": str(g)})
    assert proc.returncode == 0, proc.stderr
    assert (g / "training" / "p1" / "intent.md").is_file()
