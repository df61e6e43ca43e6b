"""Vast.ai through its official SDK (`vastai`): a marketplace of machines, each offer an id.

The key comes from where the Vast CLI keeps it: VAST_API_KEY, else
$XDG_CONFIG_HOME/vastai/vast_api_key (~/.config/vastai/vast_api_key), else ~/.vast_api_key.
VAST_URL points the SDK at another server (the tests' fake).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trainwright.cloud.base import (
    MISSING_SDK,
    Instance,
    Offer,
    ProviderError,
    key_missing,
    key_refused,
    no_balance,
    offer_gone,
    rate_limited,
)

NAME = "vast"
LABEL = "Vast.ai"
KEY_HELP = (
    "set VAST_API_KEY or run `vastai set api-key KEY` (it writes ~/.config/vastai/vast_api_key)"
)
WATCHDOG_CREDENTIAL = (
    "the instance's own CONTAINER_API_KEY, which Vast.ai places in every instance and which "
    "can act on that instance only"
)
IMAGE = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-devel"
DISK_GB = 40


def _key_files() -> list[Path]:
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [config / "vastai" / "vast_api_key", Path.home() / ".vast_api_key"]


def _key() -> str | None:
    key = os.environ.get("VAST_API_KEY", "").strip()
    if key:
        return key
    for path in _key_files():
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace").strip()
            if text:
                return text
    return None


def has_key() -> bool:
    return _key() is not None


def _client() -> Any:
    key = _key()
    if key is None:
        raise key_missing(LABEL, KEY_HELP)
    try:
        from vastai import VastAI
    except ImportError:
        raise ProviderError(MISSING_SDK.format(label=LABEL)) from None
    return VastAI(api_key=key, server_url=os.environ.get("VAST_URL") or None, retry=2, raw=True)


def _error_of(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        return str(body.get("msg") or body.get("error") or f"HTTP {response.status_code}")
    return f"HTTP {response.status_code}"


def _call(
    what: str, fn: Any, *args: Any, offer: str | None = None, gone: bool = False, **kwargs: Any
) -> Any:
    """One SDK call, its HTTP failures said in one line (never with the key)."""
    import requests

    try:
        return fn(*args, **kwargs)
    except requests.HTTPError as exc:
        response = exc.response
        code = response.status_code if response is not None else 0
        detail = _error_of(response) if response is not None else str(exc)
        body: dict[str, Any] = {}
        if response is not None:
            try:
                body = response.json() if isinstance(response.json(), dict) else {}
            except ValueError:
                body = {}
        error = str(body.get("error", ""))
        if gone and code == 404:
            return None
        if code in (401, 403):
            raise key_refused(LABEL, KEY_HELP) from None
        if code == 429:
            raise rate_limited(LABEL) from None
        if code == 402 or "credit" in error or "balance" in error:
            raise no_balance(LABEL, detail) from None
        if offer is not None and (code in (404, 410) or error == "no_such_ask"):
            raise offer_gone(LABEL, offer, detail) from None
        raise ProviderError(f"{LABEL} {what} failed: {detail}") from None
    except requests.RequestException as exc:
        raise ProviderError(f"cannot reach {LABEL} for {what}: {type(exc).__name__}") from None


def _gpu_query(gpu: str) -> str:
    return f"gpu_name={gpu.strip().replace(' ', '_')} num_gpus=1 rentable=true"


def offers(gpu: str, max_price: float | None = None) -> list[Offer]:
    client = _client()
    _call("the account check", client.show_user)
    rows = _call("search offers", client.search_offers, query=_gpu_query(gpu), order="dph_total")
    found = [_offer(row) for row in rows or []]
    if max_price is not None:
        found = [o for o in found if o.price_per_hour <= max_price]
    return found


def _offer(row: dict[str, Any]) -> Offer:
    return Offer(
        provider=NAME,
        id=str(row["id"]),
        gpu=str(row.get("gpu_name", "")),
        gpus=int(row.get("num_gpus") or 1),
        price_per_hour=float(row.get("dph_total") or 0),
        where=str(row.get("geolocation") or ""),
        details={
            "gpu_ram_mb": row.get("gpu_ram"),
            "reliability": row.get("reliability2"),
            "inet_down_mbps": row.get("inet_down"),
            "verified": row.get("verified"),
        },
    )


def find_offer(offer_id: str) -> Offer | None:
    """The offer as the marketplace lists it now; None when it was rented or withdrawn."""
    if not str(offer_id).isdigit():
        raise ProviderError(
            f"a {LABEL} offer id is a number (from `cloud offers`), not {offer_id!r}"
        )
    client = _client()
    rows = _call("search offers", client.search_offers, query=f"id={int(offer_id)}")
    match = [r for r in rows or [] if str(r.get("id")) == str(offer_id)]
    return _offer(match[0]) if match else None


def _ssh(row: dict[str, Any]) -> tuple[str | None, int | None]:
    """As `vastai ssh-url` reads it: the direct address (public_ipaddr and the host port mapped
    to 22) when the instance has one, else Vast's ssh proxy (ssh_host, ssh_port)."""
    ports = row.get("ports")
    direct = ports.get("22/tcp") if isinstance(ports, dict) else None
    if direct and row.get("public_ipaddr"):
        try:
            return str(row["public_ipaddr"]), int(direct[0]["HostPort"])
        except (KeyError, IndexError, TypeError, ValueError):
            pass
    return row.get("ssh_host"), int(row["ssh_port"]) if row.get("ssh_port") else None


def _instance(row: dict[str, Any]) -> Instance:
    host, port = _ssh(row)
    return Instance(
        provider=NAME,
        id=str(row["id"]),
        state=str(row.get("actual_status") or row.get("cur_state") or "unknown"),
        gpu=str(row.get("gpu_name") or ""),
        price_per_hour=float(row["dph_total"]) if row.get("dph_total") is not None else None,
        label=str(row.get("label") or ""),
        ssh_host=host,
        ssh_port=port,
    )


def create(offer_id: str, label: str) -> Instance:
    if not str(offer_id).isdigit():
        raise ProviderError(
            f"a {LABEL} offer id is a number (from `cloud offers`), not {offer_id!r}"
        )
    client = _client()
    reply = _call(
        "create instance",
        client.create_instance,
        int(offer_id),
        image=IMAGE,
        disk=DISK_GB,
        label=label,
        ssh=True,
        direct=True,
        cancel_unavail=True,
        offer=str(offer_id),
    )
    if not isinstance(reply, dict) or not reply.get("success") or not reply.get("new_contract"):
        detail = (reply or {}).get("msg") if isinstance(reply, dict) else reply
        raise offer_gone(LABEL, str(offer_id), str(detail or "no instance was created"))
    new_id = str(reply["new_contract"])
    try:
        return status(new_id) or Instance(NAME, new_id, "loading", label=label)
    except ProviderError:  # it exists and must be recorded: its details can wait
        return Instance(NAME, new_id, "loading", label=label)


def status(instance_id: str) -> Instance | None:
    client = _client()
    row = _call("show instance", client.show_instance, int(instance_id), gone=True)
    return _instance(row) if row else None


def destroy(instance_id: str) -> None:
    client = _client()
    _call("destroy instance", client.destroy_instance, int(instance_id))


def list_instances() -> list[Instance]:
    client = _client()
    return [_instance(row) for row in _call("show instances", client.show_instances) or []]
