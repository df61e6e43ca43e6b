"""Command-line choices that come from data (the registry of backends), read when first shown
or checked rather than when the command module is imported."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click


class LazyChoice(click.Choice):
    """A click.Choice whose choices are computed on first use."""

    def __init__(self, source: Callable[[], Sequence[str]], case_sensitive: bool = True) -> None:
        self._source = source
        self._cached: tuple[str, ...] | None = None
        super().__init__((), case_sensitive=case_sensitive)

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        if self._cached is None:
            self._cached = tuple(self._source())
        return self._cached

    @choices.setter
    def choices(self, value: Any) -> None:  # click's __init__ assigns; the source wins
        pass


def backend_names() -> list[str]:
    from trainwright import backends

    return backends.names()


def cluster_backend_names() -> list[str]:
    from trainwright import backends

    return backends.cluster_backends()


def launcher_names() -> list[str]:
    from trainwright import backends

    return backends.launchers()


def log_format_names() -> list[str]:
    from trainwright.run.logs import formats

    return formats()
