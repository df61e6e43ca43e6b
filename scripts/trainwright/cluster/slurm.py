"""Talking to SLURM: submit with `sbatch --parsable`, poll every job in one batched call.

Polling order: `squeue` (live jobs), then `sacct` when the cluster keeps accounting, else
`scontrol show job` (ended jobs stay there for MinJobAge) and the jobcomp file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainwright.cluster import states
from trainwright.errors import TrainwrightError

TIMEOUT_S = 60
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_:/]*=")


class SubmitError(TrainwrightError):
    """sbatch refused a script; the message carries sbatch's own words."""


@dataclass
class JobInfo:
    job_id: str
    state: str
    exit_code: str | None = None
    reason: str | None = None
    start: str | None = None
    end: str | None = None
    source: str = "squeue"
    name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def have_sbatch() -> bool:
    return shutil.which("sbatch") is not None


def _run(args: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(args[0])
    if exe is None:
        raise TrainwrightError(f"{args[0]} is not on PATH")
    try:
        return subprocess.run(
            [exe, *args[1:]],
            capture_output=True,
            text=True,
            errors="replace",  # a scheduler's stray bytes must not crash the poll
            timeout=TIMEOUT_S,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TrainwrightError(
            f"{args[0]} did not answer within {TIMEOUT_S} s; is slurmctld up? (`sinfo`)"
        ) from None


def parse_parsable(stdout: str) -> str:
    """`sbatch --parsable` prints `<id>` or `<id>;<cluster>`."""
    first = stdout.strip().splitlines()[0] if stdout.strip() else ""
    job_id = first.split(";")[0].strip()
    if not job_id.isdigit():
        raise SubmitError(f"sbatch printed {stdout.strip()!r}, not a job id")
    return job_id


def submit(script: Path, extra: Sequence[str] = (), export: dict[str, str] | None = None) -> str:
    """Submit `script` from its folder; return the job id. sbatch's errors are kept verbatim."""
    args = ["sbatch", "--parsable"]
    if export:
        args.append("--export=" + ",".join(["ALL", *(f"{k}={v}" for k, v in export.items())]))
    args += [*extra, str(script)]
    res = _run(args, cwd=script.parent)
    if res.returncode != 0:
        said = " ".join((res.stderr or res.stdout).split()) or f"exit code {res.returncode}"
        raise SubmitError(f"sbatch refused {script}: {said} ({advice(said)})")
    return parse_parsable(res.stdout)


def cancel(job_id: str) -> None:
    """scancel one job; TrainwrightError when SLURM refuses."""
    res = _run(["scancel", job_id])
    if res.returncode != 0:
        raise TrainwrightError(f"scancel {job_id} failed: {' '.join(res.stderr.split())}")


def advice(sbatch_error: str) -> str:
    low = sbatch_error.lower()
    if "partition" in low:
        return (
            "list the partitions with `sinfo -s`, then render again with "
            "`trainwright runs slurm-scripts --partition NAME`"
        )
    if "account" in low or "qos" in low:
        return "check your accounts with `sacctmgr show assoc user=$USER` and pass --account"
    if "gres" in low or "gpu" in low:
        return "this partition may have no GPUs of that kind: check `sinfo -o '%P %G'`"
    if "memory" in low or "mem" in low:
        return "ask for less memory with --mem, or pick a partition with bigger nodes"
    if "time limit" in low or "time" in low:
        return "ask for less time with --time, or pick a partition with a longer limit"
    return "fix the option it names and render the scripts again"


def parse_records(text: str) -> list[dict[str, str]]:
    """`scontrol show job -o` or jobcomp lines: `Key=value ...`, values may hold spaces."""
    out = []
    for line in text.splitlines():
        fields: dict[str, str] = {}
        key = None
        for token in line.split():
            if _KEY.match(token):
                key, _, value = token.partition("=")
                fields[key] = value
            elif key is not None:
                fields[key] += " " + token
        if "JobId" in fields:
            out.append(fields)
    return out


def record_id(rec: dict[str, str]) -> str:
    """Array tasks are known by `<array job>_<task>`, the id sbatch gave and squeue shows."""
    array, task = rec.get("ArrayJobId"), rec.get("ArrayTaskId")
    if array and task and task.isdigit():
        return f"{array}_{task}"
    return rec["JobId"]


def live_jobs() -> dict[str, JobInfo]:
    """Every queued or running job of this user, by id (array tasks one by one), with its name."""
    res = _run(["squeue", "-h", "-r", "--me", "-o", "%i|%T|%r|%S|%j"])
    if res.returncode != 0:
        raise TrainwrightError(f"squeue failed: {' '.join(res.stderr.split())}")
    found = {}
    for line in res.stdout.splitlines():
        parts = line.rstrip("\n").split("|", 4)
        if len(parts) < 5:
            continue
        job_id, state, reason, start, name = parts
        found[job_id] = JobInfo(
            job_id,
            states.normalize(state),
            None,
            None if reason in ("None", "") else reason,
            None if start in ("N/A", "") else start,
            name=name,
        )
    return found


def _sacct(ids: set[str]) -> dict[str, JobInfo] | None:
    """None when the cluster keeps no accounting (no slurmdbd)."""
    if not shutil.which("sacct"):
        return None
    res = _run(
        ["sacct", "-n", "-P", "-X", "-o", "JobID,State,ExitCode,Start,End", "-j", ",".join(ids)]
    )
    if res.returncode != 0 or "accounting storage is disabled" in (res.stderr + res.stdout):
        return None
    return parse_sacct(res.stdout, ids)


def parse_sacct(stdout: str, ids: set[str]) -> dict[str, JobInfo]:
    """`sacct -n -P -X -o JobID,State,ExitCode,Start,End` lines for the wanted ids."""
    found = {}
    for line in stdout.splitlines():
        parts = line.split("|")
        if len(parts) >= 5 and parts[0] in ids:
            found[parts[0]] = JobInfo(
                parts[0], states.normalize(parts[1]), parts[2], None, parts[3], parts[4], "sacct"
            )
    return found


def _from_record(rec: dict[str, str], source: str) -> JobInfo:
    reason = rec.get("Reason")
    return JobInfo(
        record_id(rec),
        states.normalize(rec.get("JobState", "UNKNOWN")),
        rec.get("ExitCode"),
        None if reason in (None, "None") else reason,
        rec.get("StartTime"),
        rec.get("EndTime"),
        source,
    )


def _scontrol(ids: set[str]) -> dict[str, JobInfo]:
    res = _run(["scontrol", "show", "job", "-o"])
    if res.returncode != 0:
        return {}
    found = {}
    for rec in parse_records(res.stdout):
        info = _from_record(rec, "scontrol")
        if info.job_id in ids:
            found[info.job_id] = info
    return found


def jobcomp_file() -> Path | None:
    res = _run(["scontrol", "show", "config"])
    if res.returncode != 0:
        return None
    conf = {}
    for line in res.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            conf[key.strip()] = value.strip()
    if conf.get("JobCompType") != "jobcomp/filetxt" or not conf.get("JobCompLoc"):
        return None
    return Path(conf["JobCompLoc"])


def _jobcomp(ids: set[str]) -> dict[str, JobInfo]:
    path = jobcomp_file()
    if path is None:
        return {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    found = {}
    for rec in parse_records(text):  # later lines win: a requeued job ends more than once
        info = _from_record(rec, "jobcomp")
        if info.job_id in ids:
            found[info.job_id] = info
    return found


def poll(job_ids: Iterable[str]) -> dict[str, JobInfo]:
    """The state of every job in `job_ids`, with as few scheduler calls as possible."""
    wanted = {j for j in job_ids if j}
    if not wanted:
        return {}
    found = {k: v for k, v in live_jobs().items() if k in wanted}
    rest = wanted - set(found)
    if rest:
        acct = _sacct(rest)
        if acct is not None:
            found.update(acct)
        else:
            found.update(_scontrol(rest))
            rest = wanted - set(found)
            if rest:
                found.update(_jobcomp(rest))
    for job_id in wanted - set(found):
        found[job_id] = JobInfo(job_id, states.LOST, reason="SLURM no longer knows this job")
    return found


def expected_starts(job_ids: Iterable[str]) -> dict[str, str]:
    """`squeue --start`: when the scheduler expects each pending job to start (if it says)."""
    ids = [j for j in job_ids if j]
    if not ids or not shutil.which("squeue"):
        return {}
    res = _run(["squeue", "-h", "-r", "--start", "--me", "-o", "%i|%S"])
    if res.returncode != 0:
        return {}
    out = {}
    for line in res.stdout.splitlines():
        job, _, start = line.strip().partition("|")
        if job in ids and start and start not in ("N/A", "(null)"):
            out[job] = start
    return out
