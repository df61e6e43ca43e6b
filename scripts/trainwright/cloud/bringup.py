"""What `cloud up` does once the provider has created the instance: wait for its ssh address,
record it, wait for a login, then put the watchdog on it.

When ssh never answers the instance is left running (the person decides, not this code), and
studio.md and the error both say that it costs money and how to stop it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainwright import clock, cloud
from trainwright.cloud import guard, records
from trainwright.cloud.remote import Remote, RemoteError, from_record, parse_address
from trainwright.errors import TrainwrightError
from trainwright.state.grimoire import Grimoire

SSH_USER = "root"  # both providers' images log in as root
STATE_DIR = ".cloud"  # beside the grimoire's state files: the instances' known host keys
DEFAULT_WAIT_SSH_S = 600.0
DEFAULT_IDLE_MINUTES = 30.0


def state_dir(g: Grimoire) -> Path:
    path = g.root / STATE_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def await_address(
    mod: Any, instance_id: str, wait_s: float, sleep: Callable[[float], None] = time.sleep
) -> str | None:
    """`USER@HOST:PORT` once the provider reports one (checked before it is kept); else None."""
    end = time.monotonic() + wait_s
    step = 1.0
    while True:
        inst = mod.status(instance_id)
        if inst is not None and inst.ssh_host and inst.ssh_port:
            address = f"{SSH_USER}@{inst.ssh_host}:{inst.ssh_port}"
            parse_address(address)  # a hostile or garbled address never reaches ssh
            return address
        if time.monotonic() >= end:
            return None
        sleep(min(step, max(0.0, end - time.monotonic())))
        step = min(step * 2, 10.0)


def _stranded(g: Grimoire, rec: records.Record, why: str) -> TrainwrightError:
    """Record and say: no ssh, the instance still runs and bills."""
    now = clock.iso_utc(clock.utc_now())
    project = rec.project
    records.update(
        g,
        rec.title,
        {
            "Watchdog": f"NOT installed: {why} (at {now}); the instance is still running and "
            f"costing money: `trainwright cloud down {project}` destroys it",
        },
    )
    return TrainwrightError(
        f"{rec.provider} instance {rec.id} is still RUNNING and costing "
        f"${rec.fields.get('Price per hour')}/h, but {why}; no watchdog guards it. Destroy it "
        f"with `trainwright cloud down {project}` (or look at it in the provider's console); "
        "recorded in studio.md"
    )


def bring_up(
    g: Grimoire,
    entry: str,
    wait_ssh_s: float,
    folder: str,
    idle_minutes: float,
) -> dict[str, Any]:
    """Wait for ssh, record it, install the watchdog; the fields written."""
    rec = next(r for r in records.read(g) if r.title == entry)
    mod = cloud.get(rec.provider)
    start = time.monotonic()
    try:
        address = await_address(mod, rec.id, wait_ssh_s)
    except TrainwrightError as exc:
        raise _stranded(g, rec, f"its ssh address could not be used ({exc.one_line()})") from None
    if address is None:
        raise _stranded(g, rec, f"the provider reported no ssh address within {wait_ssh_s:g} s")
    fields: dict[str, object] = {"SSH": address, "Remote folder": folder}
    records.update(g, entry, fields)
    rec = next(r for r in records.read(g) if r.title == entry)
    remote = from_record(rec, state_dir(g))
    left = max(1.0, wait_ssh_s - (time.monotonic() - start))
    if not remote.wait(left):
        raise _stranded(g, rec, f"ssh to {address} did not answer within {wait_ssh_s:g} s")
    deadline = records.parse_stamp(rec.fields.get("Deadline"))
    if deadline is None:
        raise _stranded(g, rec, "its Deadline in studio.md is not a time")
    values = guard.settings(rec.provider, deadline.timestamp(), rec.project, idle_minutes)
    try:
        pid = guard.install(remote, values)
    except RemoteError as exc:
        raise _stranded(g, rec, f"the watchdog could not be installed ({exc.one_line()})") from None
    idle = f", idle {idle_minutes:g} min after the run ends" if idle_minutes > 0 else ""
    fields["Watchdog"] = f"installed (pid {pid}, deadline {rec.fields.get('Deadline')}{idle})"
    records.update(g, entry, {"Watchdog": fields["Watchdog"]})
    return fields


def check_folder(folder: str) -> str:
    """The remote folder as given: a plain path (no shell words, no '..', not starting '-')."""
    import re

    if (
        not re.fullmatch(r"[A-Za-z0-9_./+-]+", folder or "")
        or folder.startswith("-")
        or ".." in folder.split("/")
    ):
        raise TrainwrightError(
            f"'{folder}' is not a folder for the instance: letters, digits, '.', '_', '-', '/' "
            "only, no '..'"
        )
    return folder


__all__ = ["bring_up", "await_address", "check_folder", "state_dir", "Remote"]
