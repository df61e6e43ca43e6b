"""The instance side of `trainwright cloud`: up waits for ssh and installs the watchdog; validate,
push, setup and pull. The rented machine is this one, reached over a real sshd on loopback; the
provider is the fake server, through the real SDKs; the working folder is the project root."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.cloud_fakes import RUNPOD_KEY, VAST_KEY, FakeCloud
from support.cloud_instance import image_python, pack_wheelhouse
from support.cloud_project import CloudProject, make_project
from support.ssh_server import SSHServer, free_port, ssh_server  # noqa: F401 - a fixture
from trainwright import cloud
from trainwright.cloud.bringup import await_address, check_folder
from trainwright.cloud.deploy import _stats
from trainwright.cloud.remote import parse_address
from trainwright.errors import TrainwrightError

WATCHDOG = Path(cloud.__file__).parent / "watchdog.py"
RUNPOD_OFFER = "community:NVIDIA GeForce RTX 4090"
OFFERS = {"vast": "31000222", "runpod": RUNPOD_OFFER}


@pytest.fixture
def cp(tmp_path: Path, ssh_server: SSHServer):  # noqa: F811 - the fixture
    pytest.importorskip("vastai")
    pytest.importorskip("runpod")
    with FakeCloud() as fake:
        project = make_project(tmp_path, fake, ssh=ssh_server)
        try:
            yield project
        finally:
            project.stop_watchdogs()


def _up(
    cp: CloudProject, *more: str, provider: str = "vast", **env: str
) -> subprocess.CompletedProcess:
    return cp.run(
        "cloud", "up", "demo", "--provider", provider, "--offer", OFFERS[provider],
        "--yes", *more, timeout=120, **env,
    )  # fmt: skip


def _json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _container_env(cp: CloudProject, provider: str, iid: str) -> Path:
    """The environment the provider gives the instance's first process (read by the watchdog)."""
    path = cp.root.parent / "container-environ"
    pairs = (
        {"CONTAINER_ID": iid, "CONTAINER_API_KEY": VAST_KEY}
        if provider == "vast"
        else {"RUNPOD_POD_ID": iid, "RUNPOD_API_KEY": RUNPOD_KEY}
    )
    path.write_bytes(b"\0".join(f"{k}={v}".encode() for k, v in pairs.items()) + b"\0")
    return path


def _wait_for(what, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if what():
            return True
        time.sleep(0.3)
    return bool(what())


# ---- up: ssh and the watchdog -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["vast", "runpod"])
def test_up_waits_for_ssh_then_arms_the_watchdog(cp: CloudProject, provider: str) -> None:
    cp.fake.ssh_delay = 2.0  # the instance loads before it reports an address
    start = time.monotonic()
    rec = _json(_up(cp, "--max-hours", "2", "--json", provider=provider))
    assert time.monotonic() - start >= 2.0
    assert rec["SSH"] == f"root@127.0.0.1:{cp.ssh.port}"
    pid = int(rec["Watchdog"].split("pid ")[1].split(",")[0])
    os.kill(pid, 0)  # alive, after the ssh session that started it ended
    assert os.getsid(pid) != os.getsid(os.getpid())  # its own session: no hangup reaches it
    text = cp.studio.read_text()
    assert f"- **SSH**: root@127.0.0.1:{cp.ssh.port}" in text
    assert f"- **Remote folder**: {cp.instance}" in text
    assert f"installed (pid {pid}, deadline {rec['Deadline']}" in text
    log = (cp.instance / "trainwright-watchdog.log").read_text()
    assert "armed: " + provider in log
    environ = Path(f"/proc/{pid}/environ").read_bytes().decode()
    assert f"TW_PROVIDER={provider}" in environ and cp.fake.url in environ
    assert VAST_KEY not in environ and RUNPOD_KEY not in environ  # the key never travels


@pytest.mark.slow
def test_up_when_ssh_never_answers_says_it_still_costs_money(cp: CloudProject) -> None:
    cp.fake.ssh = ("127.0.0.1", free_port())  # nothing listens there
    proc = _up(cp, "--max-hours", "1", "--wait-ssh", "3")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "still RUNNING and costing" in proc.stderr and "cloud down demo" in proc.stderr
    assert len(cp.fake.live("vast")) == 1  # not destroyed behind the person's back
    text = cp.studio.read_text()
    assert "- **Status**: RUNNING" in text and "NOT installed: ssh to root@127.0.0.1" in text
    down = cp.run("cloud", "down", "demo")
    assert down.returncode == 0, down.stderr
    assert cp.fake.live("vast") == {}


@pytest.mark.slow
def test_up_when_the_provider_never_reports_an_address(cp: CloudProject) -> None:
    cp.fake.ssh_delay = 3600
    proc = _up(cp, "--max-hours", "1", "--wait-ssh", "2", provider="runpod")
    assert proc.returncode == 2 and "reported no ssh address within 2 s" in proc.stderr
    assert "NOT installed" in cp.studio.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["vast", "runpod"])
def test_watchdog_from_up_destroys_the_instance_at_the_deadline(
    cp: CloudProject, provider: str
) -> None:
    where = str(cp.root.parent / "container-environ")  # the provider fills it in below
    rec = _json(_up(cp, "--max-hours", "0.005", "--json", provider=provider, TW_ENV_FILES=where))
    _container_env(cp, provider, str(rec["ID"]))  # 18 s deadline; up has exited, nobody helps
    assert _wait_for(lambda: cp.fake.live(provider) == {}, 60), cp.instance.joinpath(
        "trainwright-watchdog.log"
    ).read_text()
    log = (cp.instance / "trainwright-watchdog.log").read_text()
    assert "deadline reached: destroyed" in log
    assert not (cp.root.parent / "powered-off").exists()


@pytest.mark.slow
def test_watchdog_from_up_destroys_once_the_run_there_ended_and_idled(cp: CloudProject) -> None:
    where = str(cp.root.parent / "container-environ")
    rec = _json(_up(cp, "--max-hours", "2", "--idle-minutes", "0.05", "--json", TW_ENV_FILES=where))
    _container_env(cp, "vast", str(rec["ID"]))
    run_dir = cp.instance / "grimoire" / "training" / "demo"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"status": "RUNNING", "attempt": 1}))
    time.sleep(5)  # a live run, however quiet, is left alone
    assert len(cp.fake.live("vast")) == 1
    (run_dir / "run.json").write_text(
        json.dumps({"status": "COMPLETE", "ended": "2026-12-06T01:00:00Z"})
    )
    assert _wait_for(lambda: cp.fake.live("vast") == {}, 30)
    log = (cp.instance / "trainwright-watchdog.log").read_text()
    assert "run ended and idle for" in log and "destroyed" in log


@pytest.mark.slow
def test_watchdog_without_a_credential_powers_off(cp: CloudProject) -> None:
    _json(_up(cp, "--max-hours", "0.002", "--json"))  # 7 s; no container environment anywhere
    marker = cp.root.parent / "powered-off"
    assert _wait_for(marker.exists, 60)
    assert "storage" in (cp.instance / "trainwright-watchdog.log").read_text()
    assert len(cp.fake.live("vast")) == 1  # powered off, not destroyed: the log says storage bills


def _run_watchdog(tmp: Path, state: dict | None, **env: str) -> subprocess.CompletedProcess:
    run_dir = tmp / "grimoire" / "training" / "demo"
    run_dir.mkdir(parents=True, exist_ok=True)
    if state is not None:
        (run_dir / "run.json").write_text(json.dumps(state))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONTAINER_", "RUNPOD_"))}
    return subprocess.run(
        [sys.executable, str(WATCHDOG)],
        env={
            **base,
            "TW_LOG": str(tmp / "wd.log"),
            "TW_POWEROFF": f"touch {tmp / 'powered-off'}",
            "TW_RUN_STATE": str(run_dir / "run.json"),
            "TW_WATCH": str(run_dir),
            "TW_IDLE_MINUTES": "0.05",  # 3 s
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp,
    )


@pytest.mark.slow
def test_watchdog_idle_trigger_fires_once_the_run_ended(cp: CloudProject, tmp_path: Path) -> None:
    rec = _json(_up(cp, "--max-hours", "2", "--json"))
    iid = str(rec["ID"])
    cp.stop_watchdogs()  # this test runs its own, with a short idle time
    env_file = _container_env(cp, "vast", iid)
    ended = {"status": "COMPLETE", "ended": "2026-01-01T00:00:00Z"}
    start = time.time()
    proc = _run_watchdog(
        tmp_path / "ended", ended, TW_DEADLINE=str(time.time() + 50), TW_PROVIDER="vast",
        TW_ENV_FILES=str(env_file), VAST_URL=cp.fake.url,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert time.time() - start < 30  # long before the deadline
    log = (tmp_path / "ended" / "wd.log").read_text()
    assert "run ended and idle for" in log and "destroyed" in log
    assert cp.fake.live("vast") == {}


@pytest.mark.slow
def test_watchdog_idle_trigger_waits_while_the_run_is_live(tmp_path: Path) -> None:
    running = {"status": "RUNNING", "attempt": 1}
    start = time.time()
    proc = _run_watchdog(tmp_path, running, TW_DEADLINE=str(time.time() + 6), TW_PROVIDER="vast")
    assert proc.returncode == 0, proc.stderr
    assert time.time() - start >= 5
    log = (tmp_path / "wd.log").read_text()
    assert "deadline reached" in log and "idle for" not in log
    assert (tmp_path / "powered-off").exists()  # no credential here: the fallback


# ---- push ---------------------------------------------------------------------------------------


def _with_dataset(cp: CloudProject, files: dict[str, bytes]) -> Path:
    data = cp.root / "data" / "demo"
    data.mkdir(parents=True)
    for name, body in files.items():
        (data / name).write_bytes(body)
    intent = cp.root / "grimoire" / "training" / "demo" / "intent.md"
    text = intent.read_text().replace(
        "- **Dataset folder**:\n", "- **Dataset folder**: data/demo\n"
    )
    intent.write_text(text)
    return data


@pytest.mark.slow
def test_push_sends_changes_only_and_deletes_nothing_there(cp: CloudProject) -> None:
    _with_dataset(cp, {f"img{i}.png": os.urandom(20_000) for i in range(3)})
    _json(_up(cp, "--max-hours", "2", "--json"))
    first = _json(cp.run("cloud", "push", "demo", "--json"))
    there = cp.instance
    assert (there / "grimoire" / "studio.md").is_file()  # a first copy; the records stay here
    for rel in ("data/demo/img0.png", "grimoire/training/demo/config.md", "grimoire/eye.md"):
        assert _sha(there / rel) == _sha(cp.root / rel), rel
    assert (there / "resources" / "training" / "presets.yaml").is_file()
    assert first["files_transferred"] >= 5
    (there / "data" / "demo" / "theirs.txt").write_text("made on the instance")
    second = _json(cp.run("cloud", "push", "demo", "--json"))
    assert second["files_transferred"] == 0 and second["changed"] == [], second
    assert (there / "data" / "demo" / "theirs.txt").read_text() == "made on the instance"
    (cp.root / "data" / "demo" / "img1.png").write_bytes(os.urandom(20_000))
    third = _json(cp.run("cloud", "push", "demo", "--json"))
    assert third["changed"] == ["data/demo/img1.png"], third
    run_wrote = there / "grimoire" / "training" / "demo" / "progress.md"
    run_wrote.write_text(run_wrote.read_text() + "\nwritten by the run there\n")
    fourth = _json(cp.run("cloud", "push", "demo", "--json"))
    assert fourth["newer_there"] == ["grimoire/training/demo/progress.md"], fourth
    assert run_wrote.read_text().endswith("written by the run there\n")  # not overwritten
    assert "- **Pushed**: " in cp.studio.read_text()


@pytest.mark.slow
def test_push_interrupted_half_way_resumes(cp: CloudProject) -> None:
    big = os.urandom(6_000_000)
    _with_dataset(cp, {"big.bin": big})
    _json(_up(cp, "--max-hours", "2", "--json"))
    slow = subprocess.Popen(
        [sys.executable, "-m", "trainwright", "cloud", "push", "demo"],
        cwd=cp.root,
        env={**cp.env, "TRAINWRIGHT_RSYNC_OPTS": "--bwlimit=800"},  # 800 kB/s: about 7 s
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    partial = cp.instance / "data" / "demo" / "big.bin"
    assert _wait_for(lambda: any(cp.instance.rglob(".big.bin.*")) or partial.exists(), 30)
    time.sleep(2.0)
    os.killpg(slow.pid, signal.SIGINT)  # Ctrl-C half way
    slow.communicate(timeout=30)
    assert _wait_for(partial.exists, 10)  # --partial kept what came
    assert 0 < partial.stat().st_size < len(big)
    again = _json(cp.run("cloud", "push", "demo", "--json"))
    assert _sha(partial) == hashlib.sha256(big).hexdigest()
    assert again["matched_bytes"] > 0  # the partial file was reused, not sent again


def _set_dataset(cp: CloudProject, value: str) -> None:
    proc = cp.run("grimoire", "set", "intent", "--project", "demo", f"Dataset folder={value}")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_push_refuses_this_machines_paths_and_copies_an_outside_dataset(
    cp: CloudProject, tmp_path: Path
) -> None:
    """The copy there lives in another folder: a path of this machine inside the project would
    not be found there, so push names the fix and sends nothing; a dataset outside the project
    keeps its absolute path (the configs name it so) and is copied to that path there."""
    data = _with_dataset(cp, {"a.png": os.urandom(5_000)})
    _json(_up(cp, "--max-hours", "2", "--json"))
    _set_dataset(cp, str(data))  # typed absolute, inside the project
    refused = cp.run("cloud", "push", "demo")
    assert refused.returncode == 2 and "nothing pushed" in refused.stderr, refused.stderr
    assert "'Dataset folder=data/demo'" in refused.stderr, refused.stderr
    assert not (cp.instance / "grimoire").exists()

    _set_dataset(cp, "data/demo")
    cfg = cp.root / "grimoire" / "training" / "demo" / "hand.yaml"
    cfg.write_text(f"dataset: {cp.root / 'data' / 'demo'}\n")
    refused = cp.run("cloud", "push", "demo")
    assert refused.returncode == 2 and "hand.yaml names files by this machine" in refused.stderr
    cfg.unlink()

    outside = tmp_path / "elsewhere" / "cats"
    outside.mkdir(parents=True)
    (outside / "c.png").write_bytes(os.urandom(5_000))
    before = _sha(outside / "c.png")
    _set_dataset(cp, str(outside))
    pushed = _json(cp.run("cloud", "push", "demo", "--json"))
    assert str(outside.resolve()) in pushed["paths"], pushed
    assert f"- **Remote dataset**: {outside.resolve()}" in cp.studio.read_text()
    assert _sha(outside / "c.png") == before  # here the instance shares this disk: untouched


def test_path_problems_reads_the_config_folder_and_intent(tmp_path: Path) -> None:
    from trainwright.cloud.deploy import path_problems
    from trainwright.state.grimoire import Grimoire

    root = tmp_path / "proj"
    root.mkdir()
    for args in (("init", "."), ("grimoire", "new", "demo")):
        subprocess.run([sys.executable, "-m", "trainwright", *args], cwd=root, check=True,
                       capture_output=True)  # fmt: skip
    g = Grimoire(root / "grimoire")
    assert path_problems(g, "demo") == []
    folder = g.project_dir("demo")
    (folder / "config").mkdir()
    (folder / "config" / "multidatabackend.json").write_text(f'["{root}/data"]')
    (folder / "tiny.yaml.20261206T000000Z.bak").write_text(f"dataset: {root}/data\n")
    (folder / "notes.txt").write_text(f"{root}/data\n")
    (folder / "far.yaml").write_text("dataset: /srv/shared/data\n")  # outside: kept absolute
    problems = path_problems(g, "demo")
    assert len(problems) == 1 and "config/multidatabackend.json" in problems[0], problems


# ---- setup, validate, pull ---------------------------------------------------------------------


@pytest.mark.slow
def test_setup_validate_pull_over_ssh(cp: CloudProject, tmp_path: Path) -> None:
    config = cp.root / "grimoire" / "training" / "demo" / "config.md"
    config.write_text(config.read_text().replace("- **Backend**:\n", "- **Backend**: tiny\n"))
    wheelhouse = pack_wheelhouse(tmp_path)
    base = image_python(tmp_path)
    _json(_up(cp, "--max-hours", "2", "--json"))
    _json(cp.run("cloud", "push", "demo", "--json"))
    setup = _json(
        cp.run(
            "cloud",
            "setup",
            "demo",
            "--base-python",
            str(base),
            "--wheelhouse",
            str(wheelhouse),
            "--no-index",
            "--json",
            timeout=600,
        )  # fmt: skip
    )
    python = Path(setup["python"])
    assert python == cp.instance / ".venv" / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import trainwright, torch; print(trainwright.__file__)"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert str(cp.instance / ".venv") in where.stdout  # the wheel's copy, not the editable one
    assert setup["backend_requirements"] == [f".wheelhouse/{setup['wheel']}[torch]"]
    assert f"- **Remote python**: {python}" in cp.studio.read_text()

    val = cp.run("cloud", "validate", "demo", "--json", TRAINWRIGHT_NVIDIA_SMI="")
    out = json.loads(val.stdout)
    assert val.returncode == (0 if out["decision"] == "GO" else 1), val.stderr
    assert out["decision"] == "GO", out["reasons"]
    env_md = (cp.root / "grimoire" / "training" / "demo" / "environment.md").read_text()
    assert "vast instance" in env_md and f"127.0.0.1:{cp.ssh.port}" in env_md

    run_there = cp.instance / "grimoire" / "training" / "demo"
    (run_there / "checkpoints").mkdir(parents=True, exist_ok=True)
    lora = os.urandom(300_000)
    (run_there / "checkpoints" / "demo-epoch-0001.safetensors").write_bytes(lora)
    (run_there / "train.log").write_text("tiny: step 5/5 loss 0.1\n")
    pulled = _json(cp.run("cloud", "pull", "demo", "--json"))
    here = cp.root / "grimoire" / "training" / "demo"
    assert (
        _sha(here / "checkpoints" / "demo-epoch-0001.safetensors")
        == hashlib.sha256(lora).hexdigest()
    )
    assert "checkpoints/demo-epoch-0001.safetensors" in pulled["verified"]
    assert "train.log" in pulled["verified"]
    assert "- **Pulled**: " in cp.studio.read_text()

    cp.fake.destroy(next(iter(cp.fake.live("vast"))))  # the watchdog (or anyone) destroyed it
    gone_port = free_port()  # and its address no longer answers
    cp.studio.write_text(cp.studio.read_text().replace(f":{cp.ssh.port}", f":{gone_port}"))
    gone = cp.run("cloud", "pull", "demo")
    assert (
        gone.returncode == 2 and "is gone" in gone.stderr and "after the last pull" in gone.stderr
    )
    assert "- **Lost**: " in cp.studio.read_text()


@pytest.mark.slow
def test_pull_never_pulled_says_everything_is_lost(cp: CloudProject) -> None:
    _json(_up(cp, "--max-hours", "2", "--json"))
    _json(cp.run("cloud", "down", "demo", "--json"))
    proc = cp.run("cloud", "pull", "demo")
    assert proc.returncode == 2 and "never pulled" in proc.stderr, proc.stderr
    assert "never pulled" in cp.studio.read_text()


# ---- units ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "-oProxyCommand=touch /tmp/x@x:22",
        "-oProxyCommand@x:22",
        "root@-oProxyCommand=x:22",
        "root@host:0",
        "root@host",
        "root@host:22;reboot",
    ],
)
def test_hostile_or_garbled_ssh_address_is_refused(bad: str) -> None:
    with pytest.raises(TrainwrightError, match="not an ssh address"):
        parse_address(bad)


def test_a_hostile_address_from_the_provider_never_reaches_ssh() -> None:
    class Mod:
        @staticmethod
        def status(_iid: str):
            from trainwright.cloud.base import Instance

            return Instance("vast", "1", "running", ssh_host="-oProxyCommand=x", ssh_port=22)

    with pytest.raises(TrainwrightError, match="not an ssh address"):
        await_address(Mod, "1", 0.1, sleep=lambda _s: None)


@pytest.mark.parametrize("bad", ["../up", "-rf", "a b", "$(reboot)", "x/../../y", "", "~/x"])
def test_remote_folder_must_be_a_plain_path(bad: str) -> None:
    with pytest.raises(TrainwrightError, match="not a folder for the instance"):
        check_folder(bad)
    assert check_folder("/workspace/demo") == "/workspace/demo"


def test_rsync_stats_are_read() -> None:
    text = (
        ">f+++++++++ data/a.png\n.d..t...... data/\n<f.st...... b.txt\n"
        "Number of regular files transferred: 2\nTotal bytes sent: 1,234\n"
        "Literal data: 1,000 bytes\nMatched data: 5,000 bytes\n"
    )
    s = _stats(text)
    assert s["files_transferred"] == 2 and s["bytes_sent"] == 1234
    assert s["matched_bytes"] == 5000 and s["changed"] == ["data/a.png", "b.txt"]
    assert _stats("data/c.png is newer\n")["newer_there"] == ["data/c.png"]


def test_a_first_copy_that_would_replace_foreign_files_is_refused(tmp_path: Path) -> None:
    """The dry run push makes before the first copy of an outside dataset, read from real rsync
    between two folders: a file there that differs and is older would be replaced (refused); a
    new file, an identical one and one newer there (--update keeps it) are not."""
    from trainwright.cloud.deploy import PARTIAL_DIR, RSYNC, refuse_foreign

    src, dst = tmp_path / "here", tmp_path / "there"
    src.mkdir()
    dst.mkdir()
    for name, here, there, age in (
        ("new.png", b"n", None, 0),
        ("same.png", b"s", b"s", 0),
        ("theirs.png", b"mine", b"their own", 3600),  # older there: rsync would replace it
        ("newer.png", b"mine", b"newer there", -3600),  # newer there: --update keeps it
    ):
        (src / name).write_bytes(here)
        if there is not None:
            (dst / name).write_bytes(there)
            t = time.time() - age
            os.utime(dst / name, (t, t))
    look = subprocess.run(
        [*RSYNC, "--stats", "--itemize-changes", "--info=skip1", "--dry-run",
         f"--partial-dir={PARTIAL_DIR}", f"{src}/", str(dst)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = _stats(look.stdout)
    assert found["replaced"] == ["theirs.png"] and "newer.png" in found["newer_there"]
    assert sorted(found["changed"]) == ["new.png", "theirs.png"]
    with pytest.raises(TrainwrightError, match=r"different files at /data/cats .*theirs\.png"):
        refuse_foreign("/data/cats", found["replaced"], "10.0.0.2:22")
    refuse_foreign("/data/cats", [], "10.0.0.2:22")  # nothing of theirs in the way
    assert (dst / "theirs.png").read_bytes() == b"their own"  # a dry run changed nothing


def test_watchdog_reads_the_container_environment(tmp_path: Path, monkeypatch) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("tw_watchdog", WATCHDOG)
    assert spec and spec.loader
    wd = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wd)
    environ = tmp_path / "environ"
    environ.write_bytes(b"PATH=/bin\0CONTAINER_API_KEY=k-1\0")
    exported = tmp_path / "rp_environment"
    exported.write_text("export RUNPOD_POD_ID='pod-9'\n")
    monkeypatch.delenv("CONTAINER_API_KEY", raising=False)
    monkeypatch.delenv("RUNPOD_POD_ID", raising=False)
    monkeypatch.setenv("TW_ENV_FILES", f"{tmp_path / 'missing'}:{environ}:{exported}")
    assert wd.setting("CONTAINER_API_KEY") == "k-1"
    assert wd.setting("RUNPOD_POD_ID") == "pod-9"
    assert wd.setting("NOPE") is None
    monkeypatch.setenv("CONTAINER_API_KEY", "from-env")
    assert wd.setting("CONTAINER_API_KEY") == "from-env"


def test_vast_address_is_read_as_its_cli_reads_it() -> None:
    from trainwright.cloud.vast import _ssh

    both = {
        "public_ipaddr": "198.51.100.20",
        "ports": {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "41022"}]},
        "ssh_host": "ssh5.vast.ai",
        "ssh_port": 22345,
    }
    assert _ssh(both) == ("198.51.100.20", 41022)  # direct first, as `vastai ssh-url`
    assert _ssh({**both, "ports": {}}) == ("ssh5.vast.ai", 22345)  # else the proxy
    assert _ssh({"ports": None, "ssh_host": None, "ssh_port": None}) == (None, None)  # loading
