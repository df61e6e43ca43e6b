"""RunPod through its official SDK (`runpod`): GPU types with prices, so an offer is a GPU type in a
cloud (community or secure), written `community:NVIDIA GeForce RTX 4090`.

The key comes from ~/.runpod/config.toml (`runpod config` writes it; its SDK reads it), the
profile named by RUNPOD_PROFILE or `default`. RUNPOD_API_BASE_URL points the SDK elsewhere.
"""

from __future__ import annotations

import os
import sys
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

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NAME = "runpod"
LABEL = "RunPod"
KEY_HELP = "run `runpod config` (it writes ~/.runpod/config.toml with api_key)"
WATCHDOG_CREDENTIAL = (
    "the pod's own RUNPOD_API_KEY, which RunPod places in every pod scoped to that pod only"
)
IMAGE = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"
CLOUDS = ("community", "secure")


def _config_file() -> Path:
    return Path.home() / ".runpod" / "config.toml"


def _key() -> str | None:
    path = _config_file()
    if not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        raise ProviderError(f"{path} is not valid TOML: {KEY_HELP}") from None
    profile = data.get(os.environ.get("RUNPOD_PROFILE", "default"))
    key = profile.get("api_key") if isinstance(profile, dict) else None
    return str(key).strip() or None if key else None


def has_key() -> bool:
    try:
        return _key() is not None
    except ProviderError:
        return False


def _sdk() -> Any:
    key = _key()
    if key is None:
        raise key_missing(LABEL, KEY_HELP)
    try:
        import runpod
    except ImportError:
        raise ProviderError(MISSING_SDK.format(label=LABEL)) from None
    runpod.api_key = key
    return runpod


def _call(what: str, fn: Any, *args: Any, offer: str | None = None, **kwargs: Any) -> Any:
    import requests
    from runpod import error

    try:
        return fn(*args, **kwargs)
    except error.AuthenticationError:
        raise key_refused(LABEL, KEY_HELP) from None
    except error.QueryError as exc:
        text = str(exc).splitlines()[0] if str(exc) else "query refused"
        low = text.lower()
        if "too many requests" in low or "rate limit" in low:
            raise rate_limited(LABEL) from None
        if "balance" in low or "funds" in low or "credit" in low:
            raise no_balance(LABEL, text) from None
        if offer is not None and ("no longer any instances" in low or "not available" in low):
            raise offer_gone(LABEL, offer, text) from None
        raise ProviderError(f"{LABEL} {what} failed: {text}") from None
    except ValueError as exc:  # the SDK's own checks (an unknown GPU type id)
        if offer is not None:
            raise offer_gone(LABEL, offer, str(exc).splitlines()[0]) from None
        raise ProviderError(f"{LABEL} {what} failed: {exc}") from None
    except requests.RequestException as exc:
        raise ProviderError(f"cannot reach {LABEL} for {what}: {type(exc).__name__}") from None


def _matches(wanted: str, display: str, gpu_id: str) -> bool:
    def norm(text: str) -> str:
        low = text.lower().replace("nvidia", "").replace("geforce", "")
        return "".join(ch for ch in low if ch.isalnum())

    return norm(wanted) in (norm(display), norm(gpu_id))


def offers(gpu: str, max_price: float | None = None) -> list[Offer]:
    rp = _sdk()
    found = []
    for row in _call("get GPU types", rp.get_gpus) or []:
        if not _matches(gpu, str(row.get("displayName", "")), str(row.get("id", ""))):
            continue
        detail = _call("get GPU type", rp.get_gpu, row["id"])
        for cloud in CLOUDS:
            price = detail.get(f"{cloud}Price")
            if not detail.get(f"{cloud}Cloud") or price in (None, 0):
                continue
            if max_price is not None and float(price) > max_price:
                continue
            found.append(
                Offer(
                    provider=NAME,
                    id=f"{cloud}:{row['id']}",
                    gpu=str(detail.get("displayName") or row["id"]),
                    gpus=1,
                    price_per_hour=float(price),
                    where=f"{cloud} cloud",
                    details={"memory_gb": detail.get("memoryInGb")},
                )
            )
    return sorted(found, key=lambda o: o.price_per_hour)


def _split_offer(offer_id: str) -> tuple[str, str]:
    cloud, _, gpu_id = str(offer_id).partition(":")
    if cloud.lower() not in CLOUDS or not gpu_id.strip():
        raise ProviderError(
            f"a {LABEL} offer is CLOUD:GPU_TYPE (community:NVIDIA GeForce RTX 4090), "
            f"as `cloud offers` lists it, not {offer_id!r}"
        )
    return cloud.upper(), gpu_id.strip()


def find_offer(offer_id: str) -> Offer | None:
    """The GPU type in that cloud with today's price; None when RunPod no longer offers it."""
    cloud, gpu_id = _split_offer(offer_id)
    rp = _sdk()
    try:
        detail = _call("get GPU type", rp.get_gpu, gpu_id)
    except ProviderError as exc:
        if "No GPU found" in str(exc):
            return None
        raise
    price = detail.get(f"{cloud.lower()}Price")
    if not detail.get(f"{cloud.lower()}Cloud") or price in (None, 0):
        return None
    return Offer(
        provider=NAME,
        id=f"{cloud.lower()}:{gpu_id}",
        gpu=str(detail.get("displayName") or gpu_id),
        gpus=1,
        price_per_hour=float(price),
        where=f"{cloud.lower()} cloud",
        details={"memory_gb": detail.get("memoryInGb")},
    )


def _instance(row: dict[str, Any]) -> Instance:
    host, port = None, None
    for p in (row.get("runtime") or {}).get("ports") or []:
        if p.get("privatePort") == 22 and p.get("isIpPublic"):
            host, port = p.get("ip"), p.get("publicPort")
    return Instance(
        provider=NAME,
        id=str(row["id"]),
        state=str(row.get("desiredStatus") or "unknown"),
        gpu=str((row.get("machine") or {}).get("gpuDisplayName") or ""),
        price_per_hour=float(row["costPerHr"]) if row.get("costPerHr") is not None else None,
        label=str(row.get("name") or ""),
        ssh_host=host,
        ssh_port=int(port) if port else None,
    )


def create(offer_id: str, label: str) -> Instance:
    cloud, gpu_id = _split_offer(offer_id)
    rp = _sdk()
    reply = _call(
        "create pod",
        rp.create_pod,
        label,
        IMAGE,
        gpu_id,
        cloud_type=cloud,
        support_public_ip=True,
        start_ssh=True,
        ports="22/tcp",
        container_disk_in_gb=40,
        offer=str(offer_id),
    )
    if not reply or not reply.get("id"):
        raise offer_gone(LABEL, str(offer_id), "no pod was created")
    new_id = str(reply["id"])
    try:
        return status(new_id) or Instance(NAME, new_id, "CREATED", label=label)
    except ProviderError:  # it exists and must be recorded: its details can wait
        return Instance(NAME, new_id, "CREATED", label=label)


def status(instance_id: str) -> Instance | None:
    rp = _sdk()
    row = _call("get pod", rp.get_pod, str(instance_id))
    return _instance(row) if row else None


def destroy(instance_id: str) -> None:
    rp = _sdk()
    _call("terminate pod", rp.terminate_pod, str(instance_id))


def list_instances() -> list[Instance]:
    rp = _sdk()
    return [_instance(row) for row in _call("get pods", rp.get_pods) or []]
