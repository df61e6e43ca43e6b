"""A real OpenSSH server on a free 127.0.0.1 port, for the tests of `env check --ssh`.

Its own host key, authorized_keys and sshd_config live in a temporary folder; it needs root
(sshd runs the session as the logged-in user) and the openssh-server package
(tests/system/install-apt.sh installs it). Without them the tests skip, except under CI=true,
where they fail.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SBIN = "/usr/sbin:/sbin"


@dataclass
class SSHServer:
    port: int
    key: Path
    user: str

    @property
    def host(self) -> str:
        return f"{self.user}@127.0.0.1"

    def options(self) -> str:
        """What TRAINWRIGHT_SSH_OPTS holds to reach this server."""
        return (
            f"-p {self.port} -i {self.key} -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"sshd unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(f"sshd unavailable: {reason}")


def _binary(name: str) -> str | None:
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:{SBIN}")


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    sshd, keygen = _binary("sshd"), _binary("ssh-keygen")
    if os.geteuid() != 0:
        _skip_or_fail("not root (sshd must switch to the session user)")
    if not (sshd and keygen and _binary("ssh")):
        _skip_or_fail("sshd, ssh or ssh-keygen missing: run tests/system/install-apt.sh")
    assert sshd and keygen
    root = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key"):
        subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True
        )
    (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
    Path("/run/sshd").mkdir(exist_ok=True)  # the privilege-separation folder sshd requires
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
        "StrictModes no\nUsePAM no\nPermitRootLogin yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nAcceptEnv TRAINWRIGHT_NVIDIA_SMI\n"
        "Subsystem sftp internal-sftp\n"
    )
    log = root / "sshd.log"
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=log.open("w"))
    error = None
    for _ in range(100):
        if proc.poll() is not None:
            error = f"sshd exited {proc.returncode}: {log.read_text()[-2000:]}"
            break
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        error = f"sshd did not listen on {port}: {log.read_text()[-2000:]}"
    if error:
        proc.kill()
        proc.wait()
        pytest.fail(error, pytrace=False)
    try:
        yield SSHServer(port, root / "user_key", pwd.getpwuid(os.geteuid()).pw_name)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
