"""Did the out-of-memory killer act? The kernel's own counters, read before and after a run.

A trainer killed by SIGKILL under a memory cap (a cgroup limit: a container, a SLURM job, a
systemd scope) prints nothing; a person's `kill -9` looks the same from its exit status. The
kernel counts OOM kills twice: per memory cgroup (`oom_kill` in memory.events on cgroup v2,
in memory.oom_control on v1) and machine-wide (`oom_kill` in /proc/vmstat, cgroup kills
included). A counter that rose while the trainer ran is the evidence. The machine-wide one can
also count another process's kill at the same moment; that rare case reads as out-of-memory.
"""

from __future__ import annotations

from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
VMSTAT = Path("/proc/vmstat")


def _field(path: Path, name: str) -> int | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == name and value.strip().isdigit():
            return int(value)
    return None


def _own_cgroup_files(pid: int | str = "self") -> list[Path]:
    """The memory cgroup event files of a process (v2 and v1 hierarchies, where mounted)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if controllers == "":
            for base in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
                out.append(base / rel / "memory.events")
        elif "memory" in controllers.split(","):
            out.append(CGROUP_ROOT / "memory" / rel / "memory.oom_control")
    return out


def snapshot(pid: int | str = "self") -> dict[str, int]:
    """The OOM-kill counters readable now, by where they were read."""
    counts: dict[str, int] = {}
    for path in _own_cgroup_files(pid):
        value = _field(path, "oom_kill")
        if value is not None:
            counts[str(path)] = value
    system = _field(VMSTAT, "oom_kill")
    if system is not None:
        counts[str(VMSTAT)] = system
    return counts


def killed_by_oom(before: dict[str, int], after: dict[str, int]) -> bool | None:
    """True when a counter rose, False when counters were read and none rose, None when
    there is nothing to compare (no such counters on this system)."""
    common = before.keys() & after.keys()
    if not common:
        return None
    return any(after[key] > before[key] for key in common)


def evidence(before: dict[str, int], after: dict[str, int]) -> str | None:
    """Which counter rose, for the record."""
    for key in sorted(before.keys() & after.keys()):
        if after[key] > before[key]:
            return f"oom_kill in {key} went {before[key]} -> {after[key]}"
    return None
