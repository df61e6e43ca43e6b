"""Options of the run commands that also run on a rented instance: the supervisor's two knobs
(`launch`, `cloud launch`) and Gate 4's (`dry-run`, `cloud dry-run`). The same code runs in
both places, so the options are declared once."""

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


def dry_run_options(where: str = "") -> Callable[[Any], Any]:
    """Gate 4's --steps and --timeout, for `dry-run` here and `cloud dry-run` on an instance."""

    def apply(f: Any) -> Any:
        f = click.option(
            "--timeout",
            type=Float(1, 604_800),
            default=900,
            show_default=True,
            help=f"Seconds without any output before the trainer{where} is called hung and "
            "stopped.",
        )(f)
        return click.option("--steps", type=Int(2, 5), default=3, show_default=True)(f)

    return apply
