"""`trainwright cloud dry-run | launch | monitor NAME`: the run on a rented instance, through the
pack's own commands there (see remote_run.py and remote_monitor.py)."""

from __future__ import annotations

from typing import Any

import click

from trainwright.output import emit, json_option
from trainwright.run.supervisor_options import dry_run_options, supervisor_options
from trainwright.state.commands import grimoire_from


def _dry_run_human(d: dict[str, Any]) -> str:
    inst = d["ran_on"]
    verdict = "passed" if d["decision"] == "GO" else "failed"
    lines = [
        f"Dry run {verdict} for {d['project']} on {inst['provider']} instance {inst['id']} "
        f"({inst['ssh']}) (Gate 4 {d['decision']}, recorded in progress.md)"
    ]
    lines += [f"  - {r}" for r in d["reasons"]]
    lines += [f"  fix: {f}" for f in d["fixes"]]
    if d.get("remote_log"):
        lines.append(f"  log on the instance: {d['remote_log']}")
    return "\n".join(lines)


def _launch_human(d: dict[str, Any]) -> str:
    inst = d["instance"]
    on = f"{inst['provider']} instance {inst['id']}"
    action = d["action"]
    if action == "refused":
        lines = [f"Launch refused on {on}; nothing was started:"]
        if d.get("deadline"):
            lines += [f"  {d['deadline']['message']}", f"      fix: {d['deadline']['fix']}"]
        where = "on the instance" if d.get("where") == "there" else "here"
        for gate in d["gates"]:
            lines.append(
                f"  Gate {gate.get('gate')} {gate.get('name')} ({where}): {gate.get('state')}"
            )
            if gate.get("reason"):
                lines.append(f"      why: {gate['reason']}")
            lines.append(f"      fix: {gate['fix']}")
        return "\n".join(lines)
    if action == "failed-to-start":
        return f"the run could not start on {on}: {d.get('message')}"
    if action == "none":
        return f"{d['project']} on {on}: {d.get('message')}"
    if action == "attached":
        head = f"{d['project']} is already training on {on} (pid {d.get('pid')}): nothing started"
    else:
        head = (
            f"started {d['project']} on {on} under the detached supervisor there (pid "
            f"{d.get('pid')}, batch {d.get('batch')}); it goes on when this ssh session ends"
        )
    lines = [head, f"  log on the instance: {d.get('remote_log')}"]
    if d.get("estimated_time"):
        lines.append(f"  estimated time (config.md): {d['estimated_time']}")
    if d.get("deadline_note"):
        lines.append(f"  note: {d['deadline_note']}")
    lines.append(f"  watch: trainwright cloud monitor {d['project']}")
    return "\n".join(lines)


def _monitor_human(d: dict[str, Any]) -> str:
    from trainwright.run.commands import _monitor_human as local_human

    inst, m = d["instance"], d["money"]
    spent = "?" if m["spent_so_far"] is None else f"${m['spent_so_far']:.2f}"
    left = "?" if m["hours_left"] is None else f"{m['hours_left']:.2f} h"
    price = "?" if m["price_per_hour"] is None else f"${m['price_per_hour']}"
    lines = [
        local_human(d),
        f"  instance {inst['provider']} {inst['id']} ({inst['ssh']}): {spent} so far at "
        f"{price}/h; {left} left before the deadline {m['deadline'] or '?'}",
    ]
    if d["checkpoints"]:
        lines.append(f"  checkpoints on the instance: {', '.join(d['checkpoints'])}")
    if d["status"] == "complete":
        lines.append(
            f"  next: trainwright cloud pull {d['project']}, then trainwright cloud down "
            f"{d['project']}"
        )
    return "\n".join(lines)


def register(group: click.Group) -> None:
    @group.command("dry-run")
    @click.argument("name")
    @dry_run_options(" there")
    @json_option
    @click.pass_context
    def dry_run_cmd(
        ctx: click.Context, name: str, steps: int, timeout: float, as_json: bool
    ) -> int:
        """Gate 4 on project NAME's instance: `trainwright dry-run` there over ssh; the decision
        is recorded here in progress.md with the instance it ran on. Exit 0 GO, 1 NO-GO."""
        from trainwright.cloud.remote_run import dry_run

        out = dry_run(grimoire_from(ctx), name, steps, timeout)
        emit(out, as_json, _dry_run_human)
        return 0 if out["decision"] == "GO" else 1

    @group.command("launch")
    @click.argument("name")
    @supervisor_options(" there")
    @click.option(
        "--ignore-deadline",
        is_flag=True,
        help="Start even when the run's estimate is longer than the time left before the "
        "instance's deadline (the watchdog still ends it there).",
    )
    @click.option(
        "--again",
        is_flag=True,
        help="Train a new run after a finished one (the old checkpoints there are moved aside).",
    )
    @json_option
    @click.pass_context
    def launch_cmd(
        ctx: click.Context,
        name: str,
        max_retries: int,
        hang_timeout: float,
        ignore_deadline: bool,
        again: bool,
        as_json: bool,
    ) -> int:
        """Start project NAME's run on its instance under the pack's detached supervisor there
        (same out-of-memory retries; it survives the ssh session ending). Refused when config.md's
        estimate is longer than the time left before the instance's deadline, or when the config
        or dataset here changed after the dry run there; a second launch while the run is live
        reports it and starts nothing. Exit 1 when refused or not started."""
        from trainwright.cloud.remote_run import launch

        out = launch(
            grimoire_from(ctx),
            name,
            max_retries=max_retries,
            hang_timeout=hang_timeout,
            ignore_deadline=ignore_deadline,
            again=again,
        )
        emit(out, as_json, _launch_human)
        return 1 if out["action"] in ("refused", "failed-to-start") else 0

    @group.command("monitor")
    @click.argument("name")
    @json_option
    @click.pass_context
    def monitor_cmd(ctx: click.Context, name: str, as_json: bool) -> int:
        """Progress of project NAME's run on its instance: train.log's new bytes come back over
        ssh (kept in the project's cloud/ folder) and are read by the same parsers as
        `trainwright monitor`; also the money spent so far and the hours left before the
        deadline. JSON keys: those of `trainwright monitor`, plus instance, live, checkpoints,
        remote_log and money {price_per_hour, started, hours_so_far, spent_so_far, deadline,
        hours_left}. Exit 1 when the run failed or the loss went NaN or diverged."""
        from trainwright.cloud.remote_monitor import monitor

        snap = monitor(grimoire_from(ctx), name)
        emit(snap, as_json, _monitor_human)
        bad = snap["status"] == "failed" or any(
            a["kind"] in ("nan", "divergence") for a in snap["anomalies"]
        )
        return 1 if bad else 0
