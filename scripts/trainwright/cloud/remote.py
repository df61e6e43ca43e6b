"""How the pack reaches a rented instance: its ssh address, kept in studio.md, and one way to run
a command there.

A record's `SSH` field holds `USER@HOST:PORT` (written once the provider reports the address);
`Remote folder` is the project's folder on the instance (relative to the login's home unless
absolute) and `Remote python` the interpreter `cloud setup` prepared there. Keys and other ssh
options come from TRAINWRIGHT_SSH_OPTS (shell words), as for `env check --ssh`; the host key of
a fresh instance is not known yet, so it is accepted on first use and kept in a known-hosts file
beside the grimoire's state, never in ~/.ssh.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from trainwright.cloud.records import Record
from trainwright.errors import TrainwrightError
from trainwright.hardware.remote_probe import SSH_OPTS_ENV, ssh_options

DEFAULT_FOLDER = "trainwright"
DEFAULT_PYTHON = "python3"
CONNECT_TIMEOUT_S = 10
_ADDRESS = re.compile(
    r"^(?P<user>[A-Za-z0-9_][A-Za-z0-9._-]*)@(?P<host>[A-Za-z0-9][A-Za-z0-9._-]*):(?P<port>\d+)$"
)


class RemoteError(TrainwrightError):
    """ssh could not reach the instance, or a command there failed."""


@dataclass
class Remote:
    user: str
    host: str
    port: int
    folder: str = DEFAULT_FOLDER
    python: str = DEFAULT_PYTHON
    known_hosts: Path | None = None
    extra: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def login(self) -> str:
        return f"{self.user}@{self.host}"

    def options(self) -> list[str]:
        """ssh options (no host, no command): port, batch mode, host-key policy, then the user's."""
        opts = [
            "-p",
            str(self.port),
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={CONNECT_TIMEOUT_S}",
        ]
        if self.known_hosts is not None:
            opts += [
                "-o",
                "StrictHostKeyChecking=accept-new",
                "-o",
                f"UserKnownHostsFile={self.known_hosts}",
            ]
        return opts + self.extra

    def ssh_argv(self, command: str) -> list[str]:
        return ["ssh", *self.options(), "--", self.login, command]

    def rsh(self) -> str:
        """The `-e` value for rsync: ssh with the same options."""
        return shlex.join(["ssh", *self.options()])

    def in_folder(self, command: str) -> str:
        """`command` run inside the project's folder on the instance (created if missing)."""
        folder = (
            shlex.quote(self.folder)
            if self.folder.startswith("/")
            else f'"$HOME"/{shlex.quote(self.folder)}'
        )
        return f"mkdir -p {folder} && cd {folder} && {command}"

    def run(
        self, command: str, timeout: float = 120, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                self.ssh_argv(command),
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=None if stdin is not None else subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise RemoteError(
                "ssh is not installed here (apt-get install openssh-client)"
            ) from None
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{self.address}: no answer within {timeout:g} s") from None
        if check and proc.returncode != 0:
            raise RemoteError(f"{self.address}: {_last_line(proc.stderr, proc.returncode)}")
        return proc

    def reachable(self) -> bool:
        try:
            return self.run("true", timeout=CONNECT_TIMEOUT_S + 5, check=False).returncode == 0
        except RemoteError:
            return False

    def wait(self, wait_s: float, sleep=time.sleep) -> bool:
        """True once a login succeeds; False when `wait_s` has passed without one."""
        end = time.monotonic() + wait_s
        step = 1.0
        while True:
            if self.reachable():
                return True
            if time.monotonic() >= end:
                return False
            sleep(min(step, max(0.0, end - time.monotonic())))
            step = min(step * 2, 10.0)


def _last_line(stderr: str, rc: int) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {rc}"


def parse_address(text: str) -> tuple[str, str, int]:
    m = _ADDRESS.fullmatch(text.strip())
    if not m or not 0 < int(m["port"]) < 65536:
        raise TrainwrightError(f"'{text}' is not an ssh address of the form USER@HOST:PORT")
    return m["user"], m["host"], int(m["port"])


def from_record(rec: Record, state_dir: Path, env: dict[str, str] | None = None) -> Remote:
    """The instance of a studio.md record, as ssh reaches it; refuses one without an address."""
    address = str(rec.fields.get("SSH") or "").strip()
    if not address:
        raise TrainwrightError(
            f"{rec.provider} instance {rec.id} has no ssh address in studio.md yet: "
            "`trainwright cloud up` records it once the provider reports one"
        )
    user, host, port = parse_address(address)
    env = dict(os.environ) if env is None else env
    return Remote(
        user,
        host,
        port,
        folder=str(rec.fields.get("Remote folder") or DEFAULT_FOLDER),
        python=str(rec.fields.get("Remote python") or DEFAULT_PYTHON),
        known_hosts=state_dir / "known_hosts",
        extra=ssh_options([], env),
    )


__all__ = ["Remote", "RemoteError", "from_record", "parse_address", "SSH_OPTS_ENV"]
