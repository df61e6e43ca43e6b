"""The run on a rented instance (`cloud dry-run | launch | monitor`) given bad input: no instance,
an instance without an ssh address yet, ssh refused, a launch past the deadline, and an instance
whose tools lie (garbage for JSON, a GO with a NO-GO exit, a probe answer without its fields).

The lying tools are a stand-in `python` on the instance, reached over a real sshd on loopback
(tests/support/ssh_server.py); studio.md and progress.md must be untouched whenever a command fails.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
from harness import Case, cli, ids, run_case

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from support.ssh_server import SSHServer, free_port, ssh_server  # noqa: E402, F401

SERVER: SSHServer | None = None
ENTRY = "Instance: vast-7000101"


def _instance(project: Path, ssh: str | None, **more: str) -> None:
    assert cli(project, "grimoire", "new", "demo").returncode == 0
    fields = {
        "Project": "demo",
        "Provider": "vast",
        "ID": "7000101",
        "GPU": "RTX 4090",
        "Price per hour": "0.4",
        "Started": "2026-01-01T00:00:00Z",
        "Deadline": "2099-01-01T00:00:00Z",
        "Status": "RUNNING",
        **({"SSH": ssh} if ssh else {}),
        **more,
    }
    with (project / "grimoire" / "studio.md").open("a") as fh:
        fh.write(f"\n## Cloud instances\n\n### {ENTRY}\n")
        fh.writelines(f"- **{k}**: {v}\n" for k, v in fields.items())


def _no_instance(project: Path) -> None:
    assert cli(project, "grimoire", "new", "demo").returncode == 0


def _lying_python(project: Path, replies: dict[str, tuple[str, int]], **more: str) -> None:
    """The instance's `python`: a script that logs each call and answers as told."""
    assert SERVER is not None
    fake = project.parent / "fake-python"
    calls = project.parent / "calls.log"
    lines = ["#!/bin/sh", f'echo "$*" >> {calls}', 'case "$*" in']
    for word, (out, rc) in replies.items():
        lines.append(f"  *{word}*) printf '%s\\n' '{out}'; exit {rc};;")
    lines += ["esac", "exit 3"]
    fake.write_text("\n".join(lines) + "\n")
    fake.chmod(0o755)
    _instance(
        project,
        f"{SERVER.user}@127.0.0.1:{SERVER.port}",
        **{"Remote folder": str(project.parent / "instance"), "Remote python": str(fake)},
        **more,
    )


def _calls(r) -> str:
    path = r.project.parent / "calls.log"
    return path.read_text() if path.exists() else ""


def _said(*words: str):
    def check(r) -> None:
        for word in words:
            assert word in r.out + r.err, (word, r.out, r.err)

    return check


GO = {"project": "demo", "gate": 4, "decision": "GO", "reasons": ["ok"], "fixes": []}


def _garbage(project: Path) -> None:
    _lying_python(project, {"dry-run": ("all good, trust me", 0)})


def _go_with_no_go_exit(project: Path) -> None:
    _lying_python(project, {"dry-run": (json.dumps(GO), 1)})


NO_GO = {
    "project": "demo",
    "gate": 4,
    "decision": "NO-GO",
    "reasons": ["Out of memory at batch 8"],
    "fixes": ["set batch_size to 4, then: trainwright dry-run demo"],
    "bound_to": "sha256:" + "ab" * 32,
    "details": {"steps_completed": 0, "failure": {"kind": "oom"}},
}


def _no_go(project: Path) -> None:
    _lying_python(project, {"dry-run": (json.dumps(NO_GO), 1)})


def _no_go_recorded(r) -> None:
    progress = (r.project / "grimoire" / "training" / "demo" / "progress.md").read_text()
    assert "- **Decision**: NO-GO" in progress and "- **Failure kind**: oom" in progress
    assert "- **Ran on**: vast instance 7000101" in progress
    assert "trainwright cloud dry-run demo" in r.out  # the fix, said as the cloud command
    assert "(on vast instance 7000101)" in r.out


def _probe_missing_fields(project: Path) -> None:
    _lying_python(project, {"remote_monitor": (json.dumps({"size": 3}), 0)})


def _near_deadline(project: Path) -> None:
    from trainwright import clock

    soon = clock.iso_utc(clock.utc_now() + __import__("datetime").timedelta(minutes=5))
    _lying_python(
        project,
        {
            "monitor": (json.dumps({"status": "not started"}), 0),
            "launch": (json.dumps({"action": "started", "pid": 1}), 0),
        },
        Deadline=soon,
    )
    config = project / "grimoire" / "training" / "demo" / "config.md"
    config.write_text(
        config.read_text().replace(
            "- **Estimated time**:\n",
            "- **Estimated time**: about 3 h on RTX 4090 (900 steps; rough, within 2x)\n",
        )
    )


def _not_launched(r) -> None:
    assert "launch" not in _calls(r), _calls(r)
    assert "3.00 h" in r.out and "h left before its deadline" in r.out and "--max-hours" in r.out


NEEDS_SSH = {
    "cloud-dry-run-no-go-is-recorded",
    "cloud-dry-run-garbage-json",
    "cloud-dry-run-go-with-no-go-exit",
    "cloud-monitor-probe-missing-fields",
    "cloud-launch-past-deadline",
}

CASES = [
    Case(
        "cloud-monitor-no-instance",
        "cloud",
        "silent-nonsense",
        "clear-error",
        ["cloud", "monitor", "demo"],
        setup=_no_instance,
        check=_said("no running instance recorded for 'demo'", "cloud up demo"),
    ),
    Case(
        "cloud-launch-no-instance",
        "cloud",
        "silent-nonsense",
        "clear-error",
        ["cloud", "launch", "demo"],
        setup=_no_instance,
        check=_said("no running instance"),
    ),
    Case(
        "cloud-dry-run-no-ssh-yet",
        "cloud",
        "bad-file",
        "clear-error",
        ["cloud", "dry-run", "demo"],
        setup=lambda p: _instance(p, None),
        check=_said("vast instance 7000101 has no ssh address"),
    ),
    Case(
        "cloud-monitor-bad-ssh-address",
        "cloud",
        "bad-file",
        "clear-error",
        ["cloud", "monitor", "demo"],
        setup=lambda p: _instance(p, "root@host:22; rm -rf ~"),
        check=_said("USER@HOST:PORT"),
    ),
    Case(
        "cloud-monitor-ssh-refused",
        "cloud",
        "lying-tool",
        "clear-error",
        ["cloud", "monitor", "demo"],
        setup=lambda p: _instance(p, f"root@127.0.0.1:{free_port()}"),
        check=_said("vast instance 7000101", "ssh failed"),
        may_change=["grimoire/.cloud/*"],
    ),
    Case(
        "cloud-monitor-hostile-name",
        "cloud",
        "hostile-name",
        "clear-error",
        ["cloud", "monitor", "../../etc"],
        setup=_no_instance,
    ),
    Case(
        "cloud-dry-run-garbage-json",
        "cloud",
        "lying-tool",
        "clear-error",
        ["cloud", "dry-run", "demo"],
        setup=_garbage,
        check=_said("did not answer with its JSON", "all good, trust me"),
    ),
    Case(
        "cloud-dry-run-go-with-no-go-exit",
        "cloud",
        "lying-tool",
        "clear-error",
        ["cloud", "dry-run", "demo"],
        setup=_go_with_no_go_exit,
        check=_said("does not hold together", "Gate 4 was not recorded"),
    ),
    Case(
        "cloud-monitor-probe-missing-fields",
        "cloud",
        "lying-tool",
        "clear-error",
        ["cloud", "monitor", "demo"],
        setup=_probe_missing_fields,
        check=_said("not what the pack sends"),
    ),
    Case(
        "cloud-dry-run-no-go-is-recorded",
        "cloud",
        "resource-exhaustion",
        "refused",
        ["cloud", "dry-run", "demo"],
        setup=_no_go,
        check=_no_go_recorded,
        may_change=["grimoire/training/demo/progress.md", "grimoire/training/demo/status.md"],
    ),
    Case(
        "cloud-launch-past-deadline",
        "cloud",
        "resource-exhaustion",
        "refused",
        ["cloud", "launch", "demo"],
        setup=_near_deadline,
        check=_not_launched,
    ),
]


@pytest.mark.slow  # several need a real sshd; all run the CLI more than once
@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    global SERVER
    env = dict(case.env)
    if case.id in NEEDS_SSH:
        SERVER = request.getfixturevalue("ssh_server")
        env["TRAINWRIGHT_SSH_OPTS"] = SERVER.options()
    run_case(dataclasses.replace(case, env=env), tmp_path)
