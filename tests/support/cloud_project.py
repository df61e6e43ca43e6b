"""A `trainwright init` project with one training project, a home folder holding the providers'
keys where their tools keep them, and a fake provider server: what the cloud tests share."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.cloud_fakes import RUNPOD_KEY, VAST_KEY, FakeCloud


@dataclass
class CloudProject:
    fake: FakeCloud
    root: Path
    home: Path
    ssh: Any = None  # support.ssh_server.SSHServer: the loopback sshd playing every instance

    @property
    def instance(self) -> Path:
        """The project's folder "on the instance" (this machine, over the loopback sshd)."""
        return self.root.parent / "instance"

    @property
    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "VAST_URL": self.fake.url,
            "RUNPOD_API_BASE_URL": self.fake.url,
            # a watchdog that fires on this machine must never power it off
            "TW_POWEROFF": f"touch {self.root.parent / 'powered-off'}",
            "TRAINWRIGHT_REMOTE_FOLDER": str(self.instance),
        }
        if self.ssh is not None:
            env["TRAINWRIGHT_SSH_OPTS"] = self.ssh.options()
        return env

    def stop_watchdogs(self) -> None:
        """End the watchdogs `cloud up` started on this machine: the pids studio.md names, and
        any process still working in this project's instance folder (a test may cut studio.md)."""
        pids = set()
        if self.studio.exists():
            pids |= {int(p) for p in re.findall(r"installed \(pid (\d+)", self.studio.read_text())}
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if cwd == str(self.instance) or cwd.startswith(f"{self.instance}/"):
                pids.add(int(proc.name))
        for pid in pids - {os.getpid()}:
            try:
                os.kill(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass

    @property
    def studio(self) -> Path:
        return self.root / "grimoire" / "studio.md"

    def run(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "trainwright", *args],
            cwd=self.root,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )


def write_keys(home: Path, vast: str | None = VAST_KEY, runpod: str | None = RUNPOD_KEY) -> None:
    """Each key where its provider's own tool writes it (vastai set api-key / runpod config)."""
    if vast is not None:
        folder = home / ".config" / "vastai"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "vast_api_key").write_text(vast + "\n")
    if runpod is not None:
        (home / ".runpod").mkdir(parents=True, exist_ok=True)
        (home / ".runpod" / "config.toml").write_text(f'[default]\napi_key = "{runpod}"\n')


def make_project(base: Path, fake: FakeCloud, name: str = "demo", ssh: Any = None) -> CloudProject:
    root, home = base / "project", base / "home"
    root.mkdir()
    home.mkdir()
    write_keys(home)
    cp = CloudProject(fake, root, home, ssh)
    if ssh is not None:
        fake.ssh = ("127.0.0.1", ssh.port)
    for args in (("init", "."), ("grimoire", "new", name)):
        proc = cp.run(*args)
        assert proc.returncode == 0, proc.stderr
    return cp


def set_estimate(cp: CloudProject, text: str, name: str = "demo") -> None:
    """config.md's Estimated time, as `trainwright config` writes it."""
    path = cp.root / "grimoire" / "training" / name / "config.md"
    body = path.read_text().replace("- **Estimated time**:\n", f"- **Estimated time**: {text}\n")
    assert text in body
    path.write_text(body)
