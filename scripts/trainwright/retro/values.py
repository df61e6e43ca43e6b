"""Numbers with units as people write them in reports: `2,950 GB/s`, `88 %`, `11.2 GiB`, `1e-4`."""

from __future__ import annotations

import re

NUMBER = re.compile(
    r"(?<![\w.])(?P<num>[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+)"
    r"\s*(?P<unit>%|[A-Za-zµμ]+(?:/[A-Za-z]+)?)?"
)

# unit (lower case) -> (kind, factor to the kind's base unit)
UNITS: dict[str, tuple[str, float]] = {
    "tb/s": ("bandwidth", 1000.0),
    "gb/s": ("bandwidth", 1.0),
    "mb/s": ("bandwidth", 0.001),
    "tib/s": ("bandwidth", 1099.511627776),
    "gib/s": ("bandwidth", 1.073741824),
    "s": ("time", 1000.0),
    "sec": ("time", 1000.0),
    "ms": ("time", 1.0),
    "us": ("time", 0.001),
    "µs": ("time", 0.001),
    "μs": ("time", 0.001),
    "ns": ("time", 0.000001),
    "min": ("time", 60000.0),
    "second": ("time", 1000.0),
    "msecond": ("time", 1.0),
    "usecond": ("time", 0.001),
    "nsecond": ("time", 0.000001),
    "h": ("time", 3600000.0),
    "gb": ("memory", 1.0),
    "gib": ("memory", 1.073741824),
    "mb": ("memory", 0.001),
    "mib": ("memory", 0.001048576),
    "tflops": ("flops", 1.0),
    "gflops": ("flops", 0.001),
    "%": ("percent", 1.0),
    "tok/s": ("tokens/s", 1.0),
    "tokens/s": ("tokens/s", 1.0),
    "tokens/sec": ("tokens/s", 1.0),
    "samples/s": ("samples/s", 1.0),
    "it/s": ("it/s", 1.0),
}
RATE_KEYS = ("tok/s", "tokens/s", "tokens/sec", "samples/s", "it/s")


def parse_number(text: str, default_unit: str | None = None) -> tuple[float, str | None] | None:
    """The first number in `text` and the unit written after it (or `default_unit`)."""
    m = NUMBER.search(text or "")
    if not m:
        return None
    try:
        value = float(m.group("num").replace(",", ""))
    except ValueError:
        return None
    unit = m.group("unit")
    if unit and unit.lower() not in UNITS and unit.lower() not in ("x", "k"):
        unit = None
    if unit and unit.lower() == "k":
        value *= 1000
        unit = None
    return value, unit or default_unit


def comparable(text: str, default_unit: str | None = None) -> tuple[float, str] | None:
    """A value in its kind's base unit, with the kind (or the raw unit) so that like meets like."""
    parsed = parse_number(text, default_unit)
    if parsed is None:
        return None
    value, unit = parsed
    if unit and unit.lower() in UNITS:
        kind, factor = UNITS[unit.lower()]
        return value * factor, kind
    return value, (unit or "").lower()


UNIT_IN_KEY = re.compile(r"\(([^)]*)\)|\[([^\]]*)\]")


def unit_of_key(key: str) -> str | None:
    """`time (ms)` -> `ms`; `bandwidth [GB/s]` -> `GB/s`."""
    m = UNIT_IN_KEY.search(key)
    if not m:
        low = key.lower()
        for unit in ("tb/s", "gb/s", "tflops", "gflops", *RATE_KEYS):
            if unit in low:
                start = low.index(unit)
                return key[start : start + len(unit)]
        return "%" if "%" in key else None
    unit = (m.group(1) or m.group(2) or "").strip()
    return unit if unit.lower() in UNITS else None
