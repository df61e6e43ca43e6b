"""`trainwright cloud` against fake provider servers, through the real vastai and runpod SDKs
(and the vastai CLI), from a `trainwright init` project root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.cloud_fakes import RUNPOD_KEY, VAST_KEY, FakeCloud
from support.cloud_project import CloudProject, make_project, set_estimate
from support.ssh_server import SSHServer, ssh_server  # noqa: F401 - a fixture
from trainwright import cloud
from trainwright.cloud.estimate import billed

pytest.importorskip("vastai")
pytest.importorskip("runpod")
pytestmark = pytest.mark.slow  # each test starts the CLI several times (the SDKs import slowly)

WATCHDOG = Path(cloud.__file__).parent / "watchdog.py"
RUNPOD_OFFER = "community:NVIDIA GeForce RTX 4090"


@pytest.fixture
def cp(tmp_path: Path, ssh_server: SSHServer):  # noqa: F811 - the fixture
    with FakeCloud() as fake:
        project = make_project(tmp_path, fake, ssh=ssh_server)
        try:
            yield project
        finally:
            project.stop_watchdogs()


def _json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _up(cp: CloudProject, *more: str, provider: str = "vast", offer: str = "31000222"):
    return cp.run(
        "cloud",
        "up",
        "demo",
        "--provider",
        provider,
        "--offer",
        offer,
        "--max-hours",
        "2",
        "--yes",
        *more,
    )


def test_offers_sorted_by_the_run_cost_from_config_estimate(cp: CloudProject) -> None:
    set_estimate(cp, "about 2.5 h on RTX 4090 (900 steps; rough, within 2x)")
    d = _json(cp.run("cloud", "offers", "--gpu", "RTX 4090", "--json"))
    assert d["estimate"]["hours"] == 2.5 and "config.md" in d["estimate"]["basis"]
    costs = [o["run_cost"] for o in d["offers"]]
    assert costs == sorted(costs) and len(costs) == 5  # 3 Vast machines + 2 RunPod clouds
    for o in d["offers"]:
        assert o["run_cost"] == billed(o["price_per_hour"], 2.5)
    assert d["offers"][0]["id"] == "31000222"  # the cheapest, $0.318/h
    assert {q["provider"] for q in d["rate_table"]["quotes"]} == {"runpod", "vast"}
    only = _json(
        cp.run(
            "cloud",
            "offers",
            "--gpu",
            "RTX 4090",
            "--provider",
            "runpod",
            "--max-price",
            "0.5",
            "--json",
        )
    )
    assert [o["id"] for o in only["offers"]] == [RUNPOD_OFFER]


def test_offers_scale_the_estimate_to_another_card(cp: CloudProject) -> None:
    set_estimate(cp, "about 2.0 h on RTX 4090 (900 steps; rough, within 2x)")
    d = _json(cp.run("cloud", "offers", "--gpu", "RTX 3090", "--provider", "vast", "--json"))
    assert d["estimate"]["hours"] > 2.0 and "scaled to RTX 3090" in d["estimate"]["basis"]
    assert [o["gpu"] for o in d["offers"]] == ["RTX 3090"]


def test_offers_without_estimate_sort_by_price_and_say_so(cp: CloudProject) -> None:
    proc = cp.run("cloud", "offers", "--gpu", "RTX 4090", "--provider", "vast")
    assert proc.returncode == 0, proc.stderr
    assert "no run estimate" in proc.stdout
    prices = [float(line.split("$")[1].split("/h")[0]) for line in proc.stdout.splitlines()[1:4]]
    assert prices == sorted(prices)


@pytest.mark.parametrize("provider,offer", [("vast", "31000222"), ("runpod", RUNPOD_OFFER)])
def test_up_ls_down_round_trip(cp: CloudProject, provider: str, offer: str) -> None:
    cp.fake.destroy_delay = 1.5  # the provider takes a while to forget it
    before = cp.studio.read_text()
    up = _up(cp, "--json", provider=provider, offer=offer)
    rec = _json(up)
    assert "at most $" in up.stderr and "deadline" in up.stderr  # the cost, beside the JSON
    assert rec["Status"] == "RUNNING" and rec["Provider"] == provider
    assert rec["not_built"] == []  # every step is built: none is named as missing
    assert rec["SSH"] == f"root@127.0.0.1:{cp.ssh.port}"  # up waited for the address
    assert rec["Watchdog"].startswith("installed (pid ")
    text = cp.studio.read_text()
    assert text.startswith(before.rstrip("\n"))  # the other parts are untouched
    assert "## Cloud instances" in text and f"### Instance: {provider}-{rec['ID']}" in text
    assert VAST_KEY not in text and RUNPOD_KEY not in text

    ls = _json(cp.run("cloud", "ls", "--json"))
    assert [(r["provider"], r["id"], r["project"]) for r in ls["running"]] == [
        (provider, str(rec["ID"]), "demo")
    ]
    start = time.monotonic()
    down = _json(cp.run("cloud", "down", "demo", "--json"))
    assert time.monotonic() - start >= 1.0  # it waited for the provider to forget it
    assert down["terminated"][0]["id"] == str(rec["ID"])
    assert cp.fake.live(provider) == {}
    after = cp.studio.read_text()
    assert "- **Status**: TERMINATED" in after and "- **Total cost**: " in after
    assert _json(cp.run("cloud", "ls", "--json"))["running"] == []
    assert VAST_KEY not in after + down.get("note", "")


def test_down_of_an_instance_the_provider_already_destroyed(cp: CloudProject) -> None:
    rec = _json(_up(cp, "--json"))
    cp.fake.destroy(str(rec["ID"]))
    down = _json(cp.run("cloud", "down", "demo", "--json"))
    assert down["terminated"][0]["id"] == str(rec["ID"])
    assert ("DELETE", f"/api/v0/instances/{rec['ID']}/") not in cp.fake.calls


def test_down_that_the_provider_does_not_confirm_keeps_running(cp: CloudProject) -> None:
    _json(_up(cp, "--json"))
    cp.fake.destroy_delay = 30
    before = cp.studio.read_text()
    proc = cp.run("cloud", "down", "demo", "--wait", "1")
    assert proc.returncode == 2 and "still lists instance" in proc.stderr
    assert cp.studio.read_text() == before  # still RUNNING: nothing claims it is gone


def test_second_up_for_a_project_is_refused_and_shows_the_first(cp: CloudProject) -> None:
    first = _json(_up(cp, "--json"))
    proc = _up(cp, provider="runpod", offer=RUNPOD_OFFER)
    assert proc.returncode == 2
    assert f"vast instance {first['ID']}" in proc.stderr and "cloud down demo" in proc.stderr
    assert len(cp.fake.instances) == 1


def test_ls_keeps_and_reports_a_hand_written_unknown_instance(cp: CloudProject) -> None:
    with cp.studio.open("a") as fh:
        fh.write(
            "\n## Cloud instances\n\n### Instance: vast-999\n- **Project**: old\n"
            "- **Provider**: vast\n- **ID**: 999\n- **Status**: RUNNING\n"
        )
    before = cp.studio.read_text()
    proc = cp.run("cloud", "ls", "--json")
    d = _json(proc)
    assert [u["entry"] for u in d["unknown_to_provider"]] == ["Instance: vast-999"]
    assert cp.studio.read_text() == before
    human = cp.run("cloud", "ls")
    assert "vast-999" in human.stdout and "does not know" in human.stdout


def test_ls_lists_a_pack_instance_missing_from_studio_and_skips_others(cp: CloudProject) -> None:
    _json(_up(cp, "--json"))
    cp.studio.write_text(cp.studio.read_text().split("## Cloud instances")[0])
    for label in ("trainwright-lost", "someone-else"):
        cp.fake.instances[str(len(cp.fake.instances) + 1)] = {
            **cp.fake.instances[next(iter(cp.fake.instances))],
            "label": label,
            "id": len(cp.fake.instances) + 1,
        }
    d = _json(cp.run("cloud", "ls", "--provider", "vast", "--json"))
    labels = sorted(r["label"] for r in d["running"])
    assert labels == ["trainwright-demo", "trainwright-lost"]
    assert all(not r["recorded"] for r in d["running"])


def test_the_vast_cli_itself_talks_to_the_fake(cp: CloudProject) -> None:
    """The CLI asks for the current user and the GPU name list; the fake answers both."""
    exe = Path(sys.executable).with_name("vastai")
    args = [str(exe), "--url", cp.fake.url, "--api-key", VAST_KEY, "--raw"]
    user = subprocess.run(
        [*args, "show", "user"], capture_output=True, text=True, env=cp.env, timeout=60
    )
    assert user.returncode == 0, user.stderr
    assert json.loads(user.stdout)["username"] == "trainwright-test"
    found = subprocess.run(
        [*args, "search", "offers", "gpu_name=RTX_4090"],
        capture_output=True,
        text=True,
        env=cp.env,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    assert {o["gpu_name"] for o in json.loads(found.stdout)} == {"RTX 4090"}
    assert ("GET", "/api/v0/users/current") in cp.fake.calls


def _watchdog(cp: CloudProject, tmp: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONTAINER_", "RUNPOD_"))}
    return subprocess.run(
        [sys.executable, str(WATCHDOG)],
        env={
            **base,
            "TW_DEADLINE": str(time.time() + 2),
            "TW_LOG": str(tmp / "wd.log"),
            "TW_POWEROFF": f"touch {tmp / 'powered-off'}",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp,
    )


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["vast", "runpod"])
def test_watchdog_destroys_the_instance_at_the_deadline(
    cp: CloudProject, tmp_path: Path, provider: str
) -> None:
    offer = "31000222" if provider == "vast" else RUNPOD_OFFER
    rec = _json(_up(cp, "--json", provider=provider, offer=offer))
    iid = str(rec["ID"])
    creds = (
        {"CONTAINER_ID": iid, "CONTAINER_API_KEY": VAST_KEY, "VAST_URL": cp.fake.url}
        if provider == "vast"
        else {
            "RUNPOD_POD_ID": iid,
            "RUNPOD_API_KEY": RUNPOD_KEY,
            "RUNPOD_API_BASE_URL": cp.fake.url,
        }
    )
    start = time.time()
    proc = _watchdog(cp, tmp_path, TW_PROVIDER=provider, **creds)
    assert proc.returncode == 0, proc.stderr
    assert time.time() - start >= 1.5  # not before the deadline
    assert cp.fake.live(provider) == {}
    log = (tmp_path / "wd.log").read_text()
    assert "destroyed" in log and VAST_KEY not in log and RUNPOD_KEY not in log
    assert not (tmp_path / "powered-off").exists()


@pytest.mark.slow
def test_watchdog_powers_off_without_a_working_credential(cp: CloudProject, tmp_path: Path) -> None:
    proc = _watchdog(
        cp,
        tmp_path,
        TW_PROVIDER="vast",
        TW_RETRIES="1",
        CONTAINER_ID="123",
        CONTAINER_API_KEY="wrong",
        VAST_URL=cp.fake.url,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "powered-off").exists()
    log = (tmp_path / "wd.log").read_text()
    assert "HTTP 401" in log and "storage" in log and "wrong" not in log.split("HTTP")[0]
    nocred = tmp_path / "none"
    nocred.mkdir()
    assert _watchdog(cp, nocred, TW_PROVIDER="runpod").returncode == 0
    assert (nocred / "powered-off").exists()


@pytest.mark.parametrize("answer,rented", [("n", False), ("y", True)])
def test_up_asks_the_person_at_the_terminal(cp: CloudProject, answer: str, rented: bool) -> None:
    import pty

    main, child = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainwright",
            "cloud",
            "up",
            "demo",
            "--provider",
            "vast",
            "--offer",
            "31000222",
            "--max-hours",
            "1",
        ],
        cwd=cp.root,
        env=cp.env,
        stdin=child,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(child)
    os.write(main, f"{answer}\n".encode())
    out, err = proc.communicate(timeout=60)
    os.close(main)
    assert "start it?" in err and "at most $" in out
    assert proc.returncode == (0 if rented else 2), err
    assert bool(cp.fake.instances) is rented
    assert ("### Instance: vast-" in cp.studio.read_text()) is rented


def test_two_ups_at_once_rent_one_instance(cp: CloudProject) -> None:
    args = [
        sys.executable,
        "-m",
        "trainwright",
        "cloud",
        "up",
        "demo",
        "--provider",
        "vast",
        "--offer",
        "31000222",
        "--max-hours",
        "1",
        "--yes",
    ]
    procs = [
        subprocess.Popen(
            args,
            cwd=cp.root,
            env=cp.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    assert "already has a running instance" in next(err for rc, err in results if rc == 2)
    assert len(cp.fake.instances) == 1
    assert cp.studio.read_text().count("### Instance: vast-") == 1


def test_ls_without_any_key_says_nobody_was_asked(cp: CloudProject) -> None:
    (cp.home / ".config" / "vastai" / "vast_api_key").unlink()
    (cp.home / ".runpod" / "config.toml").unlink()
    proc = cp.run("cloud", "ls")
    assert proc.returncode == 0 and "no provider was asked" in proc.stdout
    assert cp.fake.calls == []
