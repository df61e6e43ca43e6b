"""The commands of /train Phases 8-10: env check (Gate 3), dry-run (Gate 4), launch, stop,
monitor, checkpoints. Gate 3 and 4 go through trainwright.state.gates, so they record exactly
what `trainwright gate check NAME --gate 3|4` records."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from trainwright.choices import LazyChoice, log_format_names
from trainwright.errors import TrainwrightError
from trainwright.numeric import Float, Int
from trainwright.output import emit, json_option, wants_json
from trainwright.run.supervisor_options import dry_run_options, supervisor_options
from trainwright.state.commands import grimoire_from


def _gate_out(project: str, number: int, result: Any) -> dict[str, Any]:
    from trainwright.state import gates

    return {
        "project": project,
        "gate": number,
        "name": gates.spec(number).name,
        "decision": result.decision,
        "reasons": result.reasons,
        "fixes": result.fixes,
        "bound_to": result.binding,
        "details": result.details,
    }


@click.group("env")
def env_group() -> None:
    """Gate 3: is this machine ready to train (GPU, driver, CUDA, PyTorch, backend, disk)?"""


@env_group.command("check")
@click.argument("project", required=False)
@click.option(
    "--backend",
    help="Trainer to check for, by name or alias (default: config.md's Backend).",
)
@click.option("--model-size", type=Float(0, 100_000), help="Base model size in GB (disk estimate).")
@click.option(
    "--dataset-size", type=Int(0, 100_000_000), help="Number of training images (disk estimate)."
)
@click.option(
    "--ssh",
    "host",
    metavar="HOST",
    help="Check this machine over ssh instead (HOST or USER@HOST; trainwright need not be "
    "installed there, python3 should be).",
)
@click.option(
    "--ssh-option",
    "ssh_opts",
    multiple=True,
    metavar="OPT",
    help="Extra ssh arguments, e.g. '-p 2222' or '-i ~/.ssh/key' (repeatable; also read from "
    "TRAINWRIGHT_SSH_OPTS).",
)
@click.option(
    "--remote-python",
    default="python3",
    show_default=True,
    help="With --ssh: the Python on HOST that trains (a venv's bin/python).",
)
@click.option(
    "--remote-dir",
    metavar="PATH",
    help="With --ssh: the folder on HOST whose free disk counts (default: the home folder).",
)
@json_option
@click.pass_context
def env_check_cmd(
    ctx: click.Context,
    project: str | None,
    backend: str | None,
    model_size: float | None,
    dataset_size: int | None,
    host: str | None,
    ssh_opts: tuple[str, ...],
    remote_python: str,
    remote_dir: str | None,
    as_json: bool,
) -> int:
    """Check GPUs (nvidia-smi or NVML), driver and CUDA, the PyTorch build against the
    compatibility matrix, Python, the backend's install, free VRAM and free disk.

    With PROJECT this is Gate 3: the backend and VRAM estimate come from config.md, the dataset
    from intent.md, and the result is written to environment.md and status.md (bound to a hash
    of the facts, so a driver or PyTorch change makes the GO stale). Without PROJECT it only
    reports. Safe to rerun. Exit 0 GO, 1 NO-GO.

    With --ssh HOST the same checks run on HOST: a small probe goes over
    `ssh -o BatchMode=yes -- HOST`, gathers the raw facts there and they are judged here by the
    same rules. A failed ssh (unreachable, key refused, timeout) is a NO-GO naming the host.
    With PROJECT, environment.md records the host under "Checked on".
    """
    import os
    from dataclasses import asdict

    from trainwright.hardware import env_check, remote_probe
    from trainwright.hardware.env_gate import backend_name

    target = None
    if host is not None:
        target = remote_probe.Target(
            remote_probe.check_host(host),
            remote_probe.ssh_options(ssh_opts, dict(os.environ)),
            remote_probe.check_python(remote_python),
            remote_dir,
        )
    elif ssh_opts or remote_dir or remote_python != "python3":
        raise TrainwrightError("--ssh-option, --remote-python and --remote-dir need --ssh HOST")
    name = backend_name(backend) if backend else None
    if project is None:
        needs = env_check.Needs(name, model_gb=model_size, dataset_images=dataset_size)
        try:
            facts = (
                remote_probe.gather(target, name) if target else env_check.gather(name, Path.cwd())
            )
        except remote_probe.SSHFailure as exc:
            assert target is not None
            finding = remote_probe.ssh_finding(target, str(exc))
            out = {
                "project": None,
                "host": target.host,
                "decision": "NO-GO",
                "backend": name,
                "facts": None,
                "problems": [asdict(finding)],
                "warnings": [],
                "findings": [asdict(finding)],
            }
            lines = [f"  FAIL {finding.text}", f"       fix: {finding.fix}"]
            emit(out, as_json, lambda d: _env_human(d, lines))
            return 1
        report = env_check.evaluate(facts, needs)
        out = {"project": None, "host": target.host if target else None, **report.as_dict()}
        emit(out, as_json, lambda d: _env_human(d, env_check.summary_lines(report)))
        return 0 if report.decision == "GO" else 1
    from trainwright.state import gates

    g = grimoire_from(ctx)
    g.project_dir(project)
    if not g.path_for("environment", project).exists():
        raise TrainwrightError(
            f"project '{project}' has no environment.md: start it with "
            f"'trainwright grimoire new {project}'"
        )
    if name:
        _, config = g.read("config", project)
        recorded = backend_name(config["sections"][""].get("Backend"))
        if recorded and recorded != name:
            raise TrainwrightError(
                f"config.md of '{project}' uses backend {recorded}, not {name}: drop --backend "
                "or change the config (then Gate 2 again)"
            )
    req: dict[str, object] = {}
    if model_size is not None:
        req["Model size GB"] = model_size
    if dataset_size is not None:
        req["Dataset images"] = dataset_size
    if req:
        g.update("environment", {"Requirements": req}, project)
    if target is None:
        result = gates.check(g, project, 3)
    else:
        from trainwright.hardware import env_gate

        result = env_gate.check(g, project, target)
        gates.record(g, project, 3, result)
    out = {**_gate_out(project, 3, result), "host": target.host if target else None}
    lines = []
    for f in result.details.get("findings", []):
        mark = {"ok": "ok  ", "warning": "warn", "error": "FAIL"}[f["severity"]]
        lines.append(f"  {mark} {f['text']}")
        if f["fix"] and f["severity"] != "ok":
            lines.append(f"       fix: {f['fix']}")
    emit(out, as_json, lambda d: _env_human(d, lines or [f"  - {r}" for r in d["reasons"]]))
    return 0 if result.decision == "GO" else 1


def _env_human(d: dict[str, Any], lines: list[str]) -> str:
    who = f" for {d['project']}" if d.get("project") else ""
    who += f" on {d['host']} (over ssh)" if d.get("host") else ""
    head = f"Environment{who}: {d['decision']}"
    if d.get("project"):
        head += f"  (recorded in environment.md; Gate 3 {d['decision']})"
    return "\n".join([head, *lines])


@click.command("dry-run")
@click.argument("project")
@dry_run_options()
@json_option
@click.pass_context
def dry_run_cmd(ctx: click.Context, project: str, steps: int, timeout: float, as_json: bool) -> int:
    """Gate 4: run the configured backend for 2-5 real training steps (no checkpoints saved).

    GO when the model loads, the data is read and at least 2 steps complete. A failure is
    named in plain words (model load, dataset/captions, out-of-memory with the batch to try,
    CUDA/driver mismatch, missing package, hang) with its fix. The output is kept in
    dry-run.log; the decision goes to progress.md and status.md. Exit 0 GO, 1 NO-GO.
    """
    from trainwright.run.dry_run_gate import SECTION
    from trainwright.state import gates

    g = grimoire_from(ctx)
    g.project_dir(project)
    if not g.path_for("progress", project).exists():
        raise TrainwrightError(
            f"project '{project}' has no progress.md: start it with "
            f"'trainwright grimoire new {project}'"
        )
    g.update("progress", {SECTION: {"Steps requested": steps, "Time limit s": timeout}}, project)
    result = gates.check(g, project, 4)
    out = _gate_out(project, 4, result)

    def human(d: dict[str, Any]) -> str:
        verdict = "passed" if d["decision"] == "GO" else "failed"
        lines = [f"Dry run {verdict} for {project} (Gate 4 {d['decision']})"]
        lines += [f"  - {r}" for r in d["reasons"]]
        lines += [f"  fix: {f}" for f in d["fixes"]]
        if d["details"].get("log"):
            lines.append(f"  log: {d['details']['log']}")
        return "\n".join(lines)

    emit(out, as_json, human)
    return 0 if result.decision == "GO" else 1


def _follow_run(g: Any, project: str) -> int:
    from trainwright.run.launch import require_project
    from trainwright.run.monitor import follow_log, refresh_progress

    files = require_project(g, project)
    click.echo(f"following {files.log} (Ctrl+C detaches; the run goes on)")
    try:
        follow_log(files.log, click.echo, None, stop=lambda: not files.is_live())
    except KeyboardInterrupt:
        click.echo(
            f"\ndetached; the run goes on. Reattach: trainwright launch {project}, "
            f"or: trainwright monitor {project} --follow"
        )
        return 0
    snap = refresh_progress(g, project)
    click.echo(_monitor_human(snap))
    return 0 if snap["status"] == "complete" else 1


@click.command("launch")
@click.argument("project")
@supervisor_options()
@click.option("--detach", is_flag=True, help="Start and return at once (the run goes on).")
@click.option(
    "--again",
    is_flag=True,
    help="Train a new run after a finished one (old checkpoints are moved aside).",
)
@json_option
@click.pass_context
def launch_cmd(
    ctx: click.Context,
    project: str,
    max_retries: int,
    hang_timeout: float,
    detach: bool,
    again: bool,
    as_json: bool,
) -> int:
    """Start training PROJECT, only when Gates 1-4 are GO and none is stale.

    The trainer runs under a detached supervisor (closing the terminal does not stop it), its
    output goes to train.log, and an out-of-memory failure is retried with half the batch (and
    twice the gradient accumulation), resuming from the last checkpoint. Running launch again
    attaches to the live run instead of starting a second one. Without --detach or --json it
    follows the log until the run ends. Exit 1 when refused or the run failed.
    """
    from trainwright.run import launch

    g = grimoire_from(ctx)
    out = launch.start(g, project, max_retries=max_retries, hang_timeout=hang_timeout, again=again)
    action = out["action"]
    if action == "refused":
        emit(out, as_json, _refusal_human)
        return 1
    if action == "failed-to-start":
        emit(out, as_json, lambda d: f"the run could not start: {d['message']}")
        return 1
    if wants_json(as_json) or detach or action == "none":
        emit(out, as_json, _launch_human)
        return 0
    click.echo(_launch_human(out))
    return _follow_run(g, project)


def _refusal_human(d: dict[str, Any]) -> str:
    lines = [
        f"Launch refused for {d['project']}: training needs all four gates GO, "
        "current, with no overrides."
    ]
    for gate in d["gates"]:
        lines.append(f"  Gate {gate['gate']} {gate['name']}: {gate['state']}")
        if gate["reason"]:
            lines.append(f"      why: {gate['reason']}")
        lines.append(f"      fix: {gate['fix']}")
    return "\n".join(lines)


def _launch_human(d: dict[str, Any]) -> str:
    if d["action"] == "attached":
        return f"{d['project']} is already training (pid {d.get('pid')}); attaching to {d['log']}"
    if d["action"] == "none":
        return f"{d['project']}: {d['message']}"
    lines = [
        f"started {d['project']} on {d['backend']} (supervisor pid {d['pid']}, batch "
        f"{d['batch']}){', resuming from the last checkpoint' if d['resume'] else ''}"
    ]
    if d.get("estimated_time"):
        lines.append(f"  estimated time (config.md): {d['estimated_time']}")
    if d.get("checkpoints_moved_to"):
        lines.append(f"  the previous checkpoints were moved to {d['checkpoints_moved_to']}")
    lines.append(f"  log: {d['log']}")
    lines.append(
        f"  watch: trainwright monitor {d['project']} --follow; "
        f"stop: trainwright stop {d['project']}"
    )
    return "\n".join(lines)


@click.command("stop")
@click.argument("project")
@json_option
@click.pass_context
def stop_cmd(ctx: click.Context, project: str, as_json: bool) -> None:
    """Stop PROJECT's live run (the trainer is asked to stop; logs and checkpoints stay).
    A later 'trainwright launch' resumes from the last checkpoint."""
    from trainwright.run.launch import stop

    out = stop(grimoire_from(ctx), project)
    emit(out, as_json, lambda d: f"{d['project']}: {d['message']}")


def _monitor_human(d: dict[str, Any]) -> str:
    def fmt(x: Any) -> str:
        return "?" if x is None else str(x)

    from trainwright.run.monitor import duration

    who = d.get("project") or d.get("log") or ""
    lines = [f"{who}: {d['status']} ({d['format']} log)"]
    if d["epochs"] or d["epoch"]:
        lines.append(f"  epoch    {fmt(d['epoch'])}/{fmt(d['epochs'])}")
    lines.append(f"  step     {fmt(d['step'])}/{fmt(d['steps'])}")
    if d["loss"] is not None:
        lines.append(f"  loss     {d['loss']:.4g} (started at {d['loss_start']:.4g})")
    if d["vram_used_gib"] is not None:
        total = f" / {d['vram_total_gib']}" if d.get("vram_total_gib") else ""
        lines.append(f"  VRAM     {d['vram_used_gib']}{total} GB")
    elif d.get("ram_used_gib") is not None:
        lines.append(f"  memory   {d['ram_used_gib']} GB RAM (CPU run)")
    lines.append(
        f"  elapsed  {duration(d['elapsed_s']) or '?'}; remaining {duration(d['eta_s']) or '?'}"
    )
    if d.get("oom_recoveries"):
        lines.append(f"  out-of-memory recoveries: {d['oom_recoveries']}")
        lines += [f"    {a}" for a in d.get("adjustments", [])]
    for a in d["anomalies"]:
        lines.append(f"  ! {a['kind']} at step {a['at_step']}: {a['message']}")
    lines += [f"  error: {e}" for e in d.get("errors", [])]
    lines += [f"  note: {n}" for n in d.get("notes", [])]
    if d.get("message") and d["status"] != "running":
        lines.append(f"  result: {d['message']}")
    if d.get("curve"):
        lines.append(f"  loss curve: {d['curve']}")
    return "\n".join(lines)


@click.command("monitor")
@click.argument("project", required=False)
@click.option(
    "--log",
    "log_path",
    type=click.Path(path_type=Path),
    help="Read this log, event file or log folder instead of a project's train.log.",
)
@click.option("--epochs", type=Int(1, 100_000), help="Total epochs, when the log omits it.")
@click.option(
    "--format",
    "fmt",
    type=LazyChoice(log_format_names),
    help="Log format: a backend's, or tensorboard (default: detected from the content).",
)
@click.option(
    "--curve",
    type=click.Path(path_type=Path),
    help="With --log: also draw the loss curve PNG here.",
)
@click.option("--follow", is_flag=True, help="Keep printing the live log until the run ends.")
@json_option
@click.pass_context
def monitor_cmd(
    ctx: click.Context,
    project: str | None,
    log_path: Path | None,
    epochs: int | None,
    fmt: str | None,
    curve: Path | None,
    follow: bool,
    as_json: bool,
) -> int:
    """Progress of a run: epoch and step, loss now and at the start, VRAM, elapsed and time left,
    and loss anomalies (NaN, spike, divergence, plateau; rules in
    resources/training/failure-modes.md).

    With PROJECT it reads grimoire/training/PROJECT/train.log and writes progress.md and
    loss-curve.png. With --log it reads any backend's log or TensorBoard event files,
    detecting the format. JSON keys: format, epoch, epochs, step, steps, loss, loss_start,
    elapsed_s, eta_s, vram_used_gib, anomalies [{kind, at_step, message}], status.
    Exit 1 when the run failed or the loss went NaN or diverged.
    """
    from trainwright.run import monitor
    from trainwright.run.logs import read_log

    if (project is None) == (log_path is None):
        raise click.UsageError("give a PROJECT or --log PATH (one of them)")
    if project is not None:
        g = grimoire_from(ctx)
        if follow and not wants_json(as_json):
            from trainwright.run.launch import require_project

            files = require_project(g, project)
            if files.is_live():
                return _follow_run(g, project)
        snap = monitor.refresh_progress(g, project)
    else:
        assert log_path is not None
        if curve:
            from trainwright.state.safe_paths import check_output, png_is_pack_made

            reads = [log_path, *(log_path.rglob("*") if log_path.is_dir() else ())]
            check_output(curve, "--curve", reads=reads, pack_made=png_is_pack_made)
        if follow and not wants_json(as_json):
            _follow_file(log_path, fmt)
        st = read_log(log_path, fmt)
        snap = {"log": str(log_path), **monitor.snapshot(st, epochs)}
        if curve:
            from trainwright.run.anomalies import Anomaly
            from trainwright.run.curve import draw

            draw(
                st.curve(),
                curve,
                f"Loss: {log_path.name}",
                [Anomaly(**a) for a in snap["anomalies"]],
            )
            snap["curve"] = str(curve)
    emit(snap, as_json, _monitor_human)
    bad = snap["status"] == "failed" or any(
        a["kind"] in ("nan", "divergence") for a in snap["anomalies"]
    )
    return 1 if bad else 0


def _follow_file(path: Path, fmt: str | None) -> None:
    """Print a growing log until it says the run ended (Ctrl+C stops following)."""
    from trainwright.run.logs import read_log
    from trainwright.run.monitor import follow_log

    state = {"checked": 0.0}

    def ended() -> bool:
        if time.monotonic() - state["checked"] < 1.0:
            return False
        state["checked"] = time.monotonic()
        if not path.exists() or path.is_dir():
            return path.is_dir()
        st = read_log(path, fmt)
        return st.finished or bool(st.errors)

    try:
        follow_log(path, click.echo, fmt, stop=ended, poll=0.5)
    except KeyboardInterrupt:
        click.echo("stopped following")


@click.command("checkpoints")
@click.argument("project")
@click.option(
    "--keep",
    type=Int(1, 100_000),
    default=3,
    show_default=True,
    help="How many of the newest checkpoints --prune keeps.",
)
@click.option(
    "--prune",
    is_flag=True,
    help="Delete the others (never the best, the only, or one being written).",
)
@json_option
@click.pass_context
def checkpoints_cmd(
    ctx: click.Context, project: str, keep: int, prune: bool, as_json: bool
) -> None:
    """List PROJECT's checkpoints (epoch, step, loss, size) and what --prune would remove.

    Retention rule: keep the newest K (--keep), and always the one with the best loss, the only
    one, and any still being written. Without --prune nothing is deleted.
    """
    from trainwright.run import checkpoints as ck
    from trainwright.run.launch import require_project
    from trainwright.run.launch_target import load_plan

    g = grimoire_from(ctx)
    files = require_project(g, project)
    plan = load_plan(g, project)
    folder = plan.checkpoint_dir()
    losses: dict[int, float] = {}
    if files.log.exists():
        from trainwright.run.logs import read_log

        st = read_log(files.log, plan.log_format, plan.line_parser)
        losses = {p.step: p.loss for p in st.curve()}
    found, ignored = ck.scan_all(
        folder, getattr(plan.module, "checkpoint_info", None), losses, _output_name(plan)
    )
    refs = ck.referenced_files(
        g.path_for("studio"),
        g.path_for("eval", project),
        files.state,
        (Path.cwd(), g.root, g.root.parent, files.folder),
    )
    kept, removable = ck.retention(found, keep, files.is_live(), referenced=refs)
    removed = ck.prune(removable) if prune else []
    out = {
        "project": project,
        "folder": str(folder),
        "keep": keep,
        "checkpoints": [c.as_dict() for c in found],
        "ignored": [str(p) for p in ignored],
        "removable": [str(c.path) for c in removable],
        "removed": [str(p) for p in removed],
        "pruned": prune,
    }

    def human(d: dict[str, Any]) -> str:
        if not d["checkpoints"]:
            return f"no checkpoints yet in {d['folder']}"
        lines = [f"checkpoints of {d['project']} in {d['folder']}:"]
        for c in d["checkpoints"]:
            loss = "?" if c["loss"] is None else f"{c['loss']:.4g}"
            gone = str(c["path"]) in d["removed"]
            why = (
                "removed"
                if gone
                else (
                    "keep: " + ", ".join(c["keep_reasons"])
                    if c["keep_reasons"]
                    else "would be removed by --prune"
                )
            )
            lines.append(
                f"  {c['label']:<12} step {c['step'] if c['step'] is not None else '?':>6}"
                f"  loss {loss:>8}  {c['size'] / 2**20:8.2f} MB  {why}"
            )
        if d["ignored"]:
            lines.append(
                "  not this run's checkpoints (never pruned): "
                + ", ".join(Path(p).name for p in d["ignored"])
            )
        if not d["pruned"] and d["removable"]:
            lines.append(f"'--prune' would delete {len(d['removable'])} file(s)")
        return "\n".join(lines)

    emit(out, as_json, human)


def _output_name(plan: Any) -> str:
    """The name the trainer gives its checkpoints: the config's output name, else the project."""
    try:
        cfg = plan.module.read_config(plan.config)
    except Exception:  # noqa: BLE001 - an unreadable config falls back to the project name
        cfg = {}
    named = cfg.get("output_name") if isinstance(cfg, dict) else None
    if not named and isinstance(cfg, dict) and isinstance(cfg.get("config"), dict):
        named = cfg["config"].get("name")  # a job file that nests its settings under `config`
    return str(named or plan.project)
