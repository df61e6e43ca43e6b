"""Own (anonymous) peak memory: grows with what the process allocates, not with the file pages
it maps, which is what made peak RSS read differently from one virtual environment to the next."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

MiB = 2**20

PROBE = """
import mmap, sys
from trainwright.hardware.process_memory import own_bytes, own_peak_bytes

def rss_peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

start_own, start_rss = own_peak_bytes(), rss_peak()
with open(sys.argv[1], "rb") as fh:
    view = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    total = sum(view[i] for i in range(0, len(view), 4096))
after_map_own, after_map_rss = own_peak_bytes(), rss_peak()
view.close()
block = bytearray(96 * 2**20)
for i in range(0, len(block), 4096):
    block[i] = 1
held = own_bytes()
del block
print(start_own, start_rss, after_map_own, after_map_rss, own_peak_bytes(), held)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_mapped_file_pages_do_not_count_and_allocations_do(tmp_path: Path) -> None:
    data = tmp_path / "weights.bin"
    data.write_bytes(b"\x01" * (96 * MiB))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(data)], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(REPO / "scripts")},
    )  # fmt: skip
    start_own, start_rss, map_own, map_rss, peak_own, held = map(int, out.stdout.split())
    assert map_rss - start_rss > 80 * MiB  # peak RSS counted every page of the mapped file
    assert map_own - start_own < 8 * MiB  # own memory did not
    assert peak_own - map_own > 90 * MiB  # the 96 MiB the process wrote is its own
    assert held > 90 * MiB


def test_the_peak_is_this_processs_not_the_parents_it_was_started_from() -> None:
    """ru_maxrss survives exec: a child started from a big process reads the parent's size as
    its own peak (the CI's pytest process had grown to hundreds of MiB when it started the
    trainer). The own peak starts from the child's first page."""
    ballast = bytearray(200 * MiB)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    code = (
        "import resource; from trainwright.hardware.process_memory import own_peak_bytes; "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, own_peak_bytes())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(REPO / "scripts")},
    )  # fmt: skip
    inherited, own = map(int, out.stdout.split())
    assert inherited > 200 * MiB
    assert own < 64 * MiB
    del ballast
