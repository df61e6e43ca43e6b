"""`trainwright cloud validate | push | setup | pull NAME`: the instance side of a rented GPU
(see deploy.py and provision.py); each names the project, whose running instance studio.md
records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from trainwright.cloud.skypilot_task import SKY_INFRA
from trainwright.numeric import Positive
from trainwright.output import emit, json_option
from trainwright.state.commands import grimoire_from


def _push_human(d: dict[str, Any]) -> str:
    lines = [
        f"pushed {d['project']} to {d['instance']}:{d['folder']}: {d['files_transferred']} "
        f"file(s) changed, {d['bytes_sent']} bytes sent ({d['matched_bytes']} bytes already there)"
    ]
    lines += [f"  {c}" for c in d["changed"][:20]]
    if len(d["changed"]) > 20:
        lines.append(f"  ... and {len(d['changed']) - 20} more")
    lines += [f"  kept on the instance (newer there): {n}" for n in d["newer_there"]]
    lines.append(f"next: trainwright cloud setup {d['project']}")
    return "\n".join(lines)


def _pull_human(d: dict[str, Any]) -> str:
    lines = [
        f"pulled {d['project']} from {d['instance']}: {len(d['verified'])} file(s) verified by "
        f"sha256, {d['files_transferred']} transferred"
    ]
    lines += [f"  kept yours (newer here): {k}" for k in d["kept_newer_here"]]
    return "\n".join(lines)


def _setup_human(d: dict[str, Any]) -> str:
    source = "the wheelhouse only" if d["no_index"] else "the wheelhouse, then the package index"
    reqs = ", ".join(d["backend_requirements"]) or "nothing more"
    return "\n".join(
        [
            f"set up {d['instance']}: {d['python']} ({d['version']}), from {source}",
            f"  pack: {d['wheel']}; backend: {reqs}",
            "  recorded as Remote python in studio.md",
        ]
    )


def _sky_human(d: dict[str, Any]) -> str:
    where = f" on {d['infra']}" if d["infra"] else ""
    return "\n".join(
        [
            f"wrote {d['task']}: {d['accelerator']}:1{where}, the pack from {d['wheel']}",
            f"  guard: the run stops after {d['max_hours']:g} h; SkyPilot takes the cluster down "
            f"{d['idle_minutes']} min after it goes idle (not recorded in studio.md: `sky status`)",
            *([f"  your earlier version is kept as {d['kept']}"] if d["kept"] else []),
            f"next, from the project root: {d['launch']}",
            f"when the results are copied back: {d['down']}",
        ]
    )


def register(group: click.Group) -> None:
    @group.command("validate")
    @click.argument("name")
    @json_option
    @click.pass_context
    def validate_cmd(ctx: click.Context, name: str, as_json: bool) -> int:
        """Gate 3 on project NAME's instance (the `env check --ssh` probe), recorded in
        environment.md with the instance under "Checked on". Exit 0 GO, 1 NO-GO."""
        from trainwright.cloud.provision import validate
        from trainwright.run.commands import _env_human, _gate_out

        g = grimoire_from(ctx)
        result, where = validate(g, name)
        out = {**_gate_out(name, 3, result), "host": where["instance"], **where}
        lines = []
        for f in result.details.get("findings", []):
            mark = {"ok": "ok  ", "warning": "warn", "error": "FAIL"}[f["severity"]]
            lines.append(f"  {mark} {f['text']}")
            if f["fix"] and f["severity"] != "ok":
                lines.append(f"       fix: {f['fix']}")
        emit(out, as_json, lambda d: _env_human(d, lines or [f"  - {r}" for r in d["reasons"]]))
        return 0 if result.decision == "GO" else 1

    @group.command("push")
    @click.argument("name")
    @json_option
    @click.pass_context
    def push_cmd(ctx: click.Context, name: str, as_json: bool) -> None:
        """Send project NAME's config, gate state, the pack's data and the dataset to its
        instance by rsync over ssh (checksummed, resumable; only what changed; nothing there is
        deleted)."""
        from trainwright.cloud.deploy import push

        emit(push(grimoire_from(ctx), name), as_json, _push_human)

    @group.command("setup")
    @click.argument("name")
    @click.option(
        "--base-python",
        default="python3",
        show_default=True,
        help="The instance's Python the venv is made from (its PyTorch is reused).",
    )
    @click.option(
        "--wheelhouse",
        type=click.Path(path_type=Path, file_okay=False),
        help="A folder of wheels to install from (a trainwright wheel in it is used as is).",
    )
    @click.option("--no-index", is_flag=True, help="Install only from --wheelhouse (offline).")
    @json_option
    @click.pass_context
    def setup_cmd(
        ctx: click.Context,
        name: str,
        base_python: str,
        wheelhouse: Path | None,
        no_index: bool,
        as_json: bool,
    ) -> None:
        """Make a venv on project NAME's instance with the pack and the backend's packages
        (pinned by the pack's data); record it as Remote python in studio.md."""
        from trainwright.cloud.provision import setup

        g = grimoire_from(ctx)
        emit(setup(g, name, base_python, wheelhouse, no_index), as_json, _setup_human)

    @group.command("sky")
    @click.argument("name")
    @click.option("--gpu", required=True, help="GPU name, e.g. 'RTX 4090' or 'A100 80GB'.")
    @click.option(
        "--provider", type=click.Choice(sorted(SKY_INFRA)), help="Only this provider's GPUs."
    )
    @click.option(
        "--max-hours",
        type=Positive(10_000),
        help="Stop the run after this long (default: 1.5 x config.md's estimate).",
    )
    @click.option(
        "--idle-minutes",
        type=click.IntRange(1, 24 * 60),
        default=10,
        show_default=True,
        help="SkyPilot tears the cluster down once idle this long.",
    )
    @click.option(
        "--wheelhouse",
        type=click.Path(path_type=Path, file_okay=False, exists=True),
        help="A folder holding the trainwright wheel to install (default: built here).",
    )
    @json_option
    @click.pass_context
    def sky_cmd(
        ctx: click.Context,
        name: str,
        gpu: str,
        provider: str | None,
        max_hours: float | None,
        idle_minutes: int,
        wheelhouse: Path | None,
        as_json: bool,
    ) -> None:
        """Write a SkyPilot task for project NAME (sky-task.yaml in its folder) for people who
        rent through SkyPilot: setup, Gate 3, the dry run and the run on the cluster, which
        SkyPilot tears down once idle (autostop with down) or at --max-hours."""
        from trainwright.cloud.skypilot_task import write

        g = grimoire_from(ctx)
        emit(
            write(g, name, gpu, provider, max_hours, idle_minutes, wheelhouse), as_json, _sky_human
        )

    @group.command("pull")
    @click.argument("name")
    @json_option
    @click.pass_context
    def pull_cmd(ctx: click.Context, name: str, as_json: bool) -> None:
        """Bring project NAME's LoRA files, checkpoints, logs and progress back from its
        instance, each verified by sha256 against sums computed there. When the instance is
        gone, say (and record) what was never pulled."""
        from trainwright.cloud.deploy import pull

        emit(pull(grimoire_from(ctx), name), as_json, _pull_human)
