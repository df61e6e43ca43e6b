"""The `trainwright` command: a click group; each subcommand is a thin shell over a library call.

Exit codes: 0 success, 1 a check that says NO-GO or found problems, 2 bad usage or bad input
(one line on stderr, never a traceback).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from trainwright import __version__
from trainwright.backends.commands import config_cmd
from trainwright.bench.commands import bench_group
from trainwright.cloud.commands import cloud_group
from trainwright.cluster.commands import runs_group
from trainwright.dataset.commands import audit_cmd, captions_group, curate_cmd, dedup_cmd
from trainwright.errors import TrainwrightError
from trainwright.evaluate.commands import diagnose_cmd, eval_grid_cmd, register_cmd
from trainwright.hardware.commands import vram_cmd
from trainwright.numeric import Int, Positive
from trainwright.output import emit, json_option, wants_json
from trainwright.retro.commands import registry_group, retro_group
from trainwright.run.commands import (
    checkpoints_cmd,
    dry_run_cmd,
    env_group,
    launch_cmd,
    monitor_cmd,
    stop_cmd,
)
from trainwright.state.commands import gate_group, grimoire_group, hash_cmd
from trainwright.workflow.commands import ticket_group

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="trainwright")
@click.option(
    "--grimoire",
    "grimoire",
    type=click.Path(path_type=Path),
    default=Path("grimoire"),
    envvar="TRAINWRIGHT_GRIMOIRE",
    show_default=True,
    show_envvar=True,
    help="Folder of the state files.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON output for every subcommand.")
@click.pass_context
def cli(ctx: click.Context, grimoire: Path, as_json: bool) -> None:
    """trainwright: gated, measured, recorded model training for coding agents.

    The skills in .claude/skills tell the agent which of these to run and when; each one is
    also usable by hand. Every command takes --json and --help.
    """
    ctx.obj = {"grimoire": grimoire, "json": as_json}


@cli.command()
@json_option
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Report what is installed: python, torch/triton/torchtune, GPUs, SLURM, the pack."""
    from trainwright.doctor import diagnose, render

    emit(diagnose(ctx.obj["grimoire"]), as_json, render)


@cli.command()
@click.argument("directory", default=".", type=click.Path(path_type=Path))
@click.option(
    "--force", is_flag=True, help="Overwrite files you changed (your versions are backed up first)."
)
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@json_option
def init(directory: Path, force: bool, dry_run: bool, as_json: bool) -> None:
    """Install the pack into DIRECTORY (default: here): .claude/, .codex/, resources/,
    grimoire/, CLAUDE.md and AGENTS.md. Files you have changed are kept and reported."""
    from trainwright.install import install_pack

    report = install_pack(directory, force=force, dry_run=dry_run).as_dict()
    report["dry_run"] = dry_run

    def human(d: dict) -> str:
        verb = "would " if d["dry_run"] else ""
        lines = [f"{verb}install the trainwright pack into {d['target']}:"]
        for key, label in (
            ("installed", "new"),
            ("updated", "updated"),
            ("merged", "merged (the pack's hooks added to your file)"),
            ("linked", "linked for Codex (.agents/skills)"),
            ("overwritten", "overwritten"),
            ("unchanged", "unchanged"),
        ):
            if d[key]:
                lines.append(f"  {len(d[key]):4d} {label}")
        if d["kept"]:
            lines.append(
                f"  {len(d['kept']):4d} kept because you changed them "
                "(--force overwrites, backing yours up):"
            )
            lines += [f"         {p}" for p in d["kept"]]
        if d["backup_dir"]:
            lines.append(f"  your previous versions: {d['backup_dir']}")
        return "\n".join(lines)

    emit(report, as_json, human)


@cli.command("status")
@click.argument("project")
@json_option
@click.pass_context
def status_cmd(ctx: click.Context, project: str, as_json: bool) -> None:
    """Where training project PROJECT stands: intent, the four gates (stale or not), the run,
    evaluation, and the next command to run. For resuming after a dropped session."""
    from trainwright.state.grimoire import Grimoire
    from trainwright.state.project_status import project_status, render

    emit(project_status(Grimoire(ctx.obj["grimoire"]), project), as_json, render)


@cli.command("cost")
@click.option("--gpu", required=True, help="GPU name, e.g. 'RTX 4090' or 'A100 80GB'.")
@click.option("--hours", type=Positive(100_000), required=True, help="Expected run time in hours.")
@click.option(
    "--gpus", "count", type=Int(1, 4096), default=1, show_default=True, help="Number of GPUs."
)
@click.option("--provider", help="Only this provider (runpod, vast).")
@json_option
def cost_cmd(gpu: str, hours: float, count: int, provider: str | None, as_json: bool) -> None:
    """What a run costs on a rented cloud GPU, per provider and tier, cheapest first."""
    from trainwright.hardware.cost import estimate_cost, render

    emit(estimate_cost(gpu, hours, provider, count), as_json, render)


@cli.command("demo")
@click.option(
    "--keep",
    type=click.Path(path_type=Path),
    help="Run in this (new or empty) folder and keep it; default: a temporary folder.",
)
@json_option
def demo_cmd(keep: Path | None, as_json: bool) -> int:
    """Run the whole /train path on a generated example: dataset with planted problems, the four
    gates (Gate 1 first NO-GO, then GO after the fixes), launch, monitor, eval grid, register.
    Needs the torch extra; no GPU, no network."""
    import tempfile

    from trainwright.demo.pipeline import DemoFailed, run_demo

    quiet = wants_json(as_json)
    say = (lambda _t: None) if quiet else click.echo
    with tempfile.TemporaryDirectory(prefix="trainwright-demo-") as tmp:
        root = keep if keep is not None else Path(tmp) / "project"
        try:
            summary = run_demo(root, say)
        except DemoFailed as exc:
            click.echo(f"trainwright: demo stopped: {exc}", err=True)
            return 1
        if keep is None:
            summary["root"] = None
        emit(summary, as_json, lambda _d: "")
    return 0


cli.add_command(grimoire_group)
cli.add_command(runs_group)
cli.add_command(hash_cmd)
cli.add_command(gate_group)
cli.add_command(vram_cmd)
cli.add_command(config_cmd)
cli.add_command(eval_grid_cmd)
cli.add_command(diagnose_cmd)
cli.add_command(register_cmd)
cli.add_command(ticket_group)
cli.add_command(cloud_group)
cli.add_command(registry_group)
cli.add_command(retro_group)
cli.add_command(bench_group)
cli.add_command(env_group)
cli.add_command(dry_run_cmd)
cli.add_command(launch_cmd)
cli.add_command(stop_cmd)
cli.add_command(monitor_cmd)
cli.add_command(checkpoints_cmd)
cli.add_command(audit_cmd)
cli.add_command(dedup_cmd)
cli.add_command(captions_group)
cli.add_command(curate_cmd)


def main(argv: list[str] | None = None) -> None:
    try:
        rv = cli.main(args=argv, prog_name="trainwright", standalone_mode=False)
    except TrainwrightError as exc:
        click.echo(f"trainwright: error: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("trainwright: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        click.echo(f"trainwright: error: {' '.join(exc.format_message().split())}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"trainwright: error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)
