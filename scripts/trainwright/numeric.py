"""Numeric command-line values: plain ASCII numbers, finite, within sane bounds.

click's own INT and FLOAT accept `nan`, `inf`, `1_000` and digits of any script (`١٢`), and
its ranges let `nan` through (every comparison with nan is false). A number that cannot mean
anything is refused here (exit 2, one line naming the flag) before any command uses it.
"""

from __future__ import annotations

import math
import re
from typing import Any

import click

from trainwright.errors import TrainwrightError

_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


class Number(click.ParamType):
    """A whole number (`whole=True`) or a decimal one, finite, in [low, high].

    `low_open` excludes `low` itself (a positive amount: `low=0, low_open=True`); `high_open`
    likewise for `high` (a probability below 1).
    """

    def __init__(
        self,
        low: float | None = None,
        high: float | None = None,
        *,
        whole: bool = False,
        low_open: bool = False,
        high_open: bool = False,
    ) -> None:
        self.low, self.high = low, high
        self.whole = whole
        self.low_open, self.high_open = low_open, high_open
        self.name = "integer" if whole else "number"

    def get_metavar(self, param: click.Parameter, *args: Any, **kwargs: Any) -> str | None:
        return "INTEGER" if self.whole else "NUMBER"

    def describe(self) -> str:
        """What the flag takes, e.g. 'a whole number, at least 1 and at most 4096'."""
        kind = "a whole number" if self.whole else "a number"
        parts = []
        if self.low == 0 and self.low_open:
            kind = kind.replace("a ", "a positive ", 1)
        elif self.low is not None:
            parts.append(f"{'above' if self.low_open else 'at least'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'below' if self.high_open else 'at most'} {self.high:g}")
        return kind + (", " + " and ".join(parts) if parts else "")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if param is None:
            flag = "value"
        elif isinstance(param, click.Argument) or not param.opts:
            flag = param.human_readable_name
        else:
            flag = param.opts[0]
        refusal = TrainwrightError(f"{flag} must be {self.describe()}; got {value!r}")
        if isinstance(value, bool):
            raise refusal
        if isinstance(value, int) or (isinstance(value, float) and not self.whole):
            number: float = value
        else:
            text = str(value).strip()
            if len(text) > 64 or not (_INT if self.whole else _FLOAT).fullmatch(text):
                if not text.isascii():
                    refusal = TrainwrightError(f"{refusal} (write it with the digits 0-9)")
                raise refusal
            number = int(text) if self.whole else float(text)
        if not math.isfinite(number):
            raise refusal
        if self.low is not None and (number <= self.low if self.low_open else number < self.low):
            raise refusal
        if self.high is not None and (
            number >= self.high if self.high_open else number > self.high
        ):
            raise refusal
        return int(number) if self.whole else float(number)


def Int(low: int | None = None, high: int | None = None) -> Number:  # noqa: N802
    """A whole number in [low, high]."""
    return Number(low, high, whole=True)


def Float(  # noqa: N802
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Number:
    """A finite decimal number in [low, high] (ends excluded with low_open / high_open)."""
    return Number(low, high, low_open=low_open, high_open=high_open)


def Positive(high: float) -> Number:  # noqa: N802
    """An amount above 0 and at most `high` (GB, hours, seconds)."""
    return Number(0, high, low_open=True)
