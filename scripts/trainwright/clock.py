"""The one clock: timestamps for state files and for file names. A leaf module (stdlib only),
so any room can import it without an arrow into another room.

- `now_iso()`: local time with its UTC offset, to the second (`2026-12-05T16:20:27+01:00`).
  State files a person reads beside their own clock (gate decisions, run.json, runs_status.yaml,
  environment.md, checkpoint and manifest metadata) use it; the offset keeps it unambiguous and
  `datetime.fromisoformat` reads it back.
- `now_iso(utc=True)`: UTC with a `Z`, to the second (`2026-12-05T15:20:27Z`). The workflow
  state (state.md's Last Updated, transitions, the hook's log) has always been written this way
  and its lines are compared as text across sessions, so it keeps that format.
- `file_stamp()`: local `YYYYmmdd-HHMMSS` for backup, log and aside names: it sorts as text in
  time order and matches what `ls -l` shows. Two calls in the same second give the same stamp, so
  a caller that may write twice a second adds a counter on a clash or asks for `micro=True`.
"""

from __future__ import annotations

import datetime as _dt

FILE_STAMP = "%Y%m%d-%H%M%S"


ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> _dt.datetime:
    """The current time in UTC, to the second, as an aware datetime (for arithmetic: deadlines,
    money spent so far)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def iso_utc(when: _dt.datetime) -> str:
    """`when` as UTC ISO 8601 text with a `Z`, to the second."""
    return when.astimezone(_dt.timezone.utc).strftime(ISO_UTC)


def parse_iso_utc(text: str) -> _dt.datetime:
    """The inverse of iso_utc (ValueError on anything else)."""
    return _dt.datetime.strptime(text.strip(), ISO_UTC).replace(tzinfo=_dt.timezone.utc)


def now_iso(*, utc: bool = False) -> str:
    """The current time as ISO 8601 text, to the second: local with offset, or UTC with Z."""
    if utc:
        return iso_utc(utc_now())
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def file_stamp(when: float | None = None, *, micro: bool = False) -> str:
    """`YYYYmmdd-HHMMSS` in local time, for now or for a POSIX time (a file's mtime);
    `micro` appends `-ffffff` for names that must differ within one second."""
    moment = _dt.datetime.now() if when is None else _dt.datetime.fromtimestamp(when)
    return moment.strftime(FILE_STAMP + ("-%f" if micro else ""))
