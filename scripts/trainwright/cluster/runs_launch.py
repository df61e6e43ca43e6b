"""`trainwright runs launch`: pre-flight checks, then submit what still has to run, once.

A rerun is a resume: completed runs are skipped, queued or running ones are never submitted a
second time (the scheduler is asked first, by job id and by job name), and runs that ended
without finishing are submitted again with TRAINWRIGHT_RESUME=1 so the script continues from
the last checkpoint.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from trainwright.backends import install_hint
from trainwright.cluster import inputs, lifecycle, local, runs_monitor, slurm, states
from trainwright.cluster.adapters import CONFIG_NAME, SCRIPT_NAME, adapter, batch_keys, read_config
from trainwright.cluster.dirs import run_dir
from trainwright.cluster.generate import job_name, sweep_script
from trainwright.cluster.runs_plan import Plan, PlannedRun
from trainwright.cluster.status import editing, read_status, run_entry, sync_with_plan
from trainwright.cluster.timelimit import time_minutes
from trainwright.errors import TrainwrightError


@dataclass
class Decision:
    run: PlannedRun
    action: str  # submit | resume | skip | adopt | hold (failed for a lasting reason)
    reason: str
    sweep: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"run": self.run.name, "action": self.action, "reason": self.reason}
        if self.sweep:
            out["sweep"] = self.sweep
        return out


@dataclass
class Preflight:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _writable(path: Path) -> bool:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return os.access(probe, os.W_OK | os.X_OK)


def check_config(run: PlannedRun, config_path: Path) -> list[str]:
    """Structural checks any backend needs, plus the backend's own (`cluster_problems`)."""
    problems = []
    try:
        config = read_config(config_path)
    except TrainwrightError as exc:
        return [str(exc)]
    problems += inputs.problems(run, config, config_path)
    keys = batch_keys(run.backend)
    for key in keys:
        value = config.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            problems.append(f"{config_path}: {key} is {value!r}; it must be a whole number >= 1")
    backend = adapter(run.backend)
    if hasattr(backend, "cluster_problems"):
        problems += backend.cluster_problems(config, config_path)
    out = backend.cluster_launch(run, config_path.parent, config, "python", None)
    if not _writable(out.checkpoint_dir):
        problems.append(f"run {run.name!r}: checkpoint folder {out.checkpoint_dir} is not writable")
    return problems


def can_validate(backend: str) -> bool:
    """Whether the backend has its own config validation (such as `tune validate`)."""
    return hasattr(adapter(backend), "validate")


def deep_validate(backend: str, config_path: Path) -> str | None:
    """The backend's own validation of a run config (slow: imports the trainer); None when
    well-formed."""
    mod = adapter(backend)
    ok, last = mod.validate(config_path)
    return None if ok else f"{config_path}: {getattr(mod, 'VALIDATOR', backend)}: {last}"


def missing_programs(script: str) -> list[str]:
    """What the job script's LAUNCH lines would fail to start here (sbatch passes this PATH to
    the job): a path that is not an executable file, or a bare name not on PATH when the script
    has no setup lines that could put it there. `srun` and its options are skipped."""
    lines = script.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("set -uo pipefail")), 0)
    end = next(
        (i for i, line in enumerate(lines) if i > start and line.startswith(("RUN_DIR=", "case "))),
        start,
    )
    has_setup = any(line.strip() for line in lines[start + 1 : end])
    found = []
    for line in lines:
        m = re.match(r"\s*LAUNCH=\((.*)\)\s*$", line)
        if not m:
            continue
        try:
            words = shlex.split(m[1])
        except ValueError:
            continue
        program = next((w for w in words if w != "srun" and not w.startswith("-")), "")
        if not program or "$" in program:
            continue
        if "/" in program:
            if not (os.path.isfile(program) and os.access(program, os.X_OK)):
                found.append(f"{program}, which is not an executable file here")
        elif not has_setup and not shutil.which(program):
            found.append(f"`{program}`, which is not on PATH")
    return sorted(set(found))


def preflight(
    experiment_dir: Path, plan: Plan, runs: list[PlannedRun], use_slurm: bool, validate: bool
) -> Preflight:
    pf = Preflight()
    if not use_slurm:
        pf.notes.append("sbatch is not on PATH: the runs will execute here, one after another")
    sweeps_needed = {r.sweep for r in runs if r.sweep}
    for run in runs:
        folder = run_dir(experiment_dir, run.name)
        if not folder.is_dir():
            pf.problems.append(
                f"run {run.name!r}: folder {folder} is missing (`trainwright runs setup-dirs`)"
            )
            continue
        config = folder / CONFIG_NAME
        if not config.is_file():
            pf.problems.append(
                f"run {run.name!r}: {config} is missing (`trainwright runs configs`)"
            )
        else:
            pf.problems += check_config(run, config)
            if validate and can_validate(run.backend):
                problem = deep_validate(run.backend, config)
                if problem:
                    pf.problems.append(problem)
        script = folder / SCRIPT_NAME
        if not script.is_file():
            pf.problems.append(
                f"run {run.name!r}: {script} is missing (`trainwright runs slurm-scripts`)"
            )
        else:
            pf.problems += [
                f"run {run.name!r}: {script} would start {what}: install {run.backend} there "
                f"({install_hint(adapter(run.backend))}) or render the scripts again with "
                "--python (an environment that has it) or --setup ('module load ...')"
                for what in missing_programs(script.read_text(errors="replace"))
            ]
        logs = folder / "logs"
        if not _writable(logs):
            pf.problems.append(f"run {run.name!r}: {logs} is not writable")
    for sweep in sorted(s for s in sweeps_needed if s in plan.sweeps()):
        path = sweep_script(experiment_dir, sweep)
        if use_slurm and not path.is_file():
            pf.problems.append(
                f"sweep {sweep!r}: {path} is missing (`trainwright runs slurm-scripts`)"
            )
    return pf


def decide(
    plan: Plan,
    runs: list[PlannedRun],
    data: dict[str, Any],
    live_names: dict[str, str],
    experiment_dir: Path | None = None,
    retry: bool = False,
) -> list[Decision]:
    decisions = []
    for run in runs:
        entry = data.get("runs", {}).get(run.name) or {"state": states.PLANNED}
        state = entry.get("state", states.PLANNED)
        name = job_name(plan, run.name)
        if not run.trains or state == states.SKIPPED:
            decisions.append(Decision(run, "skip", "base-model run: nothing to fine-tune"))
        elif state == states.COMPLETED:
            decisions.append(Decision(run, "skip", "already completed"))
        elif states.is_live(state):
            decisions.append(
                Decision(run, "skip", f"already {state.lower()} (job {entry.get('job_id')})")
            )
        elif name in live_names:
            decisions.append(
                Decision(run, "adopt", f"already in the queue as job {live_names[name]}")
            )
        elif state == states.PLANNED:
            decisions.append(Decision(run, "submit", "planned", run.sweep))
        elif state in states.UNFINISHED and entry.get("lasting_failure"):
            decisions.append(_after_lasting(run, entry, state, experiment_dir, retry))
        elif state in states.UNFINISHED:
            decisions.append(
                Decision(run, "resume", f"ended {state}: again, from its last checkpoint")
            )
        else:
            decisions.append(Decision(run, "skip", f"state {state}: left alone"))
    _group_sweeps(plan, decisions)
    return decisions


def _after_lasting(
    run: PlannedRun, entry: dict[str, Any], state: str, experiment_dir: Path | None, retry: bool
) -> Decision:
    """A run that failed for a reason a second try does not change (its dataset, model, config,
    a package): held until what it reads changed, or --retry says the cause was fixed elsewhere."""
    lasting = entry["lasting_failure"]
    why = f"ended {state} ({lasting.get('kind')}: {entry.get('reason') or 'see its log'})"
    if retry:
        return Decision(run, "resume", f"{why}; again because --retry says the cause is fixed")
    changed = True
    if experiment_dir is not None:
        config_path = run_dir(experiment_dir, run.name) / CONFIG_NAME
        try:
            config = read_config(config_path)
        except TrainwrightError:
            config = {}
        changed = inputs.fingerprint(run, config_path, config) != lasting.get("inputs")
    if changed:
        return Decision(run, "resume", f"{why}; again, because its config or data changed since")
    return Decision(
        run,
        "hold",
        f"{why}; not resubmitted: nothing it reads changed since, so it would fail the same way."
        " Fix the cause, then launch again (--retry if the fix was outside its config and data,"
        " e.g. an installed package)",
    )


def _group_sweeps(plan: Plan, decisions: list[Decision]) -> None:
    """A sweep goes out as one job array only when all its runs are submitted fresh together."""
    fresh = {d.run.name for d in decisions if d.action == "submit"}
    for sweep, members in plan.sweeps().items():
        whole = all(m.name in fresh for m in members)
        for d in decisions:
            if d.sweep == sweep and not whole:
                d.sweep = None


def eta(submitted: dict[str, str], time_limits: dict[str, str | None]) -> dict[str, Any]:
    """Latest end per job: expected start (squeue --start, else now) plus its time limit."""
    starts = slurm.expected_starts(submitted.values()) if submitted else {}
    ends = {}
    for run, job in submitted.items():
        limit = time_limits.get(run)
        if not limit:
            continue
        start = _parse_time(starts.get(job)) or datetime.now().astimezone()
        ends[run] = (start + timedelta(minutes=time_minutes(limit))).isoformat(timespec="minutes")
    return {"ends_by": ends, "all_done_by": max(ends.values()) if ends else None}


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).astimezone()
    except ValueError:
        return None


def launch(
    experiment_dir: Path,
    plan: Plan,
    only: tuple[str, ...] = (),
    dry_run: bool = False,
    validate: bool = False,
    force_local: bool = False,
    retry: bool = False,
) -> dict[str, Any]:
    experiment_dir = Path(experiment_dir)
    for name in only:
        plan.run(name)  # unknown names are bad input
    runs = [r for r in plan.runs if not only or r.name in only]
    read_status(experiment_dir)  # a broken status file stops everything before any check
    use_slurm = slurm.have_sbatch() and not force_local
    report: dict[str, Any] = {
        "experiment_dir": str(experiment_dir),
        "executor": "slurm" if use_slurm else "local",
        "dry_run": dry_run,
        "submitted": {},
        "events": [],
    }
    with editing(experiment_dir, timeout=120, write=not dry_run) as data:
        sync_with_plan(data, plan.experiment, plan.runs)
        if use_slurm or not dry_run:
            report["events"] = runs_monitor.refresh(
                experiment_dir, data, plan, resubmit=not dry_run
            )
        live = slurm.live_jobs() if use_slurm else {}
        live_names = {j.name: j.job_id for j in live.values() if j.name}
        decisions = decide(plan, runs, data, live_names, experiment_dir, retry)
        report["decisions"] = [d.as_dict() for d in decisions]
        todo = [d for d in decisions if d.action in ("submit", "resume")]
        pf = preflight(experiment_dir, plan, [d.run for d in todo], use_slurm, validate)
        report["preflight"] = {"problems": pf.problems, "notes": pf.notes}
        held = [d.run.name for d in decisions if d.action == "hold"]
        report["held"] = held
        if pf.problems or dry_run:
            report["ok"] = not pf.problems and not held
            return report
        for d in decisions:
            if d.action == "adopt":
                job = live_names[job_name(plan, d.run.name)]
                entry = run_entry(data, d.run.name)
                lifecycle.start_attempt(
                    entry,
                    job_id=job,
                    executor="slurm",
                    log=str(run_dir(experiment_dir, d.run.name) / "logs" / f"slurm-{job}.out"),
                    resume=False,
                    batch=lifecycle.batch_of(experiment_dir, d.run),
                )
        if use_slurm:
            _submit_all(experiment_dir, plan, todo, data, report)
        else:
            for d in todo:
                entry = run_entry(data, d.run.name)
                entry.update({"state": states.PENDING, "executor": "local", "pid": os.getpid()})
    if not use_slurm and todo:
        targets = [(d.run, d.action == "resume") for d in todo]
        report["events"] += local.run_locally(experiment_dir, targets)
        report["final"] = {
            name: e.get("state") for name, e in read_status(experiment_dir)["runs"].items()
        }
    report["ok"] = not held
    return report


def _submit_all(
    experiment_dir: Path,
    plan: Plan,
    todo: list[Decision],
    data: dict[str, Any],
    report: dict[str, Any],
) -> None:
    from trainwright.cluster.status import write_status

    done_sweeps: set[str] = set()
    limits: dict[str, str | None] = {}
    for d in todo:
        entry = run_entry(data, d.run.name)
        if d.sweep:
            if d.sweep in done_sweeps:
                continue
            members = {m.name: run_entry(data, m.name) for m in plan.sweeps()[d.sweep]}
            array = lifecycle.submit_sweep(experiment_dir, plan, d.sweep, members)
            done_sweeps.add(d.sweep)
            for name, member in members.items():
                report["submitted"][name] = member["job_id"]
                limits[name] = member.get("time_limit")
            report.setdefault("arrays", {})[d.sweep] = array
        else:
            job = lifecycle.submit_run(experiment_dir, d.run, entry, resume=d.action == "resume")
            report["submitted"][d.run.name] = job
            limits[d.run.name] = entry.get("time_limit")
        write_status(experiment_dir, data)  # each job id is on disk before the next sbatch
    report["eta"] = eta(report["submitted"], limits)
