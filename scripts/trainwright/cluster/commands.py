"""`trainwright runs ...`: a planned set of fine-tuning runs, from runs_plan.md to a status table.

plan -> setup-dirs -> configs (or one backend's: `<backend>-configs`) -> slurm-scripts -> launch
-> monitor. The backends, their defaults and launchers come from the registry of backends.
Every command takes the experiment folder (default: the current folder).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from trainwright.choices import LazyChoice, cluster_backend_names, launcher_names
from trainwright.cluster import views
from trainwright.errors import TrainwrightError
from trainwright.numeric import Float, Int
from trainwright.output import emit, json_option, wants_json

if TYPE_CHECKING:
    from trainwright.cluster.runs_plan import Plan
    from trainwright.hardware.gpu import GPUSpec

EXPERIMENT = click.argument(
    "experiment_dir",
    default=".",
    type=click.Path(path_type=Path, file_okay=False, resolve_path=True),
)
ONLY = click.option(
    "--only",
    "only",
    multiple=True,
    metavar="RUN",
    help="Only these runs (repeat the option, or separate names with commas).",
)


def _only(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n.strip() for v in values for n in v.split(",") if n.strip())


def _plan(experiment_dir: Path) -> Plan:
    from trainwright.cluster.checks import load_plan

    return load_plan(experiment_dir).require_valid()


@click.group("runs")
def runs_group() -> None:
    """Experiment runs on a SLURM cluster (or here, one after another, without SLURM).

    \b
    The sequence, one command per step:
      trainwright runs plan EXP            runs_plan.md + runs_status.yaml
      trainwright runs setup-dirs EXP      <run>/evaluations/ and README.md
      trainwright runs configs EXP         <run>/finetune.yaml (BACKEND-configs: one backend)
      trainwright runs slurm-scripts EXP   <run>/finetune.slurm (+ sweeps/<sweep>.slurm)
      trainwright runs launch EXP          submit (a rerun resumes; never submits twice)
      trainwright runs monitor EXP         status table; OOM -> half the batch, resubmitted
    """


# --- plan / validate ---------------------------------------------------------------------------


@runs_group.command("plan")
@EXPERIMENT
@click.option("--model", help="Base model of the runs (default: the backend's example model).")
@click.option("--dataset", help="Dataset of the runs (default: the backend's example dataset).")
@click.option(
    "--method",
    type=click.Choice(["lora", "qlora", "full"]),
    default="lora",
    show_default=True,
    help="Fine-tuning method of the example runs.",
)
@click.option(
    "--backend",
    type=LazyChoice(cluster_backend_names),
    help="Trainer (default: the suggested one for LLMs).",
)
@click.option("--gpus", help="GPUs per run (default: the backend's: 1, or cpu for CPU trainers).")
@click.option("--runs", "count", type=Int(1, 100), default=2, show_default=True)
@click.option(
    "--with-base/--no-base", default=True, show_default=True, help="Add a base-model row."
)
@click.option(
    "--ticket",
    metavar="NAME",
    help="The staged-workflow ticket the experiment belongs to, written in a new plan's header "
    "(default: the project's only active ticket, if there is exactly one).",
)
@json_option
def plan_cmd(
    experiment_dir: Path,
    model: str | None,
    dataset: str | None,
    method: str,
    backend: str | None,
    gpus: str | None,
    count: int,
    with_base: bool,
    ticket: str | None,
    as_json: bool,
) -> int:
    """Start (or check) EXPERIMENT_DIR/runs_plan.md and its runs_status.yaml.

    A missing plan is written from the options as a table to edit: one row per run (Run, Base
    model, Method, Dataset, GPUs, hyper-parameters). An existing plan is never changed: it is
    validated, and runs new to it are added to runs_status.yaml as PLANNED. Exit 1 when the plan
    has problems (each listed with its line).
    """
    from trainwright import backends
    from trainwright.cluster.scaffold import scaffold
    from trainwright.workflow import ticket_runs, tickets

    if ticket is not None:
        tickets.get_ticket(tickets.project_home(experiment_dir.parent), ticket)  # it must exist
    else:
        ticket = ticket_runs.single_active(experiment_dir.parent)
    backend = backend or backends.cluster_default()
    defaults = getattr(backends.get(backend), "CLUSTER_DEFAULTS", {})  # a plan it can run
    if model and not gpus and hasattr(backends.get(backend), "plan_gpus"):
        gpus = backends.get(backend).plan_gpus(model)  # `cpu` for a CPU-sized model, no GPU here
    result = scaffold(
        experiment_dir,
        model=model or defaults.get("model", "SET-ME"),
        dataset=dataset or defaults.get("dataset", "SET-ME"),
        method=method,
        backend=backend,
        gpus=gpus or str(defaults.get("gpus", "1")),
        count=count,
        with_base=with_base,
        ticket=ticket,
    )
    emit(result, as_json, lambda d: views.human_plan(d, experiment_dir))
    return 0 if result["valid"] else 1


@runs_group.command("validate")
@EXPERIMENT
@json_option
def validate_cmd(experiment_dir: Path, as_json: bool) -> int:
    """Check runs_plan.md (every problem, with its line) and that runs_status.yaml reads.

    Checks: a Run/Base model/Method/Dataset/GPUs column or default for every run, unique run
    names, known methods, backends and models, GPU counts >= 1 that split over the nodes,
    numbers where numbers belong, packing only with a maximum sequence length, sweeps that can
    share one job array. Exit 1 when there are problems.
    """
    from trainwright.cluster.checks import load_plan
    from trainwright.cluster.status import read_status

    plan = load_plan(experiment_dir)
    status = read_status(experiment_dir)
    unknown = sorted(set(status.get("runs", {})) - {r.name for r in plan.runs})
    data = {
        "plan": str(plan.path),
        "experiment": plan.experiment,
        "valid": plan.ok,
        "problems": [{"line": p.line, "message": p.message} for p in plan.problems],
        "runs": [r.as_dict() for r in plan.runs],
        "status_only_runs": unknown,
    }

    emit(data, as_json, views.human_validate)
    return 0 if plan.ok else 1


# --- folders and files -------------------------------------------------------------------------


@runs_group.command("setup-dirs")
@EXPERIMENT
@click.option("--dry-run", is_flag=True, help="Say what would be created; create nothing.")
@json_option
def setup_dirs_cmd(experiment_dir: Path, dry_run: bool, as_json: bool) -> None:
    """Create <run>/evaluations/ for every run of the plan and the experiment's README.md.

    Only folders: no configs, no scripts (framework-agnostic). The plan is validated first and
    nothing is created when it has a problem. Safe to rerun: what exists is left alone.
    """
    from trainwright.cluster.dirs import setup_dirs

    plan = _plan(experiment_dir)
    result = setup_dirs(experiment_dir, plan, dry_run=dry_run)
    if not result["verified"]:
        raise TrainwrightError(f"could not create {', '.join(result['missing'])}")

    emit(result, as_json, lambda d: views.human_setup_dirs(d, experiment_dir))


def _configs(
    experiment_dir: Path,
    backend: str | None,
    only: tuple[str, ...],
    force: bool,
    validate: bool,
    as_json: bool,
) -> int:
    from trainwright.cluster.configs import write_configs
    from trainwright.cluster.runs_launch import can_validate, check_config, deep_validate

    plan = _plan(experiment_dir)
    result = write_configs(experiment_dir, plan, backend, _only(only), force)
    problems: list[str] = []
    for item in result["configs"]:
        if "config" not in item:
            continue
        run = plan.run(item["run"])
        found = check_config(run, Path(item["config"]))
        checked = validate and can_validate(run.backend)
        if checked:
            problem = deep_validate(run.backend, Path(item["config"]))
            found += [problem] if problem else []
        item["validated"] = checked
        item["problems"] = found
        problems += found
    result["problems"] = problems

    emit(result, as_json, lambda d: views.human_configs(d, experiment_dir))
    return 1 if problems else 0


@runs_group.command("configs")
@EXPERIMENT
@ONLY
@click.option("--force", is_flag=True, help="Rewrite configs that differ (old one kept as .bak).")
@click.option(
    "--validate", is_flag=True, help="Also run each backend's own config check where it has one."
)
@json_option
def configs_cmd(
    experiment_dir: Path, only: tuple[str, ...], force: bool, validate: bool, as_json: bool
) -> int:
    """Write <run>/finetune.yaml for every training run, whatever its backend.

    Base-model runs are skipped. Existing configs that differ (edited by you, or shrunk by an
    out-of-memory retry) are kept unless --force. Exit 1 when a written config fails a check.
    """
    return _configs(experiment_dir, None, only, force, validate, as_json)


def _backend_configs_command(name: str) -> click.Command:
    """`runs <name>-configs`: the configs step for one backend's runs (for torchtune, the
    create-torchtune-config skill's step)."""

    @click.command(f"{name}-configs")
    @EXPERIMENT
    @ONLY
    @click.option("--force", is_flag=True, help="Rewrite configs that differ (old one kept).")
    @click.option("--validate", is_flag=True, help="Also run the backend's own config check.")
    @json_option
    def command(
        experiment_dir: Path, only: tuple[str, ...], force: bool, validate: bool, as_json: bool
    ) -> int:
        return _configs(experiment_dir, name, only, force, validate, as_json)

    command.help = (
        f"Write <run>/finetune.yaml for the {name} runs only.\n\nBase-model runs and runs of "
        "other backends are skipped; the backend's own checks run on each config. Exit 1 when a "
        "config fails a check."
    )
    return command


for _name in cluster_backend_names():
    runs_group.add_command(_backend_configs_command(_name))


@runs_group.command("slurm-scripts")
@EXPERIMENT
@ONLY
@click.option("--partition", help="SLURM partition (default: the cluster's default).")
@click.option("--account", help="SLURM account to charge.")
@click.option("--qos", help="SLURM quality of service.")
@click.option("--constraint", help="Node features (e.g. a100).")
@click.option("--gpu-type", help="GPU type in the gres name, e.g. a100 -> --gpus-per-node=a100:4.")
@click.option("--time", "time_", help="Time limit for every run (HH:MM:SS, D-HH:MM:SS, 4h, 90m).")
@click.option("--cpus-per-gpu", type=Int(1, 512), help="CPUs per GPU (default 8).")
@click.option("--cpus", type=Int(1, 4096), help="CPUs per node, replacing the derived.")
@click.option("--mem", help="Memory per node (e.g. 200G), replacing the derived value.")
@click.option(
    "--launcher",
    type=LazyChoice(launcher_names),
    help="How multi-GPU runs start, for backends that offer a choice (default: the first).",
)
@click.option("--setup", multiple=True, help="A shell line run first (e.g. 'module load cuda').")
@click.option(
    "--python",
    "python",
    default=sys.executable,
    show_default="this interpreter",
    help="Interpreter the jobs use (its environment must have the trainer).",
)
@click.option(
    "--sbatch-option",
    "sbatch_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other sbatch option, e.g. --sbatch-option mail-type=END.",
)
@click.option("--dry-run", is_flag=True, help="Render and report; write nothing.")
@json_option
def slurm_scripts_cmd(
    experiment_dir: Path,
    only: tuple[str, ...],
    partition: str | None,
    account: str | None,
    qos: str | None,
    constraint: str | None,
    gpu_type: str | None,
    time_: str | None,
    cpus_per_gpu: int | None,
    cpus: int | None,
    mem: str | None,
    launcher: str | None,
    setup: tuple[str, ...],
    python: str,
    sbatch_options: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
) -> int:
    """Write <run>/finetune.slurm for every training run (and sweeps/<sweep>.slurm per sweep).

    GPUs and nodes come from the plan; CPUs, memory and time are derived from the run's config
    and the VRAM estimate unless given here. Every script asks SLURM to signal it 90 s before the
    time limit and to requeue it, so the run continues from its last checkpoint. Values are
    shell-quoted; the template is resources/slurm/finetune.slurm.tmpl. Exit 1 when the VRAM
    estimate says a run does not fit the --gpu-type card (the scripts are written anyway).
    """
    from trainwright.cluster import sizing
    from trainwright.cluster.generate import Settings, write_scripts

    extra = {}
    for item in sbatch_options:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TrainwrightError(f"--sbatch-option {item!r}: expected KEY=VALUE")
        extra[key.strip()] = value
    settings = Settings(
        partition=partition,
        account=account,
        qos=qos,
        constraint=constraint,
        gpu_type=gpu_type,
        launcher=launcher,
        python=python,
        setup=list(setup),
        overrides=sizing.Overrides(
            time=time_, cpus_per_gpu=cpus_per_gpu, cpus=cpus, mem=mem, gpu=_gpu_spec(gpu_type)
        ),
        extra=extra,
    )
    plan = _plan(experiment_dir)
    result = write_scripts(experiment_dir, plan, settings, _only(only), dry_run)
    too_big = [r["run"] for r in result["runs"] if r.get("fits") is False]
    result["too_big"] = too_big

    emit(result, as_json, lambda d: views.human_scripts(d, experiment_dir))
    return 1 if too_big else 0


def _gpu_spec(gpu_type: str | None) -> GPUSpec | None:
    """The GPU table's entry for a gres type name such as a100 or h100, when it has one."""
    if not gpu_type:
        return None
    from trainwright.hardware.gpu import lookup_gpu

    try:
        return lookup_gpu(gpu_type)
    except TrainwrightError:
        return None


# --- launch / monitor --------------------------------------------------------------------------


@runs_group.command("launch")
@EXPERIMENT
@ONLY
@click.option("--dry-run", is_flag=True, help="Run the pre-flight checks and say what would go.")
@click.option(
    "--validate", is_flag=True, help="Also run each backend's own config check where it has one."
)
@click.option("--local", "force_local", is_flag=True, help="Run here even if sbatch exists.")
@click.option(
    "--retry",
    is_flag=True,
    help="Resubmit runs that failed for a lasting reason (dataset, model, config, package) "
    "although their config and data did not change: you fixed the cause elsewhere.",
)
@json_option
def launch_cmd(
    experiment_dir: Path,
    only: tuple[str, ...],
    dry_run: bool,
    validate: bool,
    force_local: bool,
    retry: bool,
    as_json: bool,
) -> int:
    """Submit the runs that still have to run, after pre-flight checks; print the ETA.

    Checks: configs present and sound, scripts present, output folders writable, sbatch found
    (else the runs execute here one after another), nothing already queued or done. A rerun
    skips completed runs, never submits a queued or running one again, and resubmits failed
    ones so they continue from their last checkpoint, except a run that failed for a lasting
    reason (its dataset, model, config, a package) while nothing it reads changed since: that
    one is held back (--retry resubmits it). The pre-flight checks also read each run's dataset
    folder and model file (missing, unreadable, images the trainer cannot decode). Job ids go
    to runs_status.yaml as each job is accepted. Exit 1 when a pre-flight check fails (nothing
    is submitted then) or a run was held back.
    """
    from trainwright.cluster.runs_launch import launch

    plan = _plan(experiment_dir)
    result = launch(
        experiment_dir,
        plan,
        only=_only(only),
        dry_run=dry_run,
        validate=validate,
        force_local=force_local,
        retry=retry,
    )
    emit(result, as_json, lambda d: views.human_launch(d, experiment_dir))
    return 0 if result["ok"] else 1


@runs_group.command("monitor")
@EXPERIMENT
@click.option(
    "--follow", is_flag=True, help="Keep polling (2 s, backing off) until no run is live."
)
@click.option(
    "--max-interval",
    type=Float(1, 3600),
    default=60,
    show_default=True,
    help="Longest wait between polls with --follow, in seconds.",
)
@click.option("--no-resubmit", is_flag=True, help="Only look: no resubmission after an OOM.")
@json_option
def monitor_cmd(
    experiment_dir: Path, follow: bool, max_interval: float, no_resubmit: bool, as_json: bool
) -> int:
    """Poll every job in one call, read each log (step, loss, ETA), update runs_status.yaml.

    squeue for live jobs, then sacct where accounting exists, else `scontrol show job` and the
    jobcomp file. A run that ran out of memory is resubmitted with half the batch and twice the
    gradient accumulation (same effective batch), up to 3 times. Exit 1 when a run ended
    without finishing (FAILED, TIMEOUT, OUT_OF_MEMORY, CANCELLED, NODE_FAIL...).
    """
    from trainwright.cluster.checks import load_plan
    from trainwright.cluster.runs_monitor import follow as follow_jobs
    from trainwright.cluster.runs_monitor import monitor_once, summary_exit_code
    from trainwright.cluster.status import read_status

    read_status(experiment_dir)
    plan = load_plan(experiment_dir)
    usable = plan if plan.ok else None
    if follow:
        quiet = wants_json(as_json)
        report = follow_jobs(
            experiment_dir,
            usable,
            on_report=(lambda r: None) if quiet else views.print_changes(),
            cap_s=max_interval,
            resubmit=not no_resubmit,
        )
        if quiet:
            emit(report, as_json, views.render_table)
    else:
        report = monitor_once(experiment_dir, usable, resubmit=not no_resubmit)
        emit(report, as_json, views.render_table)
    return summary_exit_code(report)
