"""The provider modules in-process against the fake servers: the registry, the one-line errors
(key missing or refused, no balance, offer gone, rate limit), and the run-cost arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cloud_fakes import RUNPOD_KEY, VAST_KEY, FakeCloud
from support.cloud_project import write_keys
from trainwright import cloud
from trainwright.cloud.base import ProviderError
from trainwright.cloud.estimate import billed
from trainwright.errors import TrainwrightError

pytest.importorskip("vastai")
pytest.importorskip("runpod")

RUNPOD_OFFER = "community:NVIDIA GeForce RTX 4090"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "home"
    home.mkdir()
    write_keys(home)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    with FakeCloud() as server:
        monkeypatch.setenv("VAST_URL", server.url)
        monkeypatch.setenv("RUNPOD_API_BASE_URL", server.url)
        yield server


def test_registry_finds_each_provider_module_with_the_whole_interface() -> None:
    assert cloud.names() == ["runpod", "vast"]
    for mod in cloud.all_providers():
        for fn in (
            "offers",
            "find_offer",
            "create",
            "status",
            "destroy",
            "list_instances",
            "has_key",
        ):
            assert callable(getattr(mod, fn)), (mod.NAME, fn)
        assert mod.KEY_HELP and mod.WATCHDOG_CREDENTIAL
    with pytest.raises(TrainwrightError, match="one of: runpod, vast"):
        cloud.get("lambda")


@pytest.mark.parametrize("name,offer", [("vast", "31000222"), ("runpod", RUNPOD_OFFER)])
def test_create_status_destroy_list(fake: FakeCloud, name: str, offer: str) -> None:
    mod = cloud.get(name)
    found = mod.find_offer(offer)
    assert found is not None and found.gpu == "RTX 4090"
    inst = mod.create(offer, "trainwright-demo")
    assert inst.state.lower() == "running" and inst.ssh_port
    assert [i.id for i in mod.list_instances()] == [inst.id]
    mod.destroy(inst.id)
    assert mod.status(inst.id) is None and mod.list_instances() == []


def test_vast_key_from_env_beats_the_key_file(fake: FakeCloud, monkeypatch) -> None:
    monkeypatch.setenv("VAST_API_KEY", "wrong-env-key")
    with pytest.raises(ProviderError, match="Vast.ai refused the API key") as err:
        cloud.get("vast").offers("RTX 4090")
    assert "wrong-env-key" not in str(err.value)
    monkeypatch.setenv("VAST_API_KEY", VAST_KEY)
    assert cloud.get("vast").offers("RTX 4090")


@pytest.mark.parametrize("name", ["vast", "runpod"])
def test_missing_key_says_where_it_belongs(
    fake: FakeCloud, tmp_path: Path, monkeypatch, name: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("HOME", str(empty))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(empty / ".config"))
    mod = cloud.get(name)
    assert not mod.has_key()
    with pytest.raises(ProviderError, match=f"no {mod.LABEL} API key found") as err:
        mod.offers("RTX 4090")
    assert ("vast_api_key" if name == "vast" else ".runpod/config.toml") in str(err.value)
    assert fake.calls == []  # nothing was sent without a key


@pytest.mark.parametrize("name", ["vast", "runpod"])
def test_refused_key(fake: FakeCloud, name: str) -> None:
    fake.vast_key = fake.runpod_key = "another"
    with pytest.raises(ProviderError, match="refused the API key") as err:
        cloud.get(name).offers("RTX 4090")
    assert VAST_KEY not in str(err.value) and RUNPOD_KEY not in str(err.value)


@pytest.mark.parametrize("name,offer", [("vast", "31000222"), ("runpod", RUNPOD_OFFER)])
def test_no_balance(fake: FakeCloud, name: str, offer: str) -> None:
    fake.balance = 0
    with pytest.raises(ProviderError, match="cannot pay"):
        cloud.get(name).create(offer, "trainwright-demo")
    assert fake.instances == {}


@pytest.mark.parametrize("name,offer", [("vast", "31000222"), ("runpod", RUNPOD_OFFER)])
def test_offer_gone_between_listing_and_create(fake: FakeCloud, name: str, offer: str) -> None:
    mod = cloud.get(name)
    assert mod.find_offer(offer) is not None
    fake.gone_offers.add(offer)
    with pytest.raises(ProviderError, match="no longer available"):
        mod.create(offer, "trainwright-demo")
    assert fake.instances == {}
    if name == "vast":
        assert mod.find_offer(offer) is None


@pytest.mark.parametrize("name", ["vast", "runpod"])
def test_rate_limit(fake: FakeCloud, name: str) -> None:
    fake.rate_limit = 10
    with pytest.raises(ProviderError, match="rate limiting"):
        cloud.get(name).offers("RTX 4090")


def test_vast_retries_a_single_rate_limit(fake: FakeCloud) -> None:
    fake.rate_limit = 1  # the SDK honours Retry-After and tries again
    assert cloud.get("vast").offers("RTX 4090")


@pytest.mark.parametrize("bad", ["abc", "-1", "31000222; rm -rf /"])
def test_vast_offer_id_is_a_number(fake: FakeCloud, bad: str) -> None:
    with pytest.raises(ProviderError, match="is a number"):
        cloud.get("vast").create(bad, "trainwright-demo")
    assert fake.calls == []


@pytest.mark.parametrize("bad", ["RTX 4090", "spot:NVIDIA GeForce RTX 4090", "community:"])
def test_runpod_offer_names_a_cloud_and_a_gpu_type(fake: FakeCloud, bad: str) -> None:
    with pytest.raises(ProviderError, match="CLOUD:GPU_TYPE"):
        cloud.get("runpod").create(bad, "trainwright-demo")


def test_runpod_config_that_is_not_toml(fake: FakeCloud, tmp_path: Path) -> None:
    (Path.home() / ".runpod" / "config.toml").write_text("api_key = [unclosed\n")
    with pytest.raises(ProviderError, match="is not valid TOML"):
        cloud.get("runpod").offers("RTX 4090")


def test_billed_by_the_started_minute() -> None:
    assert billed(0.6, 1.0) == 0.6
    assert billed(0.6, 1 / 60 + 1e-6) == 0.02  # a second into the next minute bills it
    assert billed(0.318, 0.0) == 0.0
