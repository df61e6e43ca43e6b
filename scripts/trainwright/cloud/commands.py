"""`trainwright cloud`: rented GPUs, from the offer to the teardown, recorded in studio.md.

Built here: offers, up (create and record; then bringup.py waits for ssh and guard.py arms the
watchdog), down (destroy, confirmed by the provider), ls. The instance side is registered from
instance_commands.py (validate, push, setup, pull) and run_commands.py (dry-run, launch,
monitor). NOT_BUILT names any step still missing (none).
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
from typing import Any

import click

from trainwright import clock, cloud
from trainwright.cloud import bringup, records
from trainwright.cloud.base import Instance, ProviderError
from trainwright.cloud.estimate import RunEstimate, billed, deadline_hours, from_config
from trainwright.errors import TrainwrightError
from trainwright.numeric import Positive
from trainwright.output import emit, json_option, wants_json
from trainwright.state.atomic import locked
from trainwright.state.grimoire import Grimoire
from trainwright.state.names import check_name

NOT_BUILT: tuple[str, ...] = ()
LABEL_PREFIX = "trainwright-"
DEFAULT_WAIT_S = 300.0


def _grimoire(ctx: click.Context) -> Grimoire:
    return Grimoire(ctx.obj["grimoire"])


def _project(g: Grimoire, name: str) -> str:
    check_name(name)
    if name not in g.projects():
        known = ", ".join(g.projects()) or "none yet (trainwright grimoire new NAME)"
        raise TrainwrightError(f"no training project {name!r} in {g.root}; projects: {known}")
    return name


def _estimate(
    g: Grimoire, project: str | None, gpu: str | None, hours: float | None
) -> RunEstimate | None:
    if hours is not None:
        return RunEstimate(hours, "--hours")
    if project:
        return from_config(g, _project(g, project), gpu)
    if len(g.projects()) == 1:  # the only project
        only = g.projects()[0]
        est = from_config(g, only, gpu)
        return RunEstimate(est.hours, f"{only}: {est.basis}") if est else None
    return None


def _providers(name: str | None) -> list[Any]:
    if name:
        return [cloud.get(name)]
    ready = [p for p in cloud.all_providers() if p.has_key()]
    if not ready:
        helps = "; ".join(f"{p.LABEL}: {p.KEY_HELP}" for p in cloud.all_providers())
        raise ProviderError(f"no provider API key found ({helps})")
    return ready


# ---- offers ------------------------------------------------------------------------------------


def list_offers(
    g: Grimoire,
    gpu: str,
    provider: str | None,
    max_price: float | None,
    project: str | None,
    hours: float | None,
) -> dict[str, Any]:
    if not gpu.strip():
        raise TrainwrightError("--gpu is empty: give a GPU name like 'RTX 4090'")
    providers = _providers(provider)
    rows, problems = [], []
    for mod in providers:
        try:
            rows += [o.as_dict() for o in mod.offers(gpu, max_price)]
        except ProviderError as exc:
            if len(providers) == 1:
                raise
            problems.append(str(exc))
    est = _estimate(g, project, gpu, hours)
    for row in rows:
        row["run_hours"] = round(est.hours, 2) if est else None
        row["run_cost"] = billed(row["price_per_hour"], est.hours) if est else None
    rows.sort(key=lambda r: (r["run_cost"] if est else r["price_per_hour"], r["price_per_hour"]))
    table = None
    if est:
        from trainwright.hardware.cost import estimate_cost

        try:
            table = estimate_cost(gpu, est.hours)
        except TrainwrightError:
            table = None
    return {
        "gpu": gpu,
        "estimate": {"hours": round(est.hours, 2), "basis": est.basis} if est else None,
        "offers": rows,
        "rate_table": table,
        "problems": problems,
    }


def render_offers(d: dict[str, Any]) -> str:
    est = d["estimate"]
    head = (
        f"offers for {d['gpu']}, sorted by the run's cost ({est['hours']} h; {est['basis']}):"
        if est
        else f"offers for {d['gpu']}, sorted by price (no run estimate: give --hours or "
        "run `trainwright config` first):"
    )
    lines = [head]
    for o in d["offers"]:
        cost = f"${o['run_cost']:>7.2f} run  " if o["run_cost"] is not None else ""
        lines.append(
            f"  {cost}${o['price_per_hour']:.3f}/h  {o['provider']:<7} offer {o['id']}  "
            f"{o['gpus']} x {o['gpu']}  {o['where']}"
        )
    if not d["offers"]:
        lines.append("  none listed now (try another GPU, provider or a higher --max-price)")
    if d["rate_table"]:
        lines.append("trainwright cost's rate table for the same hours (typical, not live):")
        for q in d["rate_table"]["quotes"]:
            lines.append(
                f"  ${q['cost']:>7.2f} run  ${q['rate_per_hour']}/h  {q['provider']} {q['tier']}"
            )
    lines += [f"  note: {p}" for p in d["problems"]]
    if d["offers"]:
        lines.append("next: trainwright cloud up NAME --provider P --offer ID")
    return "\n".join(lines)


# ---- up ----------------------------------------------------------------------------------------


def running_for(g: Grimoire, project: str) -> list[records.Record]:
    return [r for r in records.read(g) if r.running and r.project == project]


def describe(rec: records.Record) -> str:
    f = rec.fields
    return (
        f"{rec.provider} instance {rec.id} ({f.get('GPU') or '?'}, "
        f"${f.get('Price per hour') or '?'}/h, started {f.get('Started') or '?'}, "
        f"deadline {f.get('Deadline') or '?'})"
    )


def plan_up(
    g: Grimoire, project: str, provider: str, offer_id: str, max_hours: float | None
) -> dict[str, Any]:
    """Everything `up` shows before asking: refuses a second instance and a vanished offer."""
    project = _project(g, project)
    busy = running_for(g, project)
    if busy:
        raise TrainwrightError(
            f"project {project!r} already has a running instance: {describe(busy[0])}; "
            f"`trainwright cloud down {project}` first (or `cloud ls` to check it)"
        )
    mod = cloud.get(provider)
    offer = mod.find_offer(str(offer_id).strip())
    if offer is None:
        raise ProviderError(
            f"{mod.LABEL} offer {offer_id} is no longer available; run "
            "`trainwright cloud offers` again and pick another"
        )
    est = from_config(g, project, offer.gpu)
    if max_hours is None:
        max_hours = deadline_hours(est)
    return {
        "project": project,
        "provider": mod.NAME,
        "offer": offer.as_dict(),
        "max_hours": max_hours,
        "most_cost": billed(offer.price_per_hour, max_hours),
        "estimate": {
            "hours": round(est.hours, 2),
            "cost": billed(offer.price_per_hour, est.hours),
            "basis": est.basis,
        }
        if est
        else None,
        "watchdog_credential": mod.WATCHDOG_CREDENTIAL,
    }


def render_plan(p: dict[str, Any]) -> str:
    o = p["offer"]
    lines = [
        f"rent {o['gpus']} x {o['gpu']} on {p['provider']} (offer {o['id']}, {o['where']}) "
        f"at ${o['price_per_hour']:.3f}/h for project {p['project']}",
    ]
    if p["estimate"]:
        e = p["estimate"]
        lines.append(f"  the run: about {e['hours']} h = ${e['cost']:.2f} ({e['basis']})")
    lines += [
        f"  deadline: {p['max_hours']:g} h from now; at most ${p['most_cost']:.2f} if it runs "
        "to the deadline",
        f"  at the deadline a watchdog on the instance destroys it with {p['watchdog_credential']}"
        "; where that cannot be placed it powers the machine off, and its storage still costs "
        "money until `trainwright cloud down`",
    ]
    return "\n".join(lines)


def _confirm(plan_text: str, yes: bool, as_json: bool) -> None:
    """Show the cost (on stdout; stderr under --json) and ask the person at the terminal."""
    click.echo(plan_text, err=wants_json(as_json))
    if yes:
        return
    if not sys.stdin.isatty():
        raise TrainwrightError(
            "cloud up spends money: run it in a terminal and answer the question, "
            "or add --yes after reading the cost above"
        )
    if not click.confirm("start it?", default=False, err=True):
        raise TrainwrightError("not started: nothing was rented")


def start(g: Grimoire, plan: dict[str, Any]) -> dict[str, Any]:
    mod = cloud.get(plan["provider"])
    label = f"{LABEL_PREFIX}{plan['project']}"
    with locked(g.project_dir(plan["project"])):  # two `up`s at once: the second sees the first
        busy = running_for(g, plan["project"])
        if busy:
            raise TrainwrightError(
                f"project {plan['project']!r} already has a running instance: "
                f"{describe(busy[0])}; nothing more was rented"
            )
        return _create_and_record(g, mod, plan, label)


def _create_and_record(g: Grimoire, mod: Any, plan: dict[str, Any], label: str) -> dict[str, Any]:
    offer = plan["offer"]
    inst = mod.create(offer["id"], label)
    started = clock.utc_now()
    deadline = started + _dt.timedelta(hours=plan["max_hours"])
    fields: dict[str, object] = {
        "Project": plan["project"],
        "Provider": mod.NAME,
        "ID": inst.id,
        "GPU": inst.gpu or offer["gpu"],
        "Offer": offer["id"],
        "Price per hour": float(inst.price_per_hour or offer["price_per_hour"]),
        "Started": clock.iso_utc(started),
        "Deadline": clock.iso_utc(deadline),
        "Status": "RUNNING",
        "Watchdog": "not installed yet (needs the ssh step)",
    }
    title = records.title_for(mod.NAME, inst.id)
    try:
        records.add(g, title, fields)
    except (TrainwrightError, OSError) as exc:
        mod.destroy(inst.id)  # never leave a rented machine nobody wrote down
        raise TrainwrightError(
            f"could not record {mod.NAME} instance {inst.id} in studio.md ({exc}); it was "
            "destroyed again: check `trainwright cloud ls`"
        ) from None
    return {
        "entry": title,
        **fields,
        "ssh": None,
        "not_built": list(NOT_BUILT),
    }


def render_started(d: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"started {d['Provider']} instance {d['ID']} ({d['GPU']}, ${d['Price per hour']}/h); "
            f"deadline {d['Deadline']}; recorded in studio.md as '{d['entry']}'",
            f"  ssh: {d.get('SSH') or 'not up yet'}; folder there: {d.get('Remote folder')}",
            f"  watchdog: {d.get('Watchdog')}",
            *(["  not built yet: " + ", ".join(d["not_built"])] if d["not_built"] else []),
            f"  next: trainwright cloud validate {d['Project']}, then cloud push / cloud setup",
            f"  when done: trainwright cloud down {d['Project']}",
        ]
    )


# ---- down --------------------------------------------------------------------------------------


def _wait_gone(mod: Any, instance_id: str, wait_s: float) -> Instance | None:
    """None once the provider no longer knows the instance; else its last state."""
    end = time.monotonic() + wait_s
    step = 0.5
    while True:
        inst = mod.status(instance_id)
        if inst is None or time.monotonic() >= end:
            return inst
        time.sleep(min(step, max(0.0, end - time.monotonic())))
        step = min(step * 2, 10.0)


def teardown(g: Grimoire, project: str, wait_s: float) -> dict[str, Any]:
    project = _project(g, project)
    live = running_for(g, project)
    if not live:
        raise TrainwrightError(
            f"no running instance recorded for {project!r} in studio.md (`trainwright cloud ls`)"
        )
    done = []
    for rec in live:
        mod = cloud.get(rec.provider)
        if mod.status(rec.id) is not None:
            mod.destroy(rec.id)
        left = _wait_gone(mod, rec.id, wait_s)
        if left is not None:
            raise ProviderError(
                f"{mod.LABEL} still lists instance {rec.id} as {left.state} after {wait_s:g} s; "
                f"run `trainwright cloud down {project}` again (studio.md still says RUNNING)"
            )
        ended = clock.utc_now()
        started = records.parse_stamp(rec.fields.get("Started"))
        price = float(rec.fields.get("Price per hour") or 0)
        hours = (ended - started).total_seconds() / 3600 if started else 0.0
        total = billed(price, max(hours, 0.0))
        records.update(
            g,
            rec.title,
            {"Status": "TERMINATED", "Ended": clock.iso_utc(ended), "Total cost": total},
        )
        done.append(
            {
                "entry": rec.title,
                "provider": mod.NAME,
                "id": rec.id,
                "hours": round(hours, 3),
                "total_cost": total,
            }
        )
    return {
        "project": project,
        "terminated": done,
        "note": "; ".join(
            f"{r.provider} {r.id}: last pulled {r.fields['Pulled']}, anything written there after "
            "that is gone"
            if r.fields.get("Pulled")
            else f"{r.provider} {r.id}: never pulled (`cloud pull`), what was only there is gone"
            for r in live
        ),
    }


def render_down(d: dict[str, Any]) -> str:
    lines = [
        f"{t['provider']} instance {t['id']}: gone (the provider no longer lists it); "
        f"TERMINATED in studio.md, {t['hours']:.2f} h, total ${t['total_cost']:.2f}"
        for t in d["terminated"]
    ]
    return "\n".join([*lines, f"  note: {d['note']}"])


# ---- ls ----------------------------------------------------------------------------------------


def list_running(g: Grimoire, provider: str | None) -> dict[str, Any]:
    recs = records.read(g)
    wanted = {provider} if provider else set()
    if not provider:
        wanted = {p.NAME for p in cloud.all_providers() if p.has_key()}
        wanted |= {r.provider for r in recs if r.running}
    by_key = {(r.provider, r.id): r for r in recs}
    running, unasked = [], []
    asked: set[str] = set()
    for name in sorted(wanted):
        try:
            mod = cloud.get(name)
            instances = mod.list_instances()
        except ProviderError as exc:
            unasked.append(str(exc))
            continue
        asked.add(name)
        for inst in instances:
            rec = by_key.get((name, inst.id))
            if rec is None and not inst.label.startswith(LABEL_PREFIX):
                continue  # not the pack's
            row = inst.as_dict()
            row["entry"] = rec.title if rec else None
            row["project"] = rec.project if rec else inst.label.removeprefix(LABEL_PREFIX)
            row["deadline"] = rec.fields.get("Deadline") if rec else None
            started = records.parse_stamp(rec.fields.get("Started")) if rec else None
            row["cost_so_far"] = (
                billed(
                    float(rec.fields.get("Price per hour") or 0),
                    (clock.utc_now() - started).total_seconds() / 3600,
                )
                if rec and started
                else None
            )
            row["recorded"] = rec is not None
            running.append(row)
    seen = {(r["provider"], r["id"]) for r in running}
    unknown = [
        r.as_dict()
        for r in recs
        if r.running and r.provider in asked and (r.provider, r.id) not in seen
    ]
    return {
        "asked": sorted(asked),
        "running": running,
        "unknown_to_provider": unknown,
        "not_asked": unasked,
    }


def render_ls(d: dict[str, Any]) -> str:
    lines = []
    for r in d["running"]:
        cost = f", ${r['cost_so_far']:.2f} so far" if r["cost_so_far"] is not None else ""
        where = "" if r["recorded"] else " (NOT in studio.md)"
        lines.append(
            f"{r['provider']} {r['id']}  {r['state']}  {r['gpu']}  project {r['project']}"
            f"  deadline {r['deadline'] or '?'}{cost}{where}"
        )
    if not lines and d["asked"]:
        lines.append(f"no instance started by the pack is running (asked {', '.join(d['asked'])})")
    elif not lines:
        lines.append("no provider was asked: no API key is set up and studio.md lists none running")
    for u in d["unknown_to_provider"]:
        lines.append(
            f"studio.md lists '{u['entry']}' as RUNNING but {u.get('Provider')} does not know "
            "it: kept as it is; check the provider's console"
        )
    lines += [f"could not ask: {p}" for p in d["not_asked"]]
    return "\n".join(lines)


# ---- click -------------------------------------------------------------------------------------


@click.group("cloud")
def cloud_group() -> None:
    """Rented GPUs (Vast.ai, RunPod), recorded in studio.md: offers, up (waits for ssh, arms
    the deadline watchdog), validate, push, setup, dry-run, launch, monitor, pull, down, ls."""


@cloud_group.command("offers")
@click.option("--gpu", required=True, help="GPU name, e.g. 'RTX 4090'.")
@click.option("--provider", type=click.Choice(cloud.names()), help="Only this provider.")
@click.option("--max-price", type=Positive(1000), help="Highest price per hour in USD.")
@click.option("--project", help="The project whose run is priced (default: the only one).")
@click.option("--hours", type=Positive(100_000), help="The run's hours (default: config.md's).")
@json_option
@click.pass_context
def offers_cmd(
    ctx: click.Context,
    gpu: str,
    provider: str | None,
    max_price: float | None,
    project: str | None,
    hours: float | None,
    as_json: bool,
) -> None:
    """Live offers from the providers, sorted by what this project's run costs on each."""
    emit(
        list_offers(_grimoire(ctx), gpu, provider, max_price, project, hours),
        as_json,
        render_offers,
    )


@cloud_group.command("up")
@click.argument("name")
@click.option("--provider", required=True, type=click.Choice(cloud.names()))
@click.option("--offer", "offer_id", required=True, help="The offer id from `cloud offers`.")
@click.option(
    "--max-hours",
    type=Positive(720),
    help="Deadline in hours (default: 1.5 x the estimate, rounded up).",
)
@click.option("--yes", is_flag=True, help="Do not ask (the cost is still printed).")
@click.option(
    "--wait-ssh",
    type=Positive(7200),
    default=bringup.DEFAULT_WAIT_SSH_S,
    show_default=True,
    help="Seconds to wait for the instance's ssh (address, then a login).",
)
@click.option(
    "--remote-folder",
    envvar="TRAINWRIGHT_REMOTE_FOLDER",
    default="trainwright",
    show_default=True,
    help="The project's folder on the instance (relative to the login's home unless absolute).",
)
@click.option(
    "--idle-minutes",
    type=click.FloatRange(0, 10_000),
    default=bringup.DEFAULT_IDLE_MINUTES,
    show_default=True,
    help="The watchdog also destroys the instance once the run ended and nothing changed for "
    "this long (0: only at the deadline).",
)
@json_option
@click.pass_context
def up_cmd(
    ctx: click.Context,
    name: str,
    provider: str,
    offer_id: str,
    max_hours: float | None,
    yes: bool,
    wait_ssh: float,
    remote_folder: str,
    idle_minutes: float,
    as_json: bool,
) -> None:
    """Rent an instance for project NAME after showing its cost; record it in studio.md; wait
    for ssh and put the deadline watchdog on it."""
    g = _grimoire(ctx)
    folder = bringup.check_folder(remote_folder)
    plan = plan_up(g, name, provider, offer_id, max_hours)
    _confirm(render_plan(plan), yes, as_json)
    result = start(g, plan)
    result.update(bringup.bring_up(g, result["entry"], wait_ssh, folder, idle_minutes))
    result["ssh"] = result.get("SSH")
    emit(result, as_json, render_started)


@cloud_group.command("down")
@click.argument("name")
@click.option(
    "--wait",
    "wait_s",
    type=Positive(3600),
    default=DEFAULT_WAIT_S,
    show_default=True,
    help="Seconds to wait for the provider to confirm the instance is gone.",
)
@json_option
@click.pass_context
def down_cmd(ctx: click.Context, name: str, wait_s: float, as_json: bool) -> None:
    """Destroy project NAME's instance, confirm with the provider it is gone, record the cost."""
    emit(teardown(_grimoire(ctx), name, wait_s), as_json, render_down)


@cloud_group.command("ls")
@click.option("--provider", type=click.Choice(cloud.names()), help="Only this provider.")
@json_option
@click.pass_context
def ls_cmd(ctx: click.Context, provider: str | None, as_json: bool) -> None:
    """Every instance the pack started that is still running, as the providers list them."""
    emit(list_running(_grimoire(ctx), provider), as_json, render_ls)


def _register_run_commands() -> None:
    from trainwright.cloud.run_commands import register

    register(cloud_group)


_register_run_commands()


def _register_instance_commands() -> None:
    from trainwright.cloud.instance_commands import register

    register(cloud_group)


_register_instance_commands()

__all__ = ["cloud_group"]
