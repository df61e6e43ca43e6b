"""A single-node SLURM cluster that enforces job memory with cgroups (pytest plugin).

The same daemons as support/slurm_cluster.py, with `TaskPlugin=task/cgroup`,
`ProctrackType=proctrack/cgroup` and a cgroup.conf with `ConstrainRAMSpace=yes`: a job over its
`--mem` is killed by the kernel's out-of-memory killer inside the job's memory cgroup, slurmstepd
says "Detected N oom-kill event(s)", and the job ends OUT_OF_MEMORY, as on a real cluster. Job
ids start at 500000 so its job cgroups never share a name with another test cluster's.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.slurm_cluster import (
    SlurmCluster,
    SlurmClusterError,
    _missing_requirements,
    _skip_or_fail,
    reap_stale_clusters,
    start_cluster,
    stop_cluster,
)

CGROUP_CONF = """\
CgroupPlugin=autodetect
ConstrainRAMSpace=yes
ConstrainSwapSpace=no
AllowedRAMSpace=100
"""
FIRST_JOB_ID = 500000


def with_memory_cgroups(conf: str) -> str:
    conf = conf.replace("ProctrackType=proctrack/linuxproc", "ProctrackType=proctrack/cgroup")
    conf = conf.replace("TaskPlugin=task/none", "TaskPlugin=task/cgroup")
    return conf + f"FirstJobId={FIRST_JOB_ID}\n"


def _no_memory_cgroup() -> str | None:
    root = Path("/sys/fs/cgroup")
    if (root / "memory" / "memory.limit_in_bytes").is_file():
        return None
    controllers = root / "cgroup.controllers"
    if controllers.is_file() and "memory" in controllers.read_text().split():
        return None
    return "no memory cgroup controller under /sys/fs/cgroup"


@pytest.fixture(scope="session")
def slurm_memcap_cluster() -> Iterator[SlurmCluster]:
    """A running single-node cluster whose jobs cannot use more memory than their --mem."""
    reason = _missing_requirements() or _no_memory_cgroup()
    if reason:
        _skip_or_fail(reason)
    reap_stale_clusters(Path(tempfile.gettempdir()))
    root = Path(tempfile.mkdtemp(prefix="trainwright-slurm-memcap-"))
    (root / "cgroup.conf").write_text(CGROUP_CONF)
    started = time.monotonic()
    try:
        cluster = start_cluster(root, with_memory_cgroups)
    except SlurmClusterError as exc:
        error = str(exc)
    else:
        error = ""
    if error:
        pytest.fail(f"could not start the memory-capped SLURM cluster in {root}:\n{error}", False)
    cluster.startup_s = time.monotonic() - started
    try:
        yield cluster
    finally:
        problems = stop_cluster(cluster)
        if problems:
            print(f"\nmemory-capped SLURM cluster teardown: {'; '.join(problems)}; kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
