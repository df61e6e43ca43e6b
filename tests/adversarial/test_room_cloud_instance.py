"""The instance side of a rented GPU given bad input: ssh that never comes up, a record without
an ssh address or with a hostile one, a hostile remote folder, a push interrupted half way, a
pull after the instance is gone, a studio.md edited by hand with an unknown instance.

A fresh fake provider answers each case; the cases that reach an instance use the loopback
sshd (tests/support/ssh_server.py) as that instance.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from harness import Case, cli, ids, run_case

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from support.cloud_fakes import FakeCloud  # noqa: E402
from support.cloud_project import write_keys  # noqa: E402
from support.ssh_server import free_port, ssh_server  # noqa: E402, F401 - a fixture

pytest.importorskip("vastai")
pytest.importorskip("runpod")
pytestmark = pytest.mark.slow

FAKE: FakeCloud | None = None
ENV: dict[str, str] = {}
SSHD_PORT = 0
UP = ["cloud", "up", "demo", "--provider", "vast", "--offer", "31000222", "--max-hours", "1"]
MARKER = "proxy-command-ran"


def _fake() -> FakeCloud:
    assert FAKE is not None
    return FAKE


def _record(project: Path, **fields: str) -> None:
    """An instance entry in studio.md, as a person (or an older pack) wrote it."""
    assert cli(project, "grimoire", "new", "demo", **ENV).returncode == 0
    base = {
        "Project": "demo",
        "Provider": "vast",
        "ID": "4242",
        "Price per hour": "0.4",
        "Status": "RUNNING",
    }
    lines = [f"- **{k}**: {v}" for k, v in {**base, **fields}.items()]
    with (project / "grimoire" / "studio.md").open("a") as fh:
        fh.write("\n## Cloud instances\n\n### Instance: vast-4242\n" + "\n".join(lines) + "\n")


def _no_ssh(project: Path) -> None:
    _record(project)


def _hostile_ssh(project: Path) -> None:
    _record(project, SSH=f"-oProxyCommand=touch {project / MARKER}@x:22")


def _hostile_folder(project: Path) -> None:
    _record(project, SSH=f"root@127.0.0.1:{free_port()}", **{"Remote folder": "../../etc"})


def _gone(project: Path) -> None:
    _record(project, SSH=f"root@127.0.0.1:{free_port()}", Status="TERMINATED")


def _unknown_other_project(project: Path) -> None:
    _record(project, Project="old", SSH="root@203.0.113.9:22")


def _ssh_never_up(project: Path) -> None:
    assert cli(project, "grimoire", "new", "demo", **ENV).returncode == 0
    _fake().ssh = ("127.0.0.1", free_port())  # nothing listens there


def _half_pushed(project: Path) -> None:
    """A dataset file of which an interrupted push left the first half on the instance."""
    instance = project.parent / "instance"
    _record(project, SSH=f"root@127.0.0.1:{SSHD_PORT}", **{"Remote folder": str(instance)})
    data = project / "data" / "demo"
    data.mkdir(parents=True)
    body = os.urandom(2_000_000)
    (data / "big.bin").write_bytes(body)
    intent = project / "grimoire" / "training" / "demo" / "intent.md"
    intent.write_text(
        intent.read_text().replace("- **Dataset folder**:\n", "- **Dataset folder**: data/demo\n")
    )
    (instance / "data" / "demo").mkdir(parents=True)
    half = instance / "data" / "demo" / "big.bin"
    half.write_bytes(body[: len(body) // 2])
    source = (data / "big.bin").stat()
    os.utime(half, ns=(source.st_atime_ns, source.st_mtime_ns))  # rsync --partial gives it that


def _said(*words: str):
    def check(r) -> None:
        for w in words:
            assert w in r.err + r.out, f"{w!r} not said: {r.err}"

    return check


def _nothing_ran(r) -> None:
    _said("not an ssh address")(r)
    assert not (r.project / MARKER).exists(), "the hostile ProxyCommand ran"


def _lost_recorded(r) -> None:
    _said("is gone", "never pulled")(r)
    assert "- **Lost**: " in (r.project / "grimoire" / "studio.md").read_text()


def _still_running(r) -> None:
    _said("still RUNNING and costing", "cloud down demo")(r)
    assert len(_fake().live("vast")) == 1, "destroyed without the person deciding"
    assert "NOT installed" in (r.project / "grimoire" / "studio.md").read_text()


def _completed(r) -> None:
    here = r.project / "data" / "demo" / "big.bin"
    there = r.project.parent / "instance" / "data" / "demo" / "big.bin"
    digest = hashlib.sha256(here.read_bytes()).hexdigest()
    assert hashlib.sha256(there.read_bytes()).hexdigest() == digest, "the resumed file differs"


CASES = [
    Case(
        "up-ssh-never-comes-up",
        "cloud",
        "hang",
        "clear-error",
        [*UP, "--yes", "--wait-ssh", "2"],
        setup=_ssh_never_up,
        may_change=["grimoire/studio.md", "grimoire/.cloud/*"],
        check=_still_running,
        timeout=90,
    ),
    Case(
        "push-record-without-ssh",
        "cloud",
        "corrupt-state",
        "clear-error",
        ["cloud", "push", "demo"],
        setup=_no_ssh,
        check=_said("no ssh address"),
    ),
    Case(
        "push-hostile-ssh-field",
        "cloud",
        "hostile-name",
        "clear-error",
        ["cloud", "push", "demo"],
        setup=_hostile_ssh,
        check=_nothing_ran,
    ),
    Case(
        "setup-hostile-ssh-field",
        "cloud",
        "hostile-name",
        "clear-error",
        ["cloud", "setup", "demo"],
        setup=_hostile_ssh,
        check=_nothing_ran,
    ),
    Case(
        "push-hostile-remote-folder",
        "cloud",
        "path-escape",
        "clear-error",
        ["cloud", "push", "demo"],
        setup=_hostile_folder,
        check=_said("not a folder for the instance"),
    ),
    Case(
        "pull-after-instance-gone",
        "cloud",
        "data-loss",
        "clear-error",
        ["cloud", "pull", "demo"],
        setup=_gone,
        may_change=["grimoire/studio.md"],
        check=_lost_recorded,
    ),
    Case(
        "push-unknown-hand-written-instance-kept",
        "cloud",
        "corrupt-state",
        "clear-error",
        ["cloud", "push", "demo"],
        setup=_unknown_other_project,
        check=_said("no running instance recorded for 'demo'"),
    ),
    Case(
        "push-interrupted-half-way-resumes",
        "cloud",
        "interrupted-write",
        "correct",
        ["cloud", "push", "demo"],
        setup=_half_pushed,
        may_change=["grimoire/studio.md", "grimoire/.cloud/*"],
        check=_completed,
        timeout=90,
    ),
]
NEEDS_SSH = {"push-interrupted-half-way-resumes"}


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    global FAKE, ENV, SSHD_PORT
    sshd = request.getfixturevalue("ssh_server") if case.id in NEEDS_SSH else None
    home = tmp_path / "home"
    home.mkdir()
    write_keys(home)
    with FakeCloud() as fake:
        FAKE = fake
        ENV = {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "VAST_URL": fake.url,
            "RUNPOD_API_BASE_URL": fake.url,
            "TW_POWEROFF": "true",
            "TRAINWRIGHT_REMOTE_FOLDER": str(tmp_path / "instance"),
        }
        if sshd is not None:
            SSHD_PORT = sshd.port
            ENV["TRAINWRIGHT_SSH_OPTS"] = sshd.options()
        os.environ.pop("VAST_API_KEY", None)
        try:
            run_case(dataclasses.replace(case, env={**ENV, **case.env}), tmp_path)
        finally:
            studio = tmp_path / "project" / "grimoire" / "studio.md"
            text = studio.read_text() if studio.exists() else ""
            for pid in re.findall(r"installed \(pid (\d+)", text):
                try:
                    os.kill(int(pid), signal.SIGTERM)
                except ProcessLookupError:
                    pass
