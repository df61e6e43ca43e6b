"""The supervisor's two knobs as click options, shared by `launch` here and `cloud launch` on a
rented instance (the same supervisor runs in both places)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from trainwright.numeric import Float, Int
from trainwright.run.supervisor import DEFAULT_HANG_TIMEOUT

MAX_RETRIES = 3


def supervisor_options(where: str = "") -> Callable[[Any], Any]:
    """--max-retries and --hang-timeout; `where` (e.g. " there") ends each help's subject."""

    def apply(f: Any) -> Any:
        f = click.option(
            "--hang-timeout",
            type=Float(1, 604_800),
            default=int(DEFAULT_HANG_TIMEOUT),
            show_default=True,
            help=f"Seconds without output before the trainer{where} is called hung.",
        )(f)
        return click.option(
            "--max-retries",
            type=Int(0, 10),
            default=MAX_RETRIES,
            show_default=True,
            help=f"Out-of-memory retries{where}, each with half the batch.",
        )(f)

    return apply
