"""One clock (`trainwright.clock`) and one file hash (`state.content_hash.file_sha256`): their
formats, that the hash streams, and that no second definition creeps back into the package."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainwright import clock
from trainwright.state.content_hash import file_sha256

PACKAGE = Path(__file__).resolve().parents[1] / "scripts" / "trainwright"


@pytest.fixture(params=["UTC0", "IST-5:30", "NST+3:30"])  # POSIX rules: no tzdata needed
def zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run under a local zone with a whole, a half-hour and a negative half-hour offset."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def test_now_iso_is_local_with_its_offset_to_the_second(zone: str) -> None:
    text = clock.now_iso()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", text), text
    parsed = dt.datetime.fromisoformat(text)
    assert parsed.utcoffset() == dt.datetime.now().astimezone().utcoffset()
    assert abs((dt.datetime.now(dt.timezone.utc) - parsed).total_seconds()) < 5


def test_now_iso_utc_ends_in_z_whatever_the_local_zone(zone: str) -> None:
    text = clock.now_iso(utc=True)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text), text
    parsed = dt.datetime.fromisoformat(text)
    assert parsed.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.timezone.utc) - parsed).total_seconds()) < 5


def test_file_stamp_is_local_time_of_the_moment_given(zone: str) -> None:
    when = dt.datetime(2026, 3, 4, 5, 6, 7).timestamp()  # naive: local, in this zone
    assert clock.file_stamp(when) == "20260304-050607"
    assert re.fullmatch(r"\d{8}-\d{6}", clock.file_stamp())
    assert re.fullmatch(r"\d{8}-\d{6}-\d{6}", clock.file_stamp(micro=True))


def test_file_stamps_sort_in_time_order() -> None:
    start = dt.datetime(2026, 12, 31, 9, 59, 58).timestamp()  # across 10 h, a day and a year
    times = [start + s for s in (0, 1, 2, 3, 86_400, 86_401, 400 * 86_400)]
    stamps = [clock.file_stamp(t) for t in times]
    assert sorted(stamps) == stamps and len(set(stamps)) == len(stamps)
    micro = [clock.file_stamp(start + f / 1000, micro=True) for f in (0, 1, 250, 999)]
    assert sorted(micro) == micro and len(set(micro)) == len(micro)


def test_micro_stamps_differ_within_one_second() -> None:
    """Quarantine names its manifest by a micro stamp: two moves a millisecond apart differ."""
    first = clock.file_stamp(micro=True)
    time.sleep(0.002)
    second = clock.file_stamp(micro=True)
    assert first < second


def test_the_old_names_are_the_one_helper() -> None:
    from trainwright.run import runfiles

    assert not hasattr(runfiles, "now_iso")  # everyone imports it from trainwright.clock


@pytest.mark.parametrize("size", [0, 1, (1 << 20) - 1, 1 << 20, (5 << 20) + 12_345])
def test_file_sha256_matches_hashlib_over_the_bytes(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert file_sha256(path) == (hashlib.sha256(data).hexdigest(), size)
    assert file_sha256(str(path)) == file_sha256(path)


def test_file_sha256_streams_a_big_file(tmp_path: Path) -> None:
    """Hashing 24 MiB never holds more than a couple of 1 MiB chunks in memory."""
    path = tmp_path / "big.bin"
    h = hashlib.sha256()
    with path.open("wb") as fh:
        for _ in range(24):
            chunk = os.urandom(1 << 20)
            h.update(chunk)
            fh.write(chunk)
    tracemalloc.start()
    try:
        digest, size = file_sha256(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (digest, size) == (h.hexdigest(), 24 << 20)
    assert peak < 4 << 20, f"peak {peak / 2**20:.1f} MiB: the file was read whole"


# --- one definition of each -------------------------------------------------------------------

CLOCK = "clock.py"
HASH = "state/content_hash.py"

TIME_PATTERNS = {
    "a now helper": re.compile(r"\bdef\s+(now|now_iso|utc_now|timestamp)\s*\("),
    "the current time as text": re.compile(
        r"datetime\.now\([^)]*\)\s*(\.astimezone\(\))?\s*\.(isoformat|strftime)\("
    ),
    "a file-name stamp": re.compile(r"strftime\(\s*[\"']%Y%m%d"),
    "an ISO stamp by hand": re.compile(r"strftime\(\s*[\"']%Y-%m-%dT"),
}
HASH_PATTERNS = {
    "a file-hash helper": re.compile(r"\bdef\s+\w*(sha256|file_digest|digest_file)\w*\s*\("),
    "a SHA-256 in place": re.compile(
        r"hashlib\.(sha256|new|file_digest)\(|from\s+hashlib\s+import"
    ),
}

# In-memory uses, checked one by one: (file or None for anywhere, the line as written, why).
ALLOWED_HASHES = [
    (
        None,
        "return hashlib.sha256(ident.encode()).hexdigest()[:24]",
        "workflow/guard: a tool call's identity (id or session+input), not a file",
    ),
    (
        None,
        "digest = hashlib.sha256(data).hexdigest()",
        "workflow/guard: bytes of a small file already read to keep a copy in the object store; "
        "a bigger one goes through file_sha256",
    ),
    (
        None,
        'return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()',
        "hardware/env_check: a digest of the probed facts (text), not a file",
    ),
    (
        "dataset/text_gate.py",
        "key = hashlib.sha256(",
        "a row's canonical JSON, to find rows that repeat: not a file",
    ),
    (
        "cloud/deploy.py",
        "h = hashlib.sha256()",
        "HASHES, the script `cloud pull` runs on the instance, where trainwright may not be "
        "installed: standard library only",
    ),
    (
        "cluster/inputs.py",
        "h = hashlib.sha256()",
        "the inputs fingerprint: one digest over the config's file_sha256 and the listing "
        "(names, sizes, times) of what the run reads",
    ),
]
# Time code allowed outside clock.py: (file, the line as written, why).
ALLOWED_TIMES = [
    (
        "cloud/watchdog.py",
        "line = f\"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}\\n\"",
        "runs alone on the rented machine, where trainwright is not installed: standard library "
        "only",
    ),
]
# Backup stamps in modules the backends refactor owns right now (matched by the line, wherever
# it moves): switch each to clock.file_stamp() and delete it here (the test fails until then).
PENDING: dict[str, str] = {}


def _lines() -> Iterator[tuple[str, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for line in path.read_text("utf-8").splitlines():
            code = line.split("  #")[0].strip()
            if code and not code.startswith("#"):
                yield rel, code


def _allowed(rel: str, code: str, allowed: list[tuple[str | None, str, str]]) -> bool:
    return any(where in (None, rel) and code == text for where, text, _ in allowed)


def test_one_clock_and_one_file_hash_in_the_package() -> None:
    found: list[str] = []
    pending_seen: set[str] = set()
    for rel, code in _lines():
        for what, pattern in TIME_PATTERNS.items():
            if rel == CLOCK or not pattern.search(code) or _allowed(rel, code, ALLOWED_TIMES):
                continue
            if code in PENDING:
                pending_seen.add(code)
            else:
                found.append(f"{rel}: {what}: {code}  (use trainwright.clock)")
        for what, pattern in HASH_PATTERNS.items():
            if rel == HASH or not pattern.search(code):
                continue
            if not _allowed(rel, code, ALLOWED_HASHES):
                found.append(f"{rel}: {what}: {code}  (use state.content_hash.file_sha256)")
    assert not found, "a second definition:\n" + "\n".join(found)
    done = [f"{where}: {code}" for code, where in PENDING.items() if code not in pending_seen]
    assert not done, "switched to clock.file_stamp(): drop from PENDING:\n" + "\n".join(done)


def test_the_scan_finds_what_it_looks_for() -> None:
    """The patterns above catch the shapes the duplicates had, so the scan cannot pass blind."""
    shapes = {
        "def now_iso() -> str:": TIME_PATTERNS,
        "def now() -> str:": TIME_PATTERNS,
        '_dt.datetime.now().astimezone().isoformat(timespec="seconds")': TIME_PATTERNS,
        'datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")': TIME_PATTERNS,
        '_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")': TIME_PATTERNS,
        'stamp = time.strftime("%Y%m%d-%H%M%S")': TIME_PATTERNS,
        'time.strftime("%Y%m%dT%H%M%S")': TIME_PATTERNS,
        "def sha256_of(path: Path) -> str:": HASH_PATTERNS,
        "def file_digest(path: Path) -> str:": HASH_PATTERNS,
        "h = hashlib.sha256()": HASH_PATTERNS,
        "hashlib.sha256(file.read_bytes()).hexdigest()[:16]": HASH_PATTERNS,
    }
    for code, patterns in shapes.items():
        assert any(p.search(code) for p in patterns.values()), code
