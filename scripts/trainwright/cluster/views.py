"""What the `runs` commands print for people (the --json output is the same data, unformatted)."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def human_plan(d: dict[str, Any], exp: Path | str = ".") -> str:
    lines = [f"{d['plan']}: {'written' if d['created'] else 'already there, left as it is'}"]
    if d.get("ticket"):
        lines.append(
            f"ticket: {d['ticket']} (trainwright ticket status {d['ticket']} shows its runs)"
        )
    lines += problem_lines(d)
    if d["valid"]:
        lines.append(f"{len(d['runs'])} run(s): {', '.join(r['name'] for r in d['runs'])}")
        if d.get("status_added"):
            lines.append(f"{d['status']}: added {', '.join(d['status_added'])}")
        lines.append(f"next: edit the plan if needed, then `trainwright runs setup-dirs {_q(exp)}`")
    return "\n".join(lines)


def _q(exp: Path | str) -> str:
    """The experiment folder as the person typed it, quoted for the shell (hints name it)."""
    return shlex.quote(str(exp))


def problem_lines(d: dict[str, Any]) -> list[str]:
    return [f"  {d['plan']}:{p['line']}: {p['message']}" for p in d["problems"]]


def human_launch(d: dict[str, Any], exp: Path | str = ".") -> str:
    lines = [
        f"executor: {d['executor']}" + (" (dry run: nothing submitted)" if d["dry_run"] else "")
    ]
    lines += [f"  note: {n}" for n in d["preflight"]["notes"]]
    for p in d["preflight"]["problems"]:
        lines.append(f"  pre-flight: {p}")
    for dec in d["decisions"]:
        job = d["submitted"].get(dec["run"])
        lines.append(
            f"  {dec['run']}: {dec['action']}"
            + (f" -> job {job}" if job else "")
            + f" ({dec['reason']})"
        )
    for e in d.get("events", []):
        if e.get("to"):
            lines.append(
                f"  {e['run']}: {e.get('from') or ''}->{e['to']} {e.get('reason') or ''}".rstrip()
            )
    eta = d.get("eta") or {}
    if eta.get("all_done_by"):
        lines.append(
            f"ETA: all submitted runs done by {eta['all_done_by']} at the latest (time limits)"
        )
    if d.get("held"):
        lines.append(
            f"held back (failed before for a lasting reason): {', '.join(d['held'])}; "
            "see the reason above"
        )
    if d["preflight"]["problems"]:
        lines.append("nothing was submitted: fix the problems above and run launch again")
    elif not d["dry_run"]:
        lines.append(f"next: `trainwright runs monitor {_q(exp)} --follow`")
    return "\n".join(lines)


def print_changes() -> Callable[[dict[str, Any]], None]:
    """With --follow: the table at the first poll and whenever a run changed state."""
    seen = {"first": True}

    def show(report: dict[str, Any]) -> None:
        if seen["first"] or report["events"]:
            click.echo(render_table(report) + "\n")
        seen["first"] = False

    return show


def render_table(d: dict[str, Any]) -> str:
    from trainwright.cluster.runs_monitor import format_eta

    header = ("RUN", "STATE", "JOB", "STEP", "LOSS", "ETA", "NOTE")
    rows = []
    for r in d["runs"]:
        step = f"{r['step']}/{r['total_steps'] or '?'}" if r["step"] is not None else "-"
        loss = f"{r['loss']:.4g}" if isinstance(r["loss"], (int, float)) else "-"
        note = r["reason"] or ""
        if r["oom_retries"]:
            note = "; ".join(
                filter(None, [f"OOM x{r['oom_retries']}, batch {r['batch_size']}", note])
            )
        rows.append(
            (
                r["run"],
                r["state"] or "?",
                r["job_id"] or "-",
                step,
                loss,
                format_eta(r["eta_s"]),
                note,
            )
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    widths[-1] = 0
    lines = [
        "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines += [
        f"  {e['run']}: {e.get('from')}->{e['to']} {e.get('reason') or ''}".rstrip()
        for e in d.get("events", [])
    ]
    return "\n".join(lines)


def human_validate(d: dict[str, Any]) -> str:
    if d["valid"]:
        out = [f"{d['plan']}: OK, {len(d['runs'])} run(s)"]
    else:
        out = [f"{d['plan']}: {len(d['problems'])} problem(s)", *problem_lines(d)]
    if d["status_only_runs"]:
        out.append(
            "note: runs_status.yaml also tracks runs no longer in the plan: "
            + ", ".join(d["status_only_runs"])
        )
    return "\n".join(out)


def human_setup_dirs(d: dict[str, Any], exp: Path | str = ".") -> str:
    verb = "would create" if d["dry_run"] else "created"
    lines = [f"  {verb} {p}" for p in d["created"]]
    lines += [f"  exists  {p}" for p in d["existing"]]
    lines.append(f"next: `trainwright runs configs {_q(exp)}`")
    return "\n".join(lines)


def human_configs(d: dict[str, Any], exp: Path | str = ".") -> str:
    lines = []
    for c in d["configs"]:
        where = c.get("config") or c["run"]
        why = f" ({c['reason']})" if c.get("reason") else ""
        extra = (
            " (yours differs: --force rewrites it, keeping a .bak)" if c["action"] == "kept" else ""
        )
        lines.append(f"  {c['action']:<9} {where}{why}{extra}")
    lines += [f"  problem: {p}" for p in d["problems"]]
    lines.append(f"next: `trainwright runs slurm-scripts {_q(exp)}`")
    return "\n".join(lines)


def human_scripts(d: dict[str, Any], exp: Path | str = ".") -> str:
    lines = []
    for r in [*d["runs"], *d["sweeps"]]:
        if r["action"] == "skipped":
            lines.append(f"  skipped   {r['run']} ({r['reason']})")
            continue
        gpus = f"{r['gpus_per_node']} GPU/node" if r["gpus_per_node"] else "CPU"
        lines.append(
            f"  {r['action']:<9} {r['script']}: {r['nodes']} node(s), {gpus}, "
            f"{r['cpus_per_task']} CPUs, {r['mem']}, {r['time']}"
        )
        if r["notes"].get("time", "").startswith("default"):
            lines.append(f"            time is a default: {r['notes']['time']}")
        if r["notes"].get("vram"):
            lines.append(f"            VRAM estimate: {r['notes']['vram']}")
    if d["too_big"]:
        lines.append(
            f"does not fit the GPU type: {', '.join(d['too_big'])}: lower the batch, use "
            "qlora or activation checkpointing, or more GPUs, then write the configs again"
        )
    else:
        lines.append(
            f"next: `trainwright runs launch {_q(exp)} --dry-run`, then "
            f"`trainwright runs launch {_q(exp)}`"
        )
    return "\n".join(lines)
