#!/usr/bin/env python3
"""The deadline on a rented instance: at the deadline, destroy this instance through the
provider's own API from inside it; where no credential is here, power the machine off.

Standalone on purpose: it runs on the rented machine, where trainwright and the provider SDKs
may not be installed, so it needs only the Python standard library. Read by `cloud up` and
copied there as one file. Settings come from the environment:

  TW_DEADLINE          the deadline, seconds since the epoch (UTC)
  TW_PROVIDER          vast | runpod
  TW_LOG               where to append what it did (default: ./trainwright-watchdog.log)
  Vast.ai              CONTAINER_ID and CONTAINER_API_KEY (Vast places both in every instance;
                       the key acts on that instance only); VAST_URL to point elsewhere
  RunPod               RUNPOD_POD_ID and RUNPOD_API_KEY (RunPod places both in every pod, the
                       key scoped to that pod); RUNPOD_API_BASE_URL to point elsewhere
  TW_RETRIES           how many times a refused destroy is tried again (default 5)
  TW_POWEROFF          the command that powers the machine off (default: `poweroff`), used when
                       no credential is present or the provider refuses
  TW_ENV_FILES         where else to look for the credential, `:`-separated (default:
                       /proc/1/environ:/etc/rp_environment:/etc/environment): an ssh login does
                       not always inherit the container's environment, its first process does
  TW_RUN_STATE         the run record (`trainwright launch` writes run.json; `ended` once the
                       run is over) and TW_WATCH the folder whose files show activity
  TW_IDLE_MINUTES      destroy early once the run has ended and nothing under TW_WATCH changed
                       for this long (unset or 0: only the deadline)

The credential is read from the environment and never written to the log.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request


def log(message: str) -> None:
    path = os.environ.get("TW_LOG") or "trainwright-watchdog.log"
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)


def _request(url: str, key: str, method: str, body: dict | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):  # the provider unreachable: tried again, then off
        return 0


ENV_FILES = "/proc/1/environ:/etc/rp_environment:/etc/environment"


def _env_file(path: str) -> dict[str, str]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read().decode("utf-8", "replace")
    except OSError:
        return {}
    found = {}
    for line in raw.replace("\0", "\n").splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :]
        key, sep, value = line.partition("=")
        if sep and key.strip():
            found[key.strip()] = value.strip().strip("'\"")
    return found


def setting(name: str) -> str | None:
    """From this process's environment, else from where the provider put the container's."""
    if os.environ.get(name):
        return os.environ[name]
    for path in (os.environ.get("TW_ENV_FILES") or ENV_FILES).split(":"):
        value = _env_file(path).get(name) if path else None
        if value:
            return value
    return None


def destroy_vast() -> bool | None:
    iid, key = setting("CONTAINER_ID"), setting("CONTAINER_API_KEY")
    if not iid or not key:
        return None
    base = (os.environ.get("VAST_URL") or "https://console.vast.ai").rstrip("/")
    code = _request(f"{base}/api/v0/instances/{iid}/", key, "DELETE", {})
    log(f"vast destroy instance {iid}: HTTP {code}")
    return 200 <= code < 300


def destroy_runpod() -> bool | None:
    pod, key = setting("RUNPOD_POD_ID"), setting("RUNPOD_API_KEY")
    if not pod or not key:
        return None
    base = (os.environ.get("RUNPOD_API_BASE_URL") or "https://api.runpod.io").rstrip("/")
    query = f'mutation {{ podTerminate(input: {{ podId: "{pod}" }}) }}'
    code = _request(f"{base}/graphql", key, "POST", {"query": query})
    log(f"runpod terminate pod {pod}: HTTP {code}")
    return 200 <= code < 300


DESTROY = {"vast": destroy_vast, "runpod": destroy_runpod}


def power_off() -> None:
    command = shlex.split(os.environ.get("TW_POWEROFF") or "poweroff")
    log(
        "no provider credential worked: powering off. A stopped instance still bills its "
        "storage until it is destroyed from the provider's console or `trainwright cloud down`"
    )
    subprocess.run(command, check=False)


def fire(provider: str) -> str:
    destroy = DESTROY.get(provider)
    for attempt in range(max(1, int(os.environ.get("TW_RETRIES") or 5))):
        done = destroy() if destroy else None
        if done is None:
            break
        if done:
            return "destroyed"
        time.sleep(min(2**attempt, 30))
    power_off()
    return "powered off"


def _newest(folder: str) -> float:
    newest = 0.0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
            except OSError:
                continue
    return newest


def idle_for() -> float | None:
    """Seconds since anything changed, once the run record says the run ended; else None."""
    path = os.environ.get("TW_RUN_STATE")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not state.get("ended") or state.get("status") == "RUNNING":
        return None
    newest = max(os.path.getmtime(path), _newest(os.environ.get("TW_WATCH") or ""))
    return time.time() - newest


def main() -> int:
    try:
        deadline = float(os.environ["TW_DEADLINE"])
    except (KeyError, ValueError):
        print("watchdog: TW_DEADLINE (seconds since the epoch) is not set", file=sys.stderr)
        return 2
    provider = os.environ.get("TW_PROVIDER", "")
    idle_s = float(os.environ.get("TW_IDLE_MINUTES") or 0) * 60
    log(f"armed: {provider or 'no provider'} deadline {deadline:.0f} idle {idle_s:.0f} s")
    step = min(30.0, max(0.5, idle_s / 4)) if idle_s > 0 else 30.0
    while (left := deadline - time.time()) > 0:
        quiet = idle_for()
        if idle_s > 0 and quiet is not None and quiet >= idle_s:
            log(f"run ended and idle for {quiet:.0f} s: {fire(provider)}")
            return 0
        time.sleep(min(left, step))
    log(f"deadline reached: {fire(provider)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
