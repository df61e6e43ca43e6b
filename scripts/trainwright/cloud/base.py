"""What every provider returns: offers and instances in one shape, and the shared error texts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from trainwright.errors import TrainwrightError

MISSING_SDK = "the {label} SDK is not installed: pip install 'trainwright[cloud]'"


@dataclass
class Offer:
    provider: str
    id: str
    gpu: str
    gpus: int
    price_per_hour: float
    where: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Instance:
    provider: str
    id: str
    state: str  # the provider's own word: running, loading, exited, RUNNING, EXITED ...
    gpu: str = ""
    price_per_hour: float | None = None
    label: str = ""
    ssh_host: str | None = None
    ssh_port: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ProviderError(TrainwrightError):
    """A provider refused or failed a call; the message is one line, without the API key."""


def key_missing(label: str, help_line: str) -> ProviderError:
    return ProviderError(f"no {label} API key found: {help_line}")


def key_refused(label: str, help_line: str) -> ProviderError:
    return ProviderError(f"{label} refused the API key (check it): {help_line}")


def rate_limited(label: str) -> ProviderError:
    return ProviderError(f"{label} is rate limiting this key: wait a minute and run it again")


def no_balance(label: str, detail: str) -> ProviderError:
    return ProviderError(f"{label} says the account cannot pay for this: {detail}; add credit")


def offer_gone(label: str, offer: str, detail: str) -> ProviderError:
    return ProviderError(
        f"{label} offer {offer} is no longer available ({detail}); "
        "run `trainwright cloud offers` again and pick another"
    )
