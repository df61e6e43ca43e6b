"""A real two-node SLURM cluster on this one machine, for the multi-node tests (pytest plugin).

One slurmctld runs in the machine's own namespaces; each of the two slurmd runs in a network
namespace of its own (a veth on a bridge this fixture creates: its own address) and in its own
UTS and mount namespaces (its own host name; an /etc/hosts bound over the real one inside that
mount namespace only, so torchrun and gloo resolve the node names). `ip netns exec` is not
used: it remounts /sys, after which slurmd finds no cgroup filesystem; `nsenter --net` plus
`unshare --uts --mount` leaves /sys alone. slurm.conf has `%n` in the slurmd spool, pid and log
paths and a NodeAddr per node, so the controller needs no resolver for the node names.

Reuses the single-node fixture's helpers (tests/support/slurm_cluster.py). Without root, the
commands, or the right to create namespaces, the tests skip with the reason (fail under CI=true).
Teardown ends the jobs and their steps, stops the daemons, and removes the namespaces, the veths
and the bridge it made; a session killed before that is cleaned up by the next one.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.slurm_cluster import (
    POLL_S,
    SBIN,
    STARTUP_TIMEOUT_S,
    SlurmCluster,
    SlurmClusterError,
    _cpus,
    _memory_mb,
    _missing_requirements,
    _pid_alive,
    _read_pid,
    _skip_or_fail,
    _start_daemon,
    _stop_daemons,
    _which,
    end_jobs,
    ensure_munged,
    free_port,
    render_slurm_conf,
)

DIR_PREFIX = "trainwright-twonode-"
NODE_NAMES = ("twnode1", "twnode2")
NET_FILE = "network.txt"  # what this fixture created, one `kind name` a line, for the cleanup


@dataclass
class TwoNodeCluster(SlurmCluster):
    """A running two-node cluster; `host` is the controller, `nodes` the slurmd node names."""

    nodes: tuple[str, ...] = NODE_NAMES
    addresses: tuple[str, ...] = ()
    netns: tuple[str, ...] = ()

    def logs(self, lines: int = 30) -> str:
        from support.slurm_cluster import _tail

        names = ["slurmctld.log", *(f"slurmd-{n}.log" for n in self.nodes)]
        return "\n".join(
            f"--- tail of {self.log_dir / name}:\n{_tail(self.log_dir / name, lines)}"
            for name in names
        )

    def node_states(self) -> dict[str, str]:
        res = self.run(["sinfo", "-h", "-N", "-o", "%N %t"], timeout=10)
        pairs = (line.split() for line in res.stdout.splitlines() if line.strip())
        return {p[0]: p[1] for p in pairs if len(p) == 2}

    def node_state(self) -> str:
        states = set(self.node_states().values())
        return states.pop() if len(states) == 1 else ",".join(sorted(states))


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_which("ip") or "ip", *args], capture_output=True, text=True, timeout=15, check=False
    )


def _ip_ok(*args: str) -> None:
    res = _ip(*args)
    if res.returncode != 0:
        raise SlurmClusterError(f"ip {' '.join(args)}: {res.stderr.strip() or res.returncode}")


def _free_subnet() -> str:
    """A 10.x.y.0/24 prefix ('10.x.y') no interface here uses."""
    used = _ip("-4", "-o", "addr").stdout
    rng = random.Random()
    for _ in range(50):
        prefix = f"10.{rng.randrange(200, 250)}.{rng.randrange(1, 250)}"
        if f" {prefix}." not in used:
            return prefix
    raise SlurmClusterError("no free 10.x.y.0/24 subnet for the test bridge")


def _record(root: Path, kind: str, name: str) -> None:
    with open(root / NET_FILE, "a") as fh:
        fh.write(f"{kind} {name}\n")


def remove_network(root: Path) -> None:
    """Delete the namespaces, veths and bridge listed in root/network.txt (made by this fixture)."""
    try:
        lines = (root / NET_FILE).read_text().splitlines()
    except OSError:
        return
    for line in reversed(lines):
        kind, _, name = line.partition(" ")
        if kind == "netns":
            _ip("netns", "del", name)
        elif kind in ("link", "bridge"):
            _ip("link", "del", name)


def make_network(root: Path, tag: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """A bridge (the controller's address) and one namespace per node on it."""
    prefix = _free_subnet()
    bridge = f"twb{tag}"
    _ip_ok("link", "add", bridge, "type", "bridge")
    _record(root, "bridge", bridge)
    _ip_ok("addr", "add", f"{prefix}.1/24", "dev", bridge)
    _ip_ok("link", "set", bridge, "up")
    spaces, addrs = [], []
    for i, _node in enumerate(NODE_NAMES, start=1):
        ns, outer, inner = f"trainwright-{tag}-{i}", f"twh{tag}{i}", f"twn{tag}{i}"
        _ip_ok("netns", "add", ns)
        _record(root, "netns", ns)
        _ip_ok("link", "add", outer, "type", "veth", "peer", "name", inner)
        _record(root, "link", outer)
        _ip_ok("link", "set", inner, "netns", ns)
        _ip_ok("link", "set", outer, "master", bridge)
        _ip_ok("link", "set", outer, "up")
        address = f"{prefix}.{i + 1}"
        _ip_ok("-n", ns, "addr", "add", f"{address}/24", "dev", inner)
        _ip_ok("-n", ns, "link", "set", inner, "up")
        _ip_ok("-n", ns, "link", "set", "lo", "up")
        spaces.append(ns)
        addrs.append(address)
    return f"{prefix}.1", tuple(spaces), tuple(addrs)


def render_two_node_conf(
    root: Path, host: str, controller_addr: str, addrs: tuple[str, ...], ports: tuple[int, int]
) -> str:
    """The single-node slurm.conf, turned into one controller and two nodes at `addrs`."""
    cpus = _cpus()
    memory_mb = max(256, int(_memory_mb() * 0.9) // len(NODE_NAMES))
    conf = render_slurm_conf(root, host, cpus, memory_mb, ports)
    nodes = "\n".join(
        f"NodeName={name} NodeAddr={addr} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN"
        for name, addr in zip(NODE_NAMES, addrs, strict=True)
    )
    swaps = {
        r"^SlurmctldHost=.*$": f"SlurmctldHost={host}({controller_addr})",
        r"^SlurmdSpoolDir=.*$": f"SlurmdSpoolDir={root}/spool/%n",
        r"^SlurmdPidFile=.*$": f"SlurmdPidFile={root}/slurmd-%n.pid",
        r"^SlurmdLogFile=.*$": f"SlurmdLogFile={root}/log/slurmd-%n.log",
        r"^NodeName=.*$": nodes,
        r"^PartitionName=(\S+) Nodes=\S+": rf"PartitionName=\1 Nodes={','.join(NODE_NAMES)}",
    }
    for pattern, new in swaps.items():
        conf, count = re.subn(pattern, new, conf, flags=re.M)
        if count != 1:
            raise SlurmClusterError(f"slurm.conf template changed: {pattern} matched {count}")
    return conf


def _start_slurmd(cluster: TwoNodeCluster, index: int, hosts: Path) -> None:
    name, ns = cluster.nodes[index], cluster.netns[index]
    slurmd = _which("slurmd") or "slurmd"
    inner = f"hostname {name} && mount --bind {hosts} /etc/hosts && "
    inner += f"exec {slurmd} -f {cluster.conf} -N {name}"
    cmd = [
        _which("nsenter") or "nsenter",
        f"--net=/run/netns/{ns}",
        _which("unshare") or "unshare",
        "--uts",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        inner,
    ]
    res = subprocess.run(
        cmd, env=cluster.env, capture_output=True, text=True, timeout=30, check=False
    )
    if res.returncode != 0:
        raise SlurmClusterError(
            f"slurmd {name} (netns {ns}) exited {res.returncode}: "
            f"{(res.stderr or res.stdout).strip()}\n{cluster.logs()}"
        )


def stop_two_nodes(root: Path) -> list[str]:
    problems = _stop_daemons(root, [f"slurmd-{n}" for n in NODE_NAMES])
    problems += _stop_daemons(root, ["slurmctld"])
    remove_network(root)
    return problems


def reap_stale(parent: Path) -> list[Path]:
    """Clean up after sessions killed before their teardown (their owner process is gone)."""
    reaped = []
    for root in sorted(parent.glob(f"{DIR_PREFIX}*")):
        owner = _read_pid(root / "owner.pid")
        if owner is None or _pid_alive(owner):
            continue
        stop_two_nodes(root)
        shutil.rmtree(root, ignore_errors=True)
        reaped.append(root)
    return reaped


def start_two_nodes(root: Path) -> TwoNodeCluster:
    """Make the network, write slurm.conf, start slurmctld and both slurmd, wait until idle."""
    for sub in ("state", "log", "work", *(f"spool/{n}" for n in NODE_NAMES)):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "owner.pid").write_text(f"{os.getpid()}\n")
    host = __import__("socket").gethostname().split(".")[0]
    ports = (free_port(), free_port())
    while ports[1] == ports[0]:
        ports = (ports[0], free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    conf = root / "slurm.conf"
    env["SLURM_CONF"] = str(conf)
    env["PATH"] = os.pathsep.join([env.get("PATH", ""), *SBIN])
    tag = f"{random.randrange(16**5):05x}"
    cluster = TwoNodeCluster(
        root=root,
        conf=conf,
        env=env,
        host=host,
        ctld_port=ports[0],
        slurmd_port=ports[1],
        workdir=root / "work",
    )
    try:
        controller, cluster.netns, cluster.addresses = make_network(root, tag)
        conf.write_text(render_two_node_conf(root, host, controller, cluster.addresses, ports))
        hosts = root / "hosts"
        try:
            original = Path("/etc/hosts").read_text()
        except OSError:
            original = "127.0.0.1 localhost\n"
        lines = [f"{a} {n}" for a, n in zip(cluster.addresses, NODE_NAMES, strict=True)]
        hosts.write_text(original.rstrip("\n") + "\n" + "\n".join(lines) + "\n")
        ensure_munged()
        _start_daemon(cluster, "slurmctld")
        for index in range(len(NODE_NAMES)):
            _start_slurmd(cluster, index, hosts)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = cluster.node_states()
            if len(states) == len(NODE_NAMES) and set(states.values()) == {"idle"}:
                return cluster
            time.sleep(POLL_S)
        raise SlurmClusterError(
            f"nodes not idle after {STARTUP_TIMEOUT_S:.0f} s (sinfo: {states or 'no answer'}; "
            f"conf {conf})\n{cluster.logs()}"
        )
    except BaseException:
        stop_two_nodes(root)
        raise


def namespaces_refused() -> str | None:
    """Why this machine cannot make network namespaces for the fixture (None: it can)."""
    for cmd in ("ip", "nsenter", "unshare"):
        if not _which(cmd):
            return f"`{cmd}` is missing (iproute2 / util-linux)"
    probe = f"trainwright-probe-{os.getpid()}"
    res = _ip("netns", "add", probe)
    if res.returncode != 0:
        return f"cannot create a network namespace: {res.stderr.strip() or res.returncode}"
    _ip("netns", "del", probe)
    res = subprocess.run(
        [_which("unshare") or "unshare", "--uts", "--mount", "true"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if res.returncode != 0:
        return f"cannot create UTS/mount namespaces: {res.stderr.strip() or res.returncode}"
    return None


@pytest.fixture(scope="session")
def slurm_two_nodes() -> Iterator[TwoNodeCluster]:
    """A running two-node SLURM cluster (partition "debug", nodes twnode1 and twnode2)."""
    reason = _missing_requirements() or namespaces_refused()
    if reason:
        _skip_or_fail(reason)
    reap_stale(Path(tempfile.gettempdir()))
    root = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
    started = time.monotonic()
    try:
        cluster = start_two_nodes(root)
    except SlurmClusterError as exc:
        error = str(exc)
    else:
        error = ""
    if error:
        pytest.fail(
            f"could not start the two-node SLURM cluster in {root}:\n{error}", pytrace=False
        )
    cluster.startup_s = time.monotonic() - started
    try:
        yield cluster
    finally:
        problems = end_jobs(cluster)
        problems += stop_two_nodes(root)
        if problems:
            print(f"\ntwo-node SLURM cluster teardown: {'; '.join(problems)}; kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
