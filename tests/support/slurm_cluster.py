"""A real single-node SLURM cluster for the test suite (pytest plugin).

The session fixture `slurm_cluster` starts munged (if needed), slurmctld and slurmd from a
slurm.conf written into a fresh temporary directory, on ports that are free at start time, so
stale daemons from a killed earlier session (or a concurrent one) do not collide.
Needs root and the Debian packages from tests/system/install-apt.sh. Without them the tests
skip, except under CI=true, where they fail: CI runs as root and must run them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PARTITION = "debug"
DIR_PREFIX = "trainwright-slurm-"
STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
PID_FILE_GRACE_S = 3.0
POLL_S = 0.25
# Kept visible to `scontrol show job` after the end: without slurmdbd there is no sacct.
MIN_JOB_AGE_S = 300
SBIN = ("/usr/sbin", "/sbin")
CLIENT_COMMANDS = ("sbatch", "squeue", "scontrol", "sinfo", "scancel")
DAEMON_COMMANDS = ("slurmctld", "slurmd", "munged")
# States after which a job will not change again (submitit's rule: all but the live ones).
LIVE_STATES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "REQUEUED",
        "COMPLETING",
        "PREEMPTED",
        "READY",
        "UNKNOWN",
        "CONFIGURING",
        "RESIZING",
        "SUSPENDED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "STAGE_OUT",
        "SIGNALING",
        "STOPPED",
        "RESV_DEL_HOLD",
    }
)
# Harmless on every start (no PMIx library, empty state dir); dropped from failure messages.
_LOG_NOISE = re.compile(r"pmix|MPI: Cannot create context|state file|NOTE: Trying backup")
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_:/]*=")


class SlurmClusterError(RuntimeError):
    """The cluster could not be started or a job did not finish in time."""


def _which(cmd: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    return shutil.which(cmd, path=path)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"  ({path}: {exc.strerror})"
    text = [line for line in text if not _LOG_NOISE.search(line)]
    return "\n".join(f"  {line}" for line in text[-lines:]) or f"  ({path} is empty)"


def free_port() -> int:
    """A TCP port free right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def parse_scontrol_record(line: str) -> dict[str, str]:
    """Parse one `scontrol show ... -o` line; values may contain spaces (Command=, Reason=)."""
    fields: dict[str, str] = {}
    key = None
    for token in line.split():
        if _KEY.match(token):
            key, _, value = token.partition("=")
            fields[key] = value
        elif key is not None:
            fields[key] += " " + token
    return fields


def _memory_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise SlurmClusterError("no MemTotal in /proc/meminfo")


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (PID 1 here may not reap orphans)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def render_slurm_conf(
    root: Path, host: str, cpus: int, memory_mb: int, ports: tuple[int, int]
) -> str:
    """slurm.conf for one node `host` that is also the controller (Slurm 22.05, no cgroups)."""
    ctld_port, slurmd_port = ports
    return f"""\
ClusterName=trainwright-test
SlurmctldHost={host}
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# cgroup plugins fail in containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU={max(1, memory_mb // cpus)}
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/log/jobcomp.txt
MinJobAge={MIN_JOB_AGE_S}
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
# Schedule batch jobs at submit time, not up to 3 s later (the default batch_sched_delay).
SchedulerParameters=batch_sched_delay=0
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class SlurmCluster:
    """A running single-node cluster; `env` points the slurm commands at it."""

    root: Path
    conf: Path
    env: dict[str, str]
    host: str
    ctld_port: int
    slurmd_port: int
    workdir: Path
    partition: str = PARTITION
    startup_s: float = 0.0

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    def run(self, args: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run a slurm command against this cluster; text output captured, no check by default."""
        options: dict[str, Any] = {
            "env": self.env,
            "capture_output": True,
            "text": True,
            "check": False,
            "timeout": 30,
        }
        options.update(kw)
        return subprocess.run(list(args), **options)

    def logs(self, lines: int = 30) -> str:
        """The tails of the daemon logs, for failure messages."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log"):
            parts.append(f"--- tail of {self.log_dir / name}:\n{_tail(self.log_dir / name, lines)}")
        return "\n".join(parts)

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job -o` as a dict ({} when the controller does not know the job)."""
        res = self.run(["scontrol", "show", "job", "-o", job_id])
        if res.returncode != 0 or not res.stdout.strip():
            return {}
        return parse_scontrol_record(res.stdout.strip().splitlines()[0])

    def wait_job(self, job_id: str, timeout: float = 60.0, poll: float = 0.5) -> dict[str, str]:
        """Poll until the job is in a terminal state; return its scontrol record."""
        deadline = time.monotonic() + timeout
        record: dict[str, str] = {}
        while time.monotonic() < deadline:
            record = self.job(job_id)
            state = record.get("JobState", "")
            if state and state not in LIVE_STATES:
                return record
            time.sleep(poll)
        raise SlurmClusterError(
            f"job {job_id} not finished after {timeout:.0f} s "
            f"(last JobState={record.get('JobState', '?')}, Reason={record.get('Reason', '?')})\n"
            f"{self.logs()}"
        )

    def node_state(self) -> str:
        res = self.run(["sinfo", "-h", "-N", "-n", self.host, "-o", "%t"], timeout=10)
        return res.stdout.strip() if res.returncode == 0 else ""


def _missing_requirements() -> str | None:
    if os.geteuid() != 0:
        return "not root: the SLURM cluster fixture must start munged, slurmctld and slurmd as root"
    missing = [cmd for cmd in (*CLIENT_COMMANDS, *DAEMON_COMMANDS, "munge") if not _which(cmd)]
    if missing:
        return (
            f"SLURM/munge commands missing ({', '.join(missing)}); "
            "install them with `bash tests/system/install-apt.sh` as root"
        )
    if not Path("/etc/munge/munge.key").exists():
        return "/etc/munge/munge.key missing (the munge package creates it)"
    return None


def _munge_works() -> bool:
    munge = _which("munge")
    if munge is None:
        return False
    try:
        res = subprocess.run([munge, "-n"], capture_output=True, timeout=5, check=False)
    except subprocess.TimeoutExpired:
        return False
    return res.returncode == 0


def ensure_munged() -> None:
    """Start munged as the munge user unless a working one is already there."""
    if _munge_works():
        return
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    munged = _which("munged")
    res = subprocess.run(
        ["su", "-s", "/bin/sh", "munge", "-c", str(munged)],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if _munge_works():
            return
        time.sleep(POLL_S)
    raise SlurmClusterError(
        f"munged did not start (rc={res.returncode}): {res.stderr.strip() or res.stdout.strip()}\n"
        f"--- tail of /var/log/munge/munged.log:\n{_tail(Path('/var/log/munge/munged.log'))}"
    )


def _start_daemon(cluster: SlurmCluster, name: str) -> None:
    res = subprocess.run(
        [_which(name) or name, "-f", str(cluster.conf)],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if res.returncode != 0:
        raise SlurmClusterError(
            f"{name} -f {cluster.conf} exited {res.returncode}: "
            f"{(res.stderr or res.stdout).strip()}\n{cluster.logs()}"
        )


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _daemon_alive(cluster: SlurmCluster, name: str, since_start_s: float) -> bool:
    pid = _read_pid(cluster.root / f"{name}.pid")
    if pid is None:
        # Written a moment after the fork; a daemon that dies early (port taken) never writes it.
        return since_start_s < PID_FILE_GRACE_S
    return _pid_alive(pid)


def _runs_conf(pid: int, conf: Path) -> bool:
    """True when `pid` is a daemon started with `-f conf` (guards against recycled pids)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(conf).encode() in argv


def _stop_daemons(root: Path, names: Sequence[str] = ("slurmd", "slurmctld")) -> list[str]:
    """SIGTERM slurmd then slurmctld (pids from root/NAME.pid), wait, SIGKILL the stragglers;
    then kill the job steps (slurmstepd and what they started) these daemons left behind."""
    problems = []
    for name in names:
        pid = _read_pid(root / f"{name}.pid")
        if pid is None or not _pid_alive(pid) or not _runs_conf(pid, root / "slurm.conf"):
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(pid):
            problems.append(f"{name} (pid {pid}) ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    kill_job_steps(root / "slurm.conf")
    return problems


def _parents() -> dict[int, int]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            found[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return found


def _step_of(pid: int, conf: Path) -> bool:
    """A slurmstepd started by a slurmd of `conf` (slurmd passes its SLURM_CONF on)."""
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != "slurmstepd":
            return False
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"SLURM_CONF={conf}".encode() in environ


def kill_job_steps(conf: Path) -> int:
    """SIGKILL the slurmstepd processes of this cluster and their descendants; how many."""
    parents = _parents()
    doomed = {pid for pid in parents if _step_of(pid, conf)}
    grew = True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in doomed} - doomed
        doomed |= more
        grew = bool(more)
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return len(doomed)


def end_jobs(cluster: SlurmCluster, timeout: float = STOP_TIMEOUT_S) -> list[str]:
    """scancel every job this cluster still runs and wait for them to leave the queue, so no
    job step outlives the fixture (orphaned slurmstepd were seen after test runs)."""
    try:
        ids = cluster.run(["squeue", "-h", "-o", "%i"], timeout=10).stdout.split()
        if ids:
            cluster.run(["scancel", *ids], timeout=15)
        deadline = time.monotonic() + timeout
        while ids and time.monotonic() < deadline:
            time.sleep(POLL_S)
            out = cluster.run(["squeue", "-h", "-t", "all", "-o", "%i %T"], timeout=10).stdout
            ids = [ln for ln in out.splitlines() if ln.rpartition(" ")[2] in LIVE_STATES]
    except subprocess.TimeoutExpired:
        return ["the controller did not answer squeue/scancel at teardown"]
    return [f"jobs still live {timeout:.0f} s after scancel: {ids}"] if ids else []


def stop_cluster(cluster: SlurmCluster) -> list[str]:
    """Stop the daemons; returns what went wrong (empty when both exited on SIGTERM)."""
    return _stop_daemons(cluster.root)


def reap_stale_clusters(parent: Path) -> list[Path]:
    """Stop clusters left by pytest sessions that were killed before their teardown.

    Only directories whose owner process is gone are touched, so a concurrent session's
    cluster keeps running.
    """
    reaped = []
    for root in sorted(parent.glob(f"{DIR_PREFIX}*")):
        owner = _read_pid(root / "owner.pid")
        if owner is None or _pid_alive(owner):
            continue
        _stop_daemons(root)
        shutil.rmtree(root, ignore_errors=True)
        reaped.append(root)
    return reaped


def start_cluster(root: Path, conf_edit: Callable[[str], str] | None = None) -> SlurmCluster:
    """Write slurm.conf under `root`, start the daemons, wait until the node is idle.
    `conf_edit` may change the rendered slurm.conf first (support/slurm_memcap.py does)."""
    for sub in ("state", "spool", "log", "work"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "owner.pid").write_text(f"{os.getpid()}\n")
    host = socket.gethostname().split(".")[0]
    ctld_port = free_port()
    slurmd_port = free_port()
    while slurmd_port == ctld_port:
        slurmd_port = free_port()
    conf = root / "slurm.conf"
    memory_mb = max(256, int(_memory_mb() * 0.9))
    text = render_slurm_conf(root, host, _cpus(), memory_mb, (ctld_port, slurmd_port))
    conf.write_text(conf_edit(text) if conf_edit else text)
    # A suite run inside a SLURM job must not leak that job's settings into these commands.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    env["SLURM_CONF"] = str(conf)
    env["PATH"] = os.pathsep.join([env.get("PATH", ""), *SBIN])
    cluster = SlurmCluster(
        root=root,
        conf=conf,
        env=env,
        host=host,
        ctld_port=ctld_port,
        slurmd_port=slurmd_port,
        workdir=root / "work",
    )
    try:
        ensure_munged()
        _start_daemon(cluster, "slurmctld")
        _start_daemon(cluster, "slurmd")
        started = time.monotonic()
        state = ""
        while time.monotonic() < started + STARTUP_TIMEOUT_S:
            state = cluster.node_state()
            if state == "idle":
                return cluster
            elapsed = time.monotonic() - started
            dead = [n for n in ("slurmctld", "slurmd") if not _daemon_alive(cluster, n, elapsed)]
            if dead:
                raise SlurmClusterError(
                    f"{' and '.join(dead)} exited during startup (conf {conf})\n{cluster.logs()}"
                )
            time.sleep(POLL_S)
        raise SlurmClusterError(
            f"node {host} not idle after {STARTUP_TIMEOUT_S:.0f} s "
            f"(sinfo state: {state or 'no answer'}; conf {conf})\n{cluster.logs()}"
        )
    except BaseException:
        stop_cluster(cluster)
        raise


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"SLURM cluster unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(f"SLURM cluster unavailable: {reason}")


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running single-node SLURM cluster (partition "debug") for the whole session."""
    reason = _missing_requirements()
    if reason:
        _skip_or_fail(reason)
    reap_stale_clusters(Path(tempfile.gettempdir()))
    root = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
    started = time.monotonic()
    try:
        cluster = start_cluster(root)
    except SlurmClusterError as exc:
        error = str(exc)
    else:
        error = ""
    if error:  # failing outside the except clause keeps the message free of a chained traceback
        pytest.fail(f"could not start the SLURM test cluster in {root}:\n{error}", pytrace=False)
    cluster.startup_s = time.monotonic() - started
    try:
        yield cluster
    finally:
        problems = end_jobs(cluster)
        problems += stop_cluster(cluster)
        if problems:
            # Keep the directory (logs) when a daemon had to be killed.
            print(f"\nSLURM test cluster teardown: {'; '.join(problems)}; kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
