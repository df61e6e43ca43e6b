"""Rented GPUs (`trainwright cloud`) given bad input: a vanished offer, a missing or wrong key,
an account without credit, a rate limit, a second `up`, a studio.md edited by hand, hostile names.

Each case runs against a fresh fake provider server (tests/support/cloud_fakes.py) through the
real SDKs; the keys live where the providers' tools keep them, in a home folder beside the
project. Nothing may be rented when the command fails, and studio.md changes only on success.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from harness import Case, ids, run_case

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from support.cloud_fakes import RUNPOD_KEY, VAST_KEY, FakeCloud  # noqa: E402
from support.cloud_project import write_keys  # noqa: E402
from support.ssh_server import free_port, ssh_server  # noqa: E402, F401 - a fixture

pytest.importorskip("vastai")
pytest.importorskip("runpod")
pytestmark = pytest.mark.slow

FAKE: FakeCloud | None = None
ENV: dict[str, str] = {}
RP = "community:NVIDIA GeForce RTX 4090"
UP = ["cloud", "up", "demo", "--provider", "vast", "--offer", "31000222", "--max-hours", "1"]


def _tw(project: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "trainwright", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **ENV},
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def _demo(project: Path) -> None:
    _tw(project, "grimoire", "new", "demo")


def _fake() -> FakeCloud:
    assert FAKE is not None
    return FAKE


def _no_keys(project: Path) -> None:
    _demo(project)
    home = project.parent / "home"
    (home / ".config" / "vastai" / "vast_api_key").unlink()
    (home / ".runpod" / "config.toml").unlink()


def _wrong_keys(project: Path) -> None:
    _demo(project)
    write_keys(project.parent / "home", vast="wrong-vast-key", runpod="wrong-runpod-key")


def _gone(offer: str):
    def setup(project: Path) -> None:
        _demo(project)
        _fake().gone_offers.add(offer)

    return setup


def _broke(project: Path) -> None:
    _demo(project)
    _fake().balance = 0


def _throttled(project: Path) -> None:
    _demo(project)
    _fake().rate_limit = 1000


def _already_up(project: Path) -> None:
    """A first up that rented and recorded its instance; no sshd here, so it stopped at the ssh
    wait (exit 2, the instance recorded as RUNNING and costing money)."""
    _demo(project)
    _fake().ssh = ("127.0.0.1", free_port())  # nothing listens there
    proc = subprocess.run(
        [sys.executable, "-m", "trainwright", *UP, "--yes", "--wait-ssh", "1"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **ENV},
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2 and "still RUNNING" in proc.stderr, proc.stderr


def _hand_written(project: Path) -> None:
    _demo(project)
    studio = project / "grimoire" / "studio.md"
    with studio.open("a") as fh:
        fh.write(
            "\n## Cloud instances\n\n### Instance: vast-4242\n- **Project**: demo\n"
            "- **Provider**: vast\n- **ID**: 4242\n- **GPU**: RTX 4090\n"
            "- **Price per hour**: 0.4\n- **Status**: RUNNING\n"
        )


def _bad_status(project: Path) -> None:
    _hand_written(project)
    studio = project / "grimoire" / "studio.md"
    studio.write_text(studio.read_text().replace("**Status**: RUNNING", "**Status**: MAYBE"))


def _nothing_rented(r) -> None:
    assert _fake().instances == {}, "an instance was created by a failed command"
    assert VAST_KEY not in r.out + r.err and RUNPOD_KEY not in r.out + r.err


def _said(*words: str):
    def check(r) -> None:
        _nothing_rented(r)
        for word in words:
            assert word in r.out + r.err, (word, r.out, r.err)

    return check


def _lists_unknown(r) -> None:
    assert "vast-4242" in r.out and "does not know" in r.out, r.out
    assert "4242" in (r.project / "grimoire" / "studio.md").read_text()


def _still_one(r) -> None:
    assert len(_fake().instances) == 1
    assert "already has a running instance" in r.err and "vast instance" in r.err


def _recorded_apart(r) -> None:
    text = (r.project / "grimoire" / "studio.md").read_text()
    before, _, ours = text.partition("## Cloud instances")
    assert "### Instance: vast-" in ours and "### Instance:" not in before
    assert VAST_KEY not in text


CASES = [
    Case(
        "offers-no-key",
        "cloud",
        "bad-file",
        "clear-error",
        ["cloud", "offers", "--gpu", "RTX 4090"],
        setup=_no_keys,
        check=_said("no provider API key found", "vast_api_key", "config.toml"),
    ),
    Case(
        "offers-no-vast-key",
        "cloud",
        "bad-file",
        "clear-error",
        ["cloud", "offers", "--gpu", "RTX 4090", "--provider", "vast"],
        setup=_no_keys,
        check=_said("no Vast.ai API key found"),
    ),
    Case(
        "offers-wrong-vast-key",
        "cloud",
        "lying-tool",
        "clear-error",
        ["cloud", "offers", "--gpu", "RTX 4090", "--provider", "vast"],
        setup=_wrong_keys,
        check=lambda r: (_said("refused the API key")(r), _assert_absent("wrong-vast-key", r)),
    ),
    Case(
        "up-wrong-runpod-key",
        "cloud",
        "lying-tool",
        "clear-error",
        ["cloud", "up", "demo", "--provider", "runpod", "--offer", RP, "--max-hours", "1", "--yes"],
        setup=_wrong_keys,
        check=lambda r: (_said("RunPod refused")(r), _assert_absent("wrong-runpod-key", r)),
    ),
    Case(
        "up-vast-offer-vanished",
        "cloud",
        "lying-tool",
        "clear-error",
        [*UP, "--yes"],
        setup=_gone("31000222"),
        check=_said("no longer available", "cloud offers"),
    ),
    Case(
        "up-runpod-offer-vanished",
        "cloud",
        "lying-tool",
        "clear-error",
        ["cloud", "up", "demo", "--provider", "runpod", "--offer", RP, "--max-hours", "1", "--yes"],
        setup=_gone(RP),
        check=_said("no longer available"),
    ),
    Case(
        "up-unknown-offer",
        "cloud",
        "silent-nonsense",
        "clear-error",
        ["cloud", "up", "demo", "--provider", "vast", "--offer", "99", "--max-hours", "1", "--yes"],
        setup=_demo,
        check=_said("no longer available"),
    ),
    Case(
        "up-no-credit",
        "cloud",
        "resource-exhaustion",
        "clear-error",
        [*UP, "--yes"],
        setup=_broke,
        check=_said("cannot pay"),
    ),
    Case(
        "offers-rate-limited",
        "cloud",
        "resource-exhaustion",
        "clear-error",
        ["cloud", "offers", "--gpu", "RTX 4090", "--provider", "runpod"],
        setup=_throttled,
        check=_said("rate limiting"),
    ),
    Case(
        "up-second-for-a-project",
        "cloud",
        "data-loss",
        "clear-error",
        [*UP, "--yes"],
        setup=_already_up,
        check=_still_one,
    ),
    Case(
        "up-not-confirmed-without-a-terminal",
        "cloud",
        "data-loss",
        "clear-error",
        UP,
        setup=_demo,
        check=_said("spends money"),
    ),
    Case(
        "up-answer-no",
        "cloud",
        "data-loss",
        "clear-error",
        UP,
        setup=_demo,
        stdin="n\n",
        check=_said("spends money"),
    ),
    Case(
        "up-records-in-its-own-part",
        "cloud",
        "data-loss",
        "correct",
        [*UP, "--yes"],
        setup=_demo,
        may_change=["grimoire/studio.md"],
        check=_recorded_apart,
    ),
    Case(
        "up-hostile-project",
        "cloud",
        "hostile-name",
        "clear-error",
        ["cloud", "up", "../../etc", "--provider", "vast", "--offer", "31000222", "--yes"],
        setup=_demo,
        check=_nothing_rented,
    ),
    Case(
        "up-unknown-project",
        "cloud",
        "hostile-name",
        "clear-error",
        ["cloud", "up", "nope", "--provider", "vast", "--offer", "31000222", "--yes"],
        setup=_demo,
        check=_said("no training project"),
    ),
    Case(
        "up-shell-in-offer",
        "cloud",
        "hostile-name",
        "clear-error",
        ["cloud", "up", "demo", "--provider", "vast", "--offer", "1; rm -rf ~", "--yes"],
        setup=_demo,
        check=_said("is a number"),
    ),
    Case(
        "up-no-deadline",
        "cloud",
        "silent-nonsense",
        "clear-error",
        ["cloud", "up", "demo", "--provider", "vast", "--offer", "31000222", "--yes"],
        setup=_demo,
        check=_said("--max-hours"),
    ),
    Case(
        "up-negative-hours",
        "cloud",
        "silent-nonsense",
        "clear-error",
        [*UP[:-1], "-3", "--yes"],
        setup=_demo,
        check=_nothing_rented,
    ),
    Case(
        "up-unknown-provider",
        "cloud",
        "silent-nonsense",
        "clear-error",
        ["cloud", "up", "demo", "--provider", "lambda", "--offer", "1", "--yes"],
        setup=_demo,
    ),
    Case(
        "offers-empty-gpu",
        "cloud",
        "silent-nonsense",
        "clear-error",
        ["cloud", "offers", "--gpu", " "],
        setup=_demo,
    ),
    Case(
        "offers-nan-price",
        "cloud",
        "silent-nonsense",
        "clear-error",
        ["cloud", "offers", "--gpu", "RTX 4090", "--max-price", "nan"],
        setup=_demo,
    ),
    Case(
        "ls-hand-written-unknown-instance",
        "cloud",
        "corrupt-state",
        "correct",
        ["cloud", "ls"],
        setup=_hand_written,
        check=_lists_unknown,
    ),
    Case(
        "up-refused-by-hand-written-running",
        "cloud",
        "corrupt-state",
        "clear-error",
        [*UP, "--yes"],
        setup=_hand_written,
        check=_said("vast instance 4242"),
    ),
    Case(
        "ls-damaged-status",
        "cloud",
        "corrupt-state",
        "clear-error",
        ["cloud", "ls"],
        setup=_bad_status,
    ),
    Case(
        "down-nothing-running",
        "cloud",
        "silent-nonsense",
        "clear-error",
        ["cloud", "down", "demo"],
        setup=_demo,
        check=_said("no running instance"),
    ),
]


def _assert_absent(secret: str, r) -> None:
    assert secret not in r.out + r.err, "the key was printed"


NEEDS_SSH = {"up-records-in-its-own-part"}  # an up that succeeds waits for ssh: the loopback sshd


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    global FAKE, ENV
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
            "TW_POWEROFF": "true",  # a watchdog on this machine never powers it off
            "TRAINWRIGHT_REMOTE_FOLDER": str(tmp_path / "instance"),
        }
        if sshd is not None:
            fake.ssh = ("127.0.0.1", sshd.port)
            ENV["TRAINWRIGHT_SSH_OPTS"] = sshd.options()
        os.environ.pop("VAST_API_KEY", None)
        try:
            run_case(dataclasses.replace(case, env={**ENV, **case.env}), tmp_path)
        finally:
            studio = tmp_path / "project" / "grimoire" / "studio.md"
            text = studio.read_text() if studio.exists() else ""
            for pid in re.findall(r"installed \(pid (\d+)", text):
                try:  # the watchdog `up` started on this machine
                    os.kill(int(pid), signal.SIGTERM)
                except ProcessLookupError:
                    pass
