"""Putting the deadline on the instance: copy watchdog.py there and start it detached.

The watchdog outlives the ssh session (its own session via setsid, stdin/out closed), so it
fires when the laptop, the agent and this process are long gone. It is told the deadline, the
provider, where the run record is (for the idle trigger) and the provider's URL when this
machine points the SDK elsewhere (VAST_URL / RUNPOD_API_BASE_URL). The credential is never sent:
the watchdog reads the one the provider already placed on the instance.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from trainwright.cloud.remote import Remote, RemoteError

WATCHDOG = Path(__file__).with_name("watchdog.py")
REMOTE_FILE = ".trainwright-watchdog.py"
REMOTE_LOG = "trainwright-watchdog.log"
URL_ENV = {"vast": "VAST_URL", "runpod": "RUNPOD_API_BASE_URL"}
# Passed on when set here: a machine whose power-off command differs, or whose provider keeps
# the container's environment somewhere else (the tests use both).
PASS_ON = ("TW_POWEROFF", "TW_ENV_FILES", "TW_RETRIES")


def settings(
    provider: str,
    deadline_epoch: float,
    project: str,
    idle_minutes: float,
    env: dict[str, str] | None = None,
) -> dict[str, str]:
    env = dict(os.environ) if env is None else env
    run_dir = f"grimoire/training/{project}"
    out = {
        "TW_DEADLINE": f"{deadline_epoch:.0f}",
        "TW_PROVIDER": provider,
        "TW_LOG": REMOTE_LOG,
        "TW_RUN_STATE": f"{run_dir}/run.json",
        "TW_WATCH": run_dir,
        "TW_IDLE_MINUTES": f"{idle_minutes:g}",
    }
    url = URL_ENV.get(provider)
    if url and env.get(url):
        out[url] = env[url]
    out |= {k: env[k] for k in PASS_ON if env.get(k)}
    return out


def install(remote: Remote, values: dict[str, str]) -> int:
    """Copy the watchdog and start it detached; its pid once it says it is armed."""
    remote.run(remote.in_folder(f"cat > {REMOTE_FILE}"), stdin=WATCHDOG.read_text())
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in values.items())
    start = (
        f"{{ env {assigns} setsid nohup python3 {REMOTE_FILE} "
        "</dev/null >>trainwright-watchdog.out 2>&1 & echo $!; }"
    )
    proc = remote.run(remote.in_folder(start), timeout=60)
    m = re.search(r"(\d+)\s*$", proc.stdout)
    if not m:
        raise RemoteError(f"{remote.address}: the watchdog did not start ({proc.stdout!r})")
    pid = int(m.group(1))
    check = (
        f"for i in 1 2 3 4 5 6 7 8 9 10; do grep -q armed {REMOTE_LOG} 2>/dev/null && break; "
        f"sleep 0.3; done; (kill -0 {pid} 2>/dev/null || grep -qE 'reached|idle for' "
        f"{REMOTE_LOG}) && grep armed {REMOTE_LOG}"
    )
    alive = remote.run(remote.in_folder(check), timeout=60, check=False)
    if alive.returncode != 0 or "armed" not in alive.stdout:
        why = (alive.stderr.strip().splitlines() or ["it exited at once"])[-1]
        raise RemoteError(f"{remote.address}: the watchdog did not stay up ({why})")
    return pid
