"""SLURM time limits: parsing what people write (4h, 90m, 1-12:00:00) into D-HH:MM:SS."""

from __future__ import annotations

import re

_TIME = re.compile(r"^(?:(\d+)-)?(\d{1,3})(?::(\d{1,2}))?(?::(\d{1,2}))?$")
_HUMAN_TIME = re.compile(r"^(\d+(?:\.\d+)?)\s*(d|h|m|min|days?|hours?|minutes?)$", re.I)


def parse_time(text: str) -> str:
    """SLURM time formats (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) or 4h / 30m / 2d."""
    human = _HUMAN_TIME.match(text.strip())
    if human:
        amount, unit = float(human.group(1)), human.group(2).lower()[0]
        minutes = amount * {"d": 1440, "h": 60, "m": 1}[unit]
        return format_minutes(minutes)
    m = _TIME.match(text.strip())
    if not m:
        raise ValueError(
            f"time {text!r} is not a SLURM time (HH:MM:SS, D-HH:MM:SS, minutes) nor like 4h or 30m"
        )
    days, a, b, c = m.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        minutes = int(days) * 1440 + int(a) * 60 + int(b or 0) + int(c or 0) / 60
    elif c is not None:  # HH:MM:SS
        minutes = int(a) * 60 + int(b) + int(c) / 60
    elif b is not None:  # MM:SS
        minutes = int(a) + int(b) / 60
    else:  # MM
        minutes = int(a)
    if minutes <= 0:
        raise ValueError(f"time {text!r} is zero")
    return format_minutes(minutes)


def format_minutes(minutes: float) -> str:
    seconds = max(60, round(minutes * 60))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    mins, secs = divmod(rest, 60)
    return (
        f"{days}-{hours:02d}:{mins:02d}:{secs:02d}"
        if days
        else f"{hours:02d}:{mins:02d}:{secs:02d}"
    )


def time_minutes(slurm_time: str) -> float:
    m = _TIME.match(slurm_time)
    if not m:
        raise ValueError(slurm_time)
    days, a, b, c = m.groups()
    if days is not None:
        return int(days) * 1440 + int(a) * 60 + int(b or 0) + int(c or 0) / 60
    return (
        int(a) * 60 + int(b or 0) + int(c or 0) / 60 if c is not None else int(a) + int(b or 0) / 60
    )
