"""Gate 4 and the run on a rented instance: `cloud dry-run`, `cloud launch` (and the shared
plumbing `cloud monitor` uses), each one `python -m trainwright ... --json` over ssh in the
project's folder there.

The instance runs the pack's own commands (installed there by `cloud setup`), so the dry run, the
detached supervisor with its out-of-memory retries and the one-run-at-a-time lock are the same code
as on a local machine; this side reads their JSON, refuses what does not look like it, records
Gate 4 in the local progress.md (with the instance it ran on) and refuses a launch that would not
finish before the instance's deadline.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from typing import Any

from trainwright import clock
from trainwright.cloud import records
from trainwright.cloud.bringup import state_dir
from trainwright.cloud.estimate import RunEstimate, from_config
from trainwright.cloud.remote import Remote, RemoteError, from_record
from trainwright.errors import TrainwrightError
from trainwright.state import gates
from trainwright.state.grimoire import Grimoire
from trainwright.state.names import check_name

SSH_FAILED = 255
NOT_FOUND = 127
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass
class Instance:
    """A project's running instance: its studio.md record and how ssh reaches it."""

    record: records.Record
    remote: Remote

    @property
    def name(self) -> str:
        return f"{self.record.provider} instance {self.record.id}"

    @property
    def where(self) -> str:
        return f"{self.name} ({self.remote.address})"

    def describe(self) -> dict[str, Any]:
        return {
            "entry": self.record.title,
            "provider": self.record.provider,
            "id": self.record.id,
            "ssh": self.remote.address,
            "folder": self.remote.folder,
            "python": self.remote.python,
        }


def instance_for(g: Grimoire, project: str) -> Instance:
    """The running instance studio.md records for `project`; a clear error without one."""
    check_name(project)
    if project not in g.projects():
        raise TrainwrightError(
            f"no training project {project!r} in {g.root} (trainwright grimoire new {project})"
        )
    live = [r for r in records.read(g) if r.running and r.project == project]
    if not live:
        raise TrainwrightError(
            f"no running instance recorded for {project!r} in studio.md: rent one with "
            f"`trainwright cloud up {project} --provider P --offer ID` (`cloud ls` lists them)"
        )
    return Instance(live[0], from_record(live[0], state_dir(g)))


def run_there(
    inst: Instance, project: str, args: list[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """`python -m trainwright ARGS` in the project's folder on the instance."""
    return run_there_python(inst, project, ["-m", "trainwright", *args], timeout)


def run_there_python(
    inst: Instance, project: str, argv: list[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """The instance's python with `argv`, in the project's folder there.

    ssh failing (exit 255), the remote python missing and a one-line trainwright error there
    each become one clear line naming the instance; exit 0 and 1 come back for the caller."""
    r = inst.remote
    python = shlex.quote(r.python)
    if r.python.startswith("~/"):  # the login's home, expanded there
        python = "~/" + shlex.quote(r.python[2:])
    command = r.in_folder(" ".join([python, *map(shlex.quote, argv)]))
    try:
        proc = r.run(command, timeout=timeout, check=False)
    except RemoteError as exc:
        raise RemoteError(f"{inst.name}: {exc}") from None
    if proc.returncode == SSH_FAILED:
        raise RemoteError(
            f"{inst.where}: ssh failed: {_last_line(proc.stderr)}; nothing was changed here "
            "(is the instance still up? `trainwright cloud ls`)"
        )
    no_pack = "No module named trainwright" in proc.stderr and not proc.stdout.strip()
    if proc.returncode == NOT_FOUND or no_pack:
        raise RemoteError(
            f"{inst.where}: {r.python} cannot run trainwright there ({_last_line(proc.stderr)}): "
            f"run `trainwright cloud setup {project}` first"
        )
    if proc.returncode not in (0, 1):
        said = _last_line(proc.stderr).removeprefix("trainwright: error: ")
        hint = (
            f"; push the project first: `trainwright cloud push {project}`"
            if "no project" in said or "grimoire new" in said
            else ""
        )
        raise RemoteError(f"on {inst.where}: {said}{hint}")
    return proc


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    line = lines[-1] if lines else "no message"
    return "".join(c if c.isprintable() else "?" for c in line)[:300]


def answer(inst: Instance, proc: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    """The JSON object a remote command printed; a clear error when it printed something else."""
    text = proc.stdout.strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        shown = _last_line(text[:200]) if text else "nothing"
        raise TrainwrightError(
            f"{inst.where}: `{what}` there did not answer with its JSON result (it printed "
            f"{shown!r}, exit {proc.returncode}); is the trainwright there this version? "
            "(`trainwright cloud setup` installs it)"
        )
    return data


# ---- Gate 4 ------------------------------------------------------------------------------------


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def dry_run(g: Grimoire, project: str, steps: int, timeout: float) -> dict[str, Any]:
    """Gate 4 on the instance, recorded here as the local dry run records it (and where it ran)."""
    from trainwright.run.dry_run_gate import LOG_NAME, SECTION

    inst = instance_for(g, project)
    args = ["dry-run", project, "--steps", str(steps), "--timeout", f"{timeout:g}", "--json"]
    proc = run_there(inst, project, args, timeout=timeout + 600)
    d = answer(inst, proc, "trainwright dry-run")
    decision, bound = d.get("decision"), d.get("bound_to")
    reasons, fixes = _strings(d.get("reasons")), _strings(d.get("fixes"))
    expected = gates.GO if proc.returncode == 0 else gates.NO_GO
    if (
        decision != expected
        or reasons is None
        or fixes is None
        or d.get("gate") != 4
        or d.get("project") != project
        or (bound is not None and not (isinstance(bound, str) and _DIGEST.match(bound)))
    ):
        raise TrainwrightError(
            f"{inst.where}: the dry run's answer does not hold together (decision "
            f"{str(decision)[:40]!r}, exit {proc.returncode}); Gate 4 was not recorded"
        )
    details = d.get("details") if isinstance(d.get("details"), dict) else {}
    failure = details.get("failure") if isinstance(details.get("failure"), dict) else {}
    kind = "none" if decision == gates.GO else failure.get("kind")
    done = details.get("steps_completed")
    record: dict[str, object] = {
        "Ran on": f"{inst.where}, folder {inst.remote.folder}",
        "Log": f"{LOG_NAME} on the instance",
        "Steps requested": steps,
        "Time limit s": timeout,
    }
    if isinstance(kind, str) and kind in _failure_kinds():
        record["Failure kind"] = kind
    if isinstance(done, int) and not isinstance(done, bool) and done >= 0:
        record["Steps completed"] = done
    reasons = [r if decision == gates.GO else f"{r} (on {inst.name})" for r in reasons]
    result = gates.GateResult(decision, reasons, bound, fixes, updates={SECTION: record})
    gates.record(g, project, 4, result)
    remote_log = details.get("log") if isinstance(details.get("log"), str) else None
    return {
        "project": project,
        "gate": 4,
        "name": gates.spec(4).name,
        "decision": decision,
        "reasons": reasons,
        "fixes": [_cloud_fix(f, project) for f in fixes],
        "bound_to": bound,
        "ran_on": inst.describe(),
        "remote_log": remote_log,
        "steps_completed": record.get("Steps completed"),
    }


def _failure_kinds() -> list[str]:
    """The failure kinds progress.md takes (the schema's list, so both sides agree)."""
    from trainwright.run.dry_run_gate import SECTION
    from trainwright.state.schema import load_schema

    props = load_schema("progress")["properties"]["sections"]["properties"][SECTION]
    return [k for k in props["properties"]["Failure kind"]["enum"] if k]


def _cloud_fix(fix: str, project: str) -> str:
    """A fix the instance printed, with the commands that run there said as cloud commands."""
    for local, remote in (
        (f"trainwright dry-run {project}", f"trainwright cloud dry-run {project}"),
        (f"trainwright env check {project}", f"trainwright cloud validate {project}"),
    ):
        fix = fix.replace(local, remote)
    return fix


# ---- launch ------------------------------------------------------------------------------------


def time_left(rec: records.Record) -> float | None:
    """Hours from now to the instance's recorded Deadline (negative once past; None: none)."""
    deadline = records.parse_stamp(rec.fields.get("Deadline"))
    if deadline is None:
        return None
    return (deadline - clock.utc_now()).total_seconds() / 3600


def deadline_problem(
    rec: records.Record, est: RunEstimate | None, project: str
) -> dict[str, Any] | None:
    """Why the run cannot finish before the deadline, or None when it can (or cannot be told)."""
    left = time_left(rec)
    if left is None:
        return None
    if left > 0 and (est is None or est.hours <= left):
        return None
    need = f"the run needs about {est.hours:.2f} h ({est.basis})" if est else "it is past"
    return {
        "hours_left": round(left, 3),
        "deadline": rec.fields.get("Deadline"),
        "run_hours": round(est.hours, 3) if est else None,
        "basis": est.basis if est else None,
        "message": (
            f"{rec.provider} instance {rec.id} has {max(left, 0):.2f} h left before its deadline "
            f"{rec.fields.get('Deadline')}, and {need}; the watchdog there ends it at the deadline"
        ),
        "fix": (
            f"pull what you need (`trainwright cloud pull {project}`), then "
            f"`trainwright cloud down {project}` and `trainwright cloud up {project} ... "
            "--max-hours H` with H above the run's hours; or `--ignore-deadline` to start a run "
            "that will be cut off (resumable from its last checkpoint)"
        ),
    }


def _translate_refusal(d: dict[str, Any], project: str) -> list[dict[str, Any]]:
    out = []
    for gate in d.get("gates") or []:
        if not isinstance(gate, dict):
            continue
        number = gate.get("gate")
        fix = {
            3: f"trainwright cloud validate {project}, then trainwright cloud push {project} "
            "(the instance reads the gate records pushed to it)",
            4: f"trainwright cloud dry-run {project}",
        }.get(number, f"{gate.get('fix')} (here), then trainwright cloud push {project}")
        out.append({**gate, "fix": fix})
    return out


def dry_run_here(g: Grimoire, project: str) -> list[dict[str, Any]]:
    """[] when this project's Gate 4 GO (from the instance) still matches the config files and
    dataset here; else why not. A config edited here after the push would train something else
    there than what the person sees."""
    gate = gates.state(g, project, 4)
    if gate["ok"]:
        return []
    state = "STALE (the config or dataset here changed after it)" if gate["stale"] else None
    return [
        {
            "gate": 4,
            "name": gate["name"],
            "state": state or gate["decision"],
            "reason": gate["reason"],
            "fix": f"trainwright cloud push {project}, then trainwright cloud dry-run {project}",
        }
    ]


def launch(
    g: Grimoire,
    project: str,
    *,
    max_retries: int = 3,
    hang_timeout: float = 1800.0,
    ignore_deadline: bool = False,
    again: bool = False,
) -> dict[str, Any]:
    """Start the run on the instance with the pack's detached supervisor there (or attach)."""
    inst = instance_for(g, project)
    base = {"project": project, "instance": inst.describe()}
    live = answer(inst, run_there(inst, project, ["monitor", project, "--json"], 120), "monitor")
    if live.get("status") != "running" and (again or live.get("status") != "complete"):
        est = from_config(g, project, str(inst.record.fields.get("GPU") or "") or None)
        problem = deadline_problem(inst.record, est, project)
        here = dry_run_here(g, project)
        if here or (problem and not ignore_deadline):
            refused = {**base, "action": "refused", "gates": here, "where": "here"}
            return {**refused, "deadline": problem if not ignore_deadline else None}
        base["deadline_note"] = (
            problem["message"]
            if problem
            else None
            if est
            else "config.md has no whole-run estimate: the time left was not compared"
        )
    args = ["launch", project, "--detach", "--json", "--max-retries", str(max_retries)]
    args += ["--hang-timeout", f"{hang_timeout:g}", *(["--again"] if again else [])]
    proc = run_there(inst, project, args, timeout=180)
    d = answer(inst, proc, "trainwright launch")
    action = d.get("action")
    if action not in ("started", "attached", "none", "refused", "failed-to-start"):
        raise TrainwrightError(
            f"{inst.where}: the launch there answered action {str(action)[:40]!r}, not one the "
            "pack knows; nothing is assumed about the run"
        )
    out = {**d, **base, "remote_log": d.get("log")}
    if isinstance(d.get("message"), str):
        again_here = f"'cloud launch {project} --again'"
        out["message"] = d["message"].replace("'launch --again'", again_here)
    if action == "refused":
        out["gates"], out["where"] = _translate_refusal(d, project), "there"
    if action == "started":
        records.update(g, inst.record.title, {"Run started": clock.iso_utc(clock.utc_now())})
    return out
