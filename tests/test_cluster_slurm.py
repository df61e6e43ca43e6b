"""The runs commands against the real single-node SLURM cluster of the test session.

The trainer here is a small bash script standing in for one (it prints its arguments, then
sleeps, fails or succeeds as a file in its folder says): what is under test is the sbatch
script, the submission, the polling and the status file. test_cluster_tiny.py runs the real
tiny trainer through the same path.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from helpers import assert_one_line_error, run_cli
from support.slurm_cluster import SlurmCluster
from trainwright.backends.tiny_model.data import write_example_dataset
from trainwright.cluster import slurm, states

pytestmark = pytest.mark.slurm

FAKE_TRAINER = """\
#!/bin/bash
# Stands in for a trainer: ./fail makes it exit 3, ./sleep makes it run that many seconds.
echo "fake trainer args: $*"
if [ -f sleep ]; then sleep "$(cat sleep)"; fi
if [ -f fail ]; then echo "fake trainer: failing as asked" >&2; exit 3; fi
echo "fake trainer: done"
"""


def plan_text(runs: list[str], sweep: str = "") -> str:
    rows = "\n".join(f"| {r} | bundled | lora | data | cpu | {sweep} |" for r in runs)
    return (
        "# Runs plan\n\n- **Backend**: tiny\n\n"
        "| Run | Base model | Method | Dataset | GPUs | Sweep |\n|---|---|---|---|---|---|\n"
        f"{rows}\n"
    )


def prepare(
    root: Path,
    cluster: SlurmCluster,
    runs: list[str],
    *,
    name: str = "exp",
    sweep: str = "",
    **kw: str,
) -> Path:
    exp = root / name
    exp.mkdir()
    (exp / "runs_plan.md").write_text(plan_text(runs, sweep))
    write_example_dataset(exp / "data", count=2, size=32)  # pre-flight reads it, as the trainer
    trainer = root / "fake-trainer.sh"
    trainer.write_text(FAKE_TRAINER)
    trainer.chmod(0o755)
    options = {"--python": str(trainer), "--mem": "100M", "--cpus": "1", "--time": "5"}
    options.update(kw)
    flat = [x for pair in options.items() for x in pair]
    for args in (["plan"], ["setup-dirs"], ["configs"], ["slurm-scripts", *flat]):
        proc = run_cli("runs", *args, str(exp), env=cluster.env)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return exp


def launch(exp: Path, cluster: SlurmCluster, *args: str) -> dict:
    proc = run_cli("runs", "launch", str(exp), "--json", *args, env=cluster.env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def follow(exp: Path, cluster: SlurmCluster) -> dict:
    proc = run_cli(
        "runs", "monitor", str(exp), "--follow", "--max-interval", "2", "--json", env=cluster.env
    )
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def status(exp: Path) -> dict:
    return yaml.safe_load((exp / "runs_status.yaml").read_text())["runs"]


def queued_names(cluster: SlurmCluster) -> list[str]:
    res = cluster.run(["squeue", "-h", "-r", "-o", "%j"])
    return res.stdout.split("\n")


def test_failed_run_resumes_on_relaunch_completed_one_is_skipped(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    exp = prepare(tmp_path, slurm_cluster, ["ok", "flaky"])
    (exp / "flaky" / "fail").write_text("")
    first = launch(exp, slurm_cluster)
    assert sorted(first["submitted"]) == ["flaky", "ok"]
    assert first["eta"]["all_done_by"]
    report = follow(exp, slurm_cluster)
    runs = {r["run"]: r for r in report["runs"]}
    assert runs["ok"]["state"] == "COMPLETED"
    assert runs["flaky"]["state"] == "FAILED"
    assert "exit code 3" in runs["flaky"]["reason"]

    (exp / "flaky" / "fail").unlink()
    (exp / "flaky" / "checkpoints").mkdir()
    (exp / "flaky" / "checkpoints" / "flaky-epoch-0001.safetensors").write_text("")
    second = launch(exp, slurm_cluster)
    actions = {d["run"]: d["action"] for d in second["decisions"]}
    assert actions == {"ok": "skip", "flaky": "resume"}
    assert list(second["submitted"]) == ["flaky"]
    follow(exp, slurm_cluster)
    st = status(exp)
    assert st["ok"]["job_id"] == first["submitted"]["ok"]
    flaky = st["flaky"]
    assert flaky["state"] == "COMPLETED" and flaky["resume"] is True
    assert flaky["attempts"][0]["state"] == "FAILED"
    assert flaky["attempts"][0]["job_id"] == first["submitted"]["flaky"]
    log = Path(flaky["log"]).read_text()
    assert "trainwright: resuming from the last checkpoint" in log
    assert "finetune.yaml --resume latest" in log


def test_a_second_launch_never_submits_a_queued_run_again(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    exp = prepare(tmp_path, slurm_cluster, ["slow"], name="again")
    (exp / "slow" / "sleep").write_text("4")
    first = launch(exp, slurm_cluster)
    job = first["submitted"]["slow"]
    # The status file is lost between the two launches: the job name still finds the job.
    (exp / "runs_status.yaml").unlink()
    second = launch(exp, slurm_cluster)
    assert second["submitted"] == {}
    assert second["decisions"][0]["action"] == "adopt"
    third = launch(exp, slurm_cluster)
    assert third["submitted"] == {} and third["decisions"][0]["action"] == "skip"
    assert queued_names(slurm_cluster).count("again/slow") == 1
    assert status(exp)["slow"]["job_id"] == job
    follow(exp, slurm_cluster)
    assert status(exp)["slow"]["state"] == "COMPLETED"


def test_unknown_partition_is_refused_with_sbatchs_words_and_nothing_recorded(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    exp = prepare(tmp_path, slurm_cluster, ["a"], name="nopart", **{"--partition": "no-such-part"})
    before = (exp / "runs_status.yaml").read_text()
    proc = run_cli("runs", "launch", str(exp), env=slurm_cluster.env)
    assert_one_line_error(proc, "sbatch refused", "invalid partition", "sinfo -s", "--partition")
    assert (exp / "runs_status.yaml").read_text() == before
    assert status(exp)["a"]["state"] == "PLANNED"
    assert "nopart/a" not in queued_names(slurm_cluster)


def test_quotes_spaces_and_substitutions_in_names_reach_slurm_verbatim(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    run = "$(touch pwned-run) `touch pwned-tick` it's"
    exp = prepare(tmp_path, slurm_cluster, [run], name="exp 'q' $(touch pwned-exp)")
    out = launch(exp, slurm_cluster)
    job = out["submitted"][run]
    record = slurm_cluster.wait_job(job, timeout=60, poll=0.5)
    assert record["JobState"] == "COMPLETED", record
    assert record["JobName"] == f"exp 'q' $(touch pwned-exp)/{run}"
    assert record["WorkDir"] == str(exp / run)
    assert not list(tmp_path.rglob("pwned-*")) and not list(Path.cwd().glob("pwned-*"))
    follow(exp, slurm_cluster)
    assert status(exp)[run]["state"] == "COMPLETED"


def test_a_sweep_goes_as_one_job_array(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    exp = prepare(tmp_path, slurm_cluster, ["s0", "s1", "s2"], name="sweep", sweep="lr")
    (exp / "s1" / "fail").write_text("")
    out = launch(exp, slurm_cluster)
    array = out["arrays"]["lr"]
    assert out["submitted"] == {"s0": f"{array}_0", "s1": f"{array}_1", "s2": f"{array}_2"}
    follow(exp, slurm_cluster)
    st = status(exp)
    assert [st[r]["state"] for r in ("s0", "s1", "s2")] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert Path(st["s2"]["log"]) == exp / "sweeps" / "logs" / f"lr-{array}_2.out"
    assert "fake trainer: done" in Path(st["s2"]["log"]).read_text()
    assert "failing as asked" in Path(st["s1"]["log"]).read_text()
    # A failed member goes again on its own, from its own script.
    (exp / "s1" / "fail").unlink()
    again = launch(exp, slurm_cluster)
    assert list(again["submitted"]) == ["s1"] and "_" not in again["submitted"]["s1"]
    follow(exp, slurm_cluster)
    assert status(exp)["s1"]["state"] == "COMPLETED"


def test_time_limit_signal_requeues_the_job_and_a_restart_resumes(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    exp = prepare(tmp_path, slurm_cluster, ["long"], name="requeue")
    (exp / "long" / "sleep").write_text("30")
    (exp / "long" / "checkpoints").mkdir()
    (exp / "long" / "checkpoints" / "long-epoch-0001.safetensors").write_text("")
    job = launch(exp, slurm_cluster)["submitted"]["long"]
    log = exp / "long" / "logs" / f"slurm-{job}.out"
    _wait(lambda: "fake trainer args" in _read(log), "the job to start")
    # What SLURM does 90 s before the time limit (--signal=B:USR2@90), done now.
    res = slurm_cluster.run(["scancel", "--signal=USR2", "--batch", job])
    assert res.returncode == 0, res.stderr
    _wait(
        lambda: (lambda r: (r.get("Restarts"), r.get("JobState")) == ("1", "PENDING"))(
            slurm_cluster.job(job)
        ),
        "the requeue",
    )
    assert "trainwright: time limit near: requeueing job" in log.read_text()
    # SLURM holds a requeued job back for its credential lifetime (120 s by default) before it
    # starts again; the restart itself is the same script with SLURM_RESTART_COUNT set.
    slurm_cluster.run(["scancel", job])
    (exp / "long" / "sleep").write_text("0")
    env = {**slurm_cluster.env, "SLURM_RESTART_COUNT": "1", "SLURM_JOB_ID": job}
    restart = subprocess.run(
        ["bash", str(exp / "long" / "finetune.slurm")], capture_output=True, text=True, env=env
    )
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert f"(job {job}, attempt 1)" in restart.stdout
    assert "trainwright: resuming from the last checkpoint" in restart.stdout
    assert "finetune.yaml --resume latest" in restart.stdout


def test_jobs_no_longer_in_squeue_are_found_by_scontrol_and_the_jobcomp_file(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    exp = prepare(tmp_path, slurm_cluster, ["x", "y"], name="poll")
    (exp / "y" / "fail").write_text("")
    out = launch(exp, slurm_cluster)
    ids = set(out["submitted"].values())
    for job in ids:
        slurm_cluster.wait_job(job, timeout=60, poll=0.5)
    env_keys = ("SLURM_CONF", "PATH")
    with pytest.MonkeyPatch.context() as mp:
        for key in env_keys:
            mp.setenv(key, slurm_cluster.env[key])
        found = slurm.poll(ids)
        assert {found[j].source for j in ids} == {"scontrol"}  # no accounting here: no sacct
        comp = slurm._jobcomp(ids)
    x, y = out["submitted"]["x"], out["submitted"]["y"]
    assert (found[x].state, found[y].state) == (states.COMPLETED, states.FAILED)
    assert found[y].exit_code == "3:0"
    assert (comp[x].state, comp[y].state) == (states.COMPLETED, states.FAILED)
    assert comp[y].source == "jobcomp"


def test_sacct_output_is_read_where_accounting_exists() -> None:
    text = "41|COMPLETED|0:0|2025-01-01T10:00:00|2025-01-01T11:00:00\n42_3|OUT_OF_ME+|0:125|a|b\n"
    found = slurm.parse_sacct(text, {"41", "42_3", "43"})
    assert found["41"].state == "COMPLETED" and found["41"].end == "2025-01-01T11:00:00"
    assert found["42_3"].state == "OUT_OF_MEMORY" and found["42_3"].exit_code == "0:125"
    assert "43" not in found


@pytest.mark.parametrize(
    "raw,state",
    [("CANCELLED by 0", "CANCELLED"), ("running", "RUNNING"), ("NODE_FAIL", "NODE_FAIL")],
)
def test_state_names_are_normalised(raw: str, state: str) -> None:
    assert states.normalize(raw) == state


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _wait(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")
