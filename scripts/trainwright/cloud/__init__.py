"""The registry of GPU rental providers: one module per provider in this package, found by looking.

A provider module declares, at module level:
    NAME, LABEL                 its name (`--provider NAME`) and how to print it
    KEY_HELP                    one line: where its API key lives and how to set it
    WATCHDOG_CREDENTIAL         the narrowest credential the instance can hold (for the guide)
and functions (each raises TrainwrightError with one clear line on a refused key, no balance,
a vanished offer or a rate limit):
    offers(gpu, max_price) -> list[Offer]
    find_offer(offer_id) -> Offer | None       None: rented by someone else or withdrawn
    create(offer_id, label) -> Instance
    status(instance_id) -> Instance | None     None: the provider no longer knows it
    destroy(instance_id) -> None                asks for the destroy; `status` says when it is gone
    list_instances() -> list[Instance]
    has_key() -> bool                           whether a key is configured (not whether it works)

Adding a provider is adding one module here; nothing else lists them.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from types import ModuleType

from trainwright.errors import TrainwrightError

NOT_PROVIDERS = (
    "base",
    "commands",
    "records",
    "watchdog",
    "estimate",
    "bringup",
    "guard",
    "deploy",
    "provision",
    "instance_commands",
)


@cache
def _modules() -> tuple[ModuleType, ...]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg or info.name.startswith("_") or info.name in NOT_PROVIDERS:
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "NAME"):
            found.append(mod)
    return tuple(sorted(found, key=lambda m: str(m.NAME)))


def names() -> list[str]:
    return [str(m.NAME) for m in _modules()]


def all_providers() -> tuple[ModuleType, ...]:
    return _modules()


def get(name: str) -> ModuleType:
    """The provider called `name`; a clear error listing the known ones."""
    wanted = (name or "").strip().lower()
    for mod in _modules():
        if mod.NAME == wanted:
            return mod
    raise TrainwrightError(f"unknown provider {name!r}; one of: {', '.join(names())}")
