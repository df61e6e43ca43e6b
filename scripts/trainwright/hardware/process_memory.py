"""The memory a process owns, as opposed to what its resident set happens to show.

Peak RSS (ru_maxrss, VmHWM) counts the pages of torch's shared libraries that are mapped in, and
how many of those there are depends on the page cache, not on the run: the same step measured
476 MiB in one virtual environment and 597 MiB in a freshly installed copy of the same files, and
more again in a freshly cloned CI tree. Those pages are backed by files and the kernel can drop
them under pressure; what a run must be given is its anonymous memory. Linux keeps no peak of
that, but file-backed pages are only ever added while a process runs, so the peak resident set
minus the file and shared pages at the end is the anonymous peak (to within pages mapped after
the peak).
"""

from __future__ import annotations

import resource

STATUS = "/proc/self/status"


def _status_kib(fields: tuple[str, ...]) -> dict[str, int] | None:
    try:
        with open(STATUS, encoding="ascii") as fh:
            found = {}
            for line in fh:
                name, _, rest = line.partition(":")
                if name in fields:
                    found[name] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return found if len(found) == len(fields) else None


def own_peak_bytes() -> int:
    """The most anonymous memory this process has held so far, in bytes (peak RSS where the
    kernel does not break the resident set down)."""
    status = _status_kib(("VmHWM", "RssFile", "RssShmem"))
    if status is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return (status["VmHWM"] - status["RssFile"] - status["RssShmem"]) * 1024


def own_bytes() -> int:
    """The anonymous memory this process holds now, in bytes (RSS where there is no breakdown)."""
    status = _status_kib(("RssAnon",))
    if status is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return status["RssAnon"] * 1024
