"""`cloud dry-run | launch | monitor` on a rented instance: the unit rules (deadline, money, what
a remote answer must look like) here, and the whole path over a real sshd playing the instance.
"""

from __future__ import annotations

import datetime as _dt
import json
import subprocess
import time
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_cli
from support.cloud_fakes import FakeCloud
from support.cloud_instance import image_python, pack_wheelhouse, set_instance_fields, tiny_ready
from support.cloud_project import make_project
from support.ssh_server import SSHServer, free_port, ssh_server  # noqa: F401 - a fixture
from trainwright import clock
from trainwright.cloud import records
from trainwright.cloud.estimate import RunEstimate
from trainwright.cloud.remote_monitor import money
from trainwright.cloud.remote_run import Instance, answer, deadline_problem, dry_run, instance_for
from trainwright.errors import TrainwrightError
from trainwright.state.grimoire import Grimoire


def _stamp(hours: float) -> str:
    """A time `hours` from now, taken when the test runs (not when the file is collected)."""
    return clock.iso_utc(clock.utc_now() + _dt.timedelta(hours=hours))


def _record(**fields: object) -> records.Record:
    base: dict[str, object] = {
        "Project": "demo",
        "Provider": "vast",
        "ID": "7000101",
        "Price per hour": 0.5,
        "Started": _stamp(-2),
        "Deadline": _stamp(1),
        "Status": "RUNNING",
    }
    return records.Record("Instance: vast-7000101", {**base, **fields})


def _project(tmp_path: Path, **fields: object) -> Path:
    root = tmp_path / "project"
    root.mkdir(parents=True)
    for args in (("init", "."), ("grimoire", "new", "demo")):
        assert run_cli(*args, cwd=root).returncode == 0
    rec = _record(**fields)
    records.add(Grimoire(root / "grimoire"), rec.title, rec.fields)
    return root


def test_deadline_refuses_a_run_longer_than_the_time_left() -> None:
    rec = _record(Deadline=_stamp(5 / 60))
    problem = deadline_problem(rec, RunEstimate(3.0, "config.md: about 3 h on RTX 4090"), "demo")
    assert problem is not None
    assert 0.07 < problem["hours_left"] <= 5 / 60 and problem["run_hours"] == 3.0
    assert "0.08 h left" in problem["message"] and "3.00 h" in problem["message"]
    assert "--max-hours" in problem["fix"] and "--ignore-deadline" in problem["fix"]
    assert deadline_problem(rec, RunEstimate(0.05, "x"), "demo") is None  # 3 min fits in 5


def test_deadline_past_refuses_even_without_an_estimate() -> None:
    past = _record(Deadline=_stamp(-0.5))
    problem = deadline_problem(past, None, "demo")
    assert problem is not None and problem["hours_left"] < 0 and "0.00 h left" in problem["message"]
    assert deadline_problem(_record(Deadline=_stamp(3)), None, "demo") is None
    assert deadline_problem(_record(Deadline=None), RunEstimate(9, "x"), "demo") is None


def test_money_is_price_times_hours_since_started() -> None:
    m = money(_record())
    assert m["spent_so_far"] == pytest.approx(1.0, abs=0.02)
    assert 1.99 < m["hours_so_far"] < 2.01 and 0.99 < m["hours_left"] <= 1.0
    assert money(_record(Started="yesterday"))["spent_so_far"] is None


def test_no_project_no_instance_and_no_ssh_address_are_named(tmp_path: Path) -> None:
    root = _project(tmp_path, Status="TERMINATED")
    g = Grimoire(root / "grimoire")
    with pytest.raises(TrainwrightError, match="no training project 'other'"):
        instance_for(g, "other")
    with pytest.raises(TrainwrightError, match="no running instance recorded for 'demo'"):
        instance_for(g, "demo")
    root2 = _project(tmp_path / "b")
    with pytest.raises(TrainwrightError, match="no ssh address in studio.md yet"):
        instance_for(Grimoire(root2 / "grimoire"), "demo")


def _instance(tmp_path: Path) -> tuple[Instance, Grimoire]:
    root = _project(tmp_path, SSH="root@127.0.0.1:2222", **{"Remote folder": "/srv/x"})
    g = Grimoire(root / "grimoire")
    return instance_for(g, "demo"), g


@pytest.mark.parametrize("stdout", ["", "Traceback: boom", "[1, 2]", '"GO"'])
def test_an_answer_that_is_not_a_json_object_is_one_clear_error(
    tmp_path: Path, stdout: str
) -> None:
    inst, _ = _instance(tmp_path)
    proc = subprocess.CompletedProcess([], 0, stdout, "")
    with pytest.raises(TrainwrightError, match="vast instance 7000101 .*did not answer"):
        answer(inst, proc, "trainwright dry-run")


GOOD = {
    "project": "demo",
    "gate": 4,
    "decision": "GO",
    "reasons": ["3 steps ran"],
    "fixes": [],
    "bound_to": "sha256:" + "0" * 64,
    "details": {"steps_completed": 3, "log": "/srv/x/dry-run.log"},
}


@pytest.mark.parametrize(
    "lie,rc",
    [
        ({}, 1),  # GO printed, NO-GO exit
        ({"decision": "MAYBE"}, 0),
        ({"project": "other"}, 0),
        ({"gate": 3}, 0),
        ({"reasons": "all fine"}, 0),
        ({"bound_to": "sha256:../../etc"}, 0),
    ],
)
def test_a_dry_run_answer_that_does_not_hold_together_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lie: dict, rc: int
) -> None:
    from trainwright.cloud import remote_run

    _, g = _instance(tmp_path)
    progress = g.path_for("progress", "demo")
    before = progress.read_text()
    reply = json.dumps({**GOOD, **lie})
    monkeypatch.setattr(
        remote_run, "run_there", lambda *a, **k: subprocess.CompletedProcess([], rc, reply, "")
    )
    with pytest.raises(TrainwrightError, match="does not hold together"):
        dry_run(g, "demo", 3, 60)
    assert progress.read_text() == before


@pytest.mark.parametrize(
    "rc,err",
    [(127, "sh: 1: /x/.venv/bin/python: not found"), (1, "python3: No module named trainwright")],
)
def test_an_instance_without_the_pack_says_to_run_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rc: int, err: str
) -> None:
    from trainwright.cloud.remote import Remote
    from trainwright.cloud.remote_run import run_there

    inst, _ = _instance(tmp_path)
    monkeypatch.setattr(Remote, "run", lambda *a, **k: subprocess.CompletedProcess([], rc, "", err))
    with pytest.raises(TrainwrightError, match="cloud setup demo") as info:
        run_there(inst, "demo", ["monitor", "demo", "--json"], 10)
    assert "vast instance 7000101" in str(info.value)


def test_a_refusal_there_names_the_cloud_commands() -> None:
    from trainwright.cloud.remote_run import _translate_refusal

    gates = [
        {"gate": 2, "name": "config", "fix": "trainwright gate check demo --gate 2"},
        {"gate": 3, "name": "environment", "fix": "trainwright env check demo"},
        {"gate": 4, "name": "dry run", "fix": "trainwright dry-run demo"},
        "not a gate",
    ]
    fixes = [g["fix"] for g in _translate_refusal({"gates": gates}, "demo")]
    assert fixes == [
        "trainwright gate check demo --gate 2 (here), then trainwright cloud push demo",
        "trainwright cloud validate demo, then trainwright cloud push demo (the instance reads "
        "the gate records pushed to it)",
        "trainwright cloud dry-run demo",
    ]


def test_ssh_refused_is_one_line_naming_the_instance(tmp_path: Path) -> None:
    root = _project(tmp_path, SSH=f"root@127.0.0.1:{free_port()}")
    studio = root / "grimoire" / "studio.md"
    before = studio.read_text()
    for command in ("monitor", "dry-run", "launch"):
        proc = run_cli("cloud", command, "demo", cwd=root, timeout=60)
        assert_one_line_error(proc, "vast instance 7000101", "ssh failed", "cloud ls")
    assert studio.read_text() == before
    assert not (root / "grimoire" / "training" / "demo" / "cloud").exists()


class FakeLog:
    """The instance's side of the monitor probe: a log that grows, and a run record."""

    def __init__(self, chunk: int = 1 << 20) -> None:
        self.data, self.started, self.chunk, self.calls = b"", "t1", chunk, []

    def probe(self, _inst: object, _project: str, offset: int) -> dict:
        import base64

        self.calls.append(offset)
        start = offset if 0 <= offset <= len(self.data) else 0
        part = self.data[start : start + self.chunk]
        return {
            "size": len(self.data),
            "offset": start,
            "data": base64.b64encode(part).decode(),
            "state": {"started": self.started, "status": "RUNNING"},
            "live": True,
            "checkpoints": [],
        }


def test_monitor_copy_takes_only_new_bytes_and_restarts_for_a_new_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainwright.cloud import remote_monitor as rm

    remote = FakeLog(chunk=3)
    monkeypatch.setattr(rm, "_probe", remote.probe)
    copy = rm.LocalCopy(tmp_path / "cloud")
    remote.data = b"step 1\n"
    _, start, moved = rm.fetch(None, "demo", copy)
    assert copy.log.read_bytes() == remote.data and (start, moved) == (0, 7)
    assert remote.calls == [0, 3, 6]  # three bytes a probe: three probes
    remote.data += b"step 2\n"
    remote.calls.clear()
    _, start, moved = rm.fetch(None, "demo", copy)
    assert copy.log.read_bytes() == remote.data and (start, moved) == (7, 7)
    assert remote.calls[0] == 7  # only what came after the copy's end
    remote.data, remote.started = b"new run, a longer first line\n", "t2"
    rm.fetch(None, "demo", copy)
    assert copy.log.read_bytes() == remote.data  # the copy started again, not appended
    remote.data, remote.started = b"x\n", "t3"  # shorter than the copy
    rm.fetch(None, "demo", copy)
    assert copy.log.read_bytes() == b"x\n"


def test_monitor_copy_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    from trainwright.cloud.remote_monitor import LocalCopy

    (tmp_path / "cloud").write_text("mine")
    with pytest.raises(TrainwrightError, match="move it aside"):
        LocalCopy(tmp_path / "cloud")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "cloud2").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TrainwrightError, match="a link or a file"):
        LocalCopy(tmp_path / "cloud2")
    assert (tmp_path / "cloud").read_text() == "mine"


# ---- over a real sshd ---------------------------------------------------------------------------


def _json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.fixture
def cp(tmp_path: Path, ssh_server: SSHServer):  # noqa: F811 - the fixture
    pytest.importorskip("vastai")
    with FakeCloud() as fake:
        project = make_project(tmp_path, fake, ssh=ssh_server)
        try:
            yield project
        finally:
            project.stop_watchdogs()


@pytest.mark.slow  # a real sshd, a venv built there, real training on the "instance"
def test_up_push_setup_dry_run_launch_monitor_on_the_instance(cp, tmp_path: Path) -> None:
    tiny_ready(cp.root, env=cp.env)
    wheels, base = pack_wheelhouse(tmp_path), image_python(tmp_path)
    up = _json(cp.run("cloud", "up", "demo", "--provider", "vast", "--offer", "31000222",
                      "--max-hours", "4", "--yes", "--json", timeout=120))  # fmt: skip
    assert up["SSH"] == f"root@127.0.0.1:{cp.ssh.port}"
    _json(cp.run("cloud", "push", "demo", "--json"))
    _json(cp.run("cloud", "setup", "demo", "--base-python", str(base), "--wheelhouse", str(wheels),
                 "--no-index", "--json", timeout=600))  # fmt: skip
    gate3 = _json(cp.run("cloud", "validate", "demo", "--json", TRAINWRIGHT_NVIDIA_SMI=""))
    assert gate3["decision"] == "GO", gate3["reasons"]
    _json(cp.run("cloud", "push", "demo", "--json"))  # Gate 3's record goes there too
    there = cp.instance / "grimoire" / "training" / "demo"
    here = cp.root / "grimoire" / "training" / "demo"

    # the instance reads its own copy of the dataset: this machine's is away while it runs
    # (the instance shares this filesystem, so a config naming this machine's path would not fail)
    (cp.root / "dataset").rename(cp.root / "dataset-away")
    try:
        d = _json(cp.run("cloud", "dry-run", "demo", "--json"))
    finally:
        (cp.root / "dataset-away").rename(cp.root / "dataset")
    assert d["decision"] == "GO", d
    assert d["ran_on"]["ssh"] == up["SSH"] and d["steps_completed"] >= 2
    assert d["ran_on"]["python"] == str(cp.instance / ".venv" / "bin" / "python")
    assert (there / "dry-run.log").is_file() and not (here / "dry-run.log").exists()
    progress = (here / "progress.md").read_text()
    assert "- **Ran on**: vast instance" in progress and "- **Decision**: GO" in progress
    status = _json(cp.run("gate", "status", "demo", "--json"))
    assert [x["ok"] for x in status["gates"] if x["gate"] == 4] == [True]  # same inputs here

    # the config here edited after the dry run there: refused until pushed and dry-run again
    cfg = here / "tiny.yaml"
    text = cfg.read_text()
    cfg.write_text(text + "# edited here\n")
    stale = cp.run("cloud", "launch", "demo")
    assert stale.returncode == 1 and "Gate 4 dry run (here): STALE" in stale.stdout, stale.stdout
    assert "trainwright cloud push demo, then trainwright cloud dry-run demo" in stale.stdout
    assert not (there / "run.json").exists()
    cfg.write_text(text)

    # a deadline 5 minutes away and a run of hours: refused, nothing started there
    hours = "Estimated time=about 3 h on RTX 4090 (900 steps; rough, within 2x)"
    assert cp.run("grimoire", "set", "config", "--project", "demo", hours).returncode == 0
    set_instance_fields(cp.root, {"Deadline": _stamp(5 / 60)})
    refused = cp.run("cloud", "launch", "demo")
    assert refused.returncode == 1, refused.stderr
    assert "h left before its deadline" in refused.stdout and "3.00 h" in refused.stdout
    assert "--max-hours" in refused.stdout
    assert not (there / "run.json").exists()
    set_instance_fields(cp.root, {"Deadline": up["Deadline"]})  # 4 h: room for 3

    started = _json(cp.run("cloud", "launch", "demo", "--json"))
    assert started["action"] == "started", started
    # the ssh session that started it has ended; a second launch finds it live and attaches
    again = _json(cp.run("cloud", "launch", "demo", "--json"))
    assert again["action"] == "attached" and again["pid"] == started["pid"], again
    assert "- **Run started**: " in cp.studio.read_text()

    seen_from: list[int] = []
    seen_live: list[bool] = []
    deadline = time.monotonic() + 300
    while True:
        proc = cp.run("cloud", "monitor", "demo", "--json")
        snap = _json(proc)
        seen_from.append(snap["log_bytes"]["from"])
        seen_live.append(snap["live"])
        if snap["status"] == "complete" or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert snap["status"] == "complete" and proc.returncode == 0, snap
    assert snap["step"] == snap["steps"] and snap["loss"] is not None
    assert snap["checkpoints"] == ["epoch-1", "epoch-2", "epoch-3"]
    assert len(sorted((there / "output").glob("demo-epoch-*.safetensors"))) == 3
    m = snap["money"]
    assert m["price_per_hour"] == pytest.approx(0.318) and m["spent_so_far"] >= 0.01
    assert 3.8 < m["hours_left"] <= 4.0
    assert (here / "cloud" / "train.log").read_bytes() == (there / "train.log").read_bytes()
    assert seen_live[0] and not seen_live[-1]  # running with no ssh session open, then done
    assert len(seen_from) >= 2 and max(seen_from) > 0  # later calls bring only new bytes
    human = cp.run("cloud", "monitor", "demo")
    assert human.returncode == 0 and "so far at $0.318/h" in human.stdout
    assert "cloud pull demo" in human.stdout
    progress = (here / "progress.md").read_text()
    assert "- **Status**: COMPLETE" in progress and "cloud/train.log" in progress
    done = _json(cp.run("cloud", "launch", "demo", "--json"))
    assert done["action"] == "none" and "cloud launch demo --again" in done["message"]
