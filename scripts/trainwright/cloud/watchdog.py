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


def destroy_vast() -> bool | None:
    iid, key = os.environ.get("CONTAINER_ID"), os.environ.get("CONTAINER_API_KEY")
    if not iid or not key:
        return None
    base = (os.environ.get("VAST_URL") or "https://console.vast.ai").rstrip("/")
    code = _request(f"{base}/api/v0/instances/{iid}/", key, "DELETE", {})
    log(f"vast destroy instance {iid}: HTTP {code}")
    return 200 <= code < 300


def destroy_runpod() -> bool | None:
    pod, key = os.environ.get("RUNPOD_POD_ID"), os.environ.get("RUNPOD_API_KEY")
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


def main() -> int:
    try:
        deadline = float(os.environ["TW_DEADLINE"])
    except (KeyError, ValueError):
        print("watchdog: TW_DEADLINE (seconds since the epoch) is not set", file=sys.stderr)
        return 2
    provider = os.environ.get("TW_PROVIDER", "")
    log(f"armed: {provider or 'no provider'} deadline {deadline:.0f}")
    while (left := deadline - time.time()) > 0:
        time.sleep(min(left, 30.0))
    log(f"deadline reached: {fire(provider)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
