"""`trainwright eval-grid`, `trainwright diagnose`, `trainwright register` (Phases 11-13)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from trainwright.errors import TrainwrightError
from trainwright.numeric import Float, Int
from trainwright.output import emit, json_option, wants_json
from trainwright.state.grimoire import Grimoire
from trainwright.state.names import check_name

DEFAULT_COMFYUI = "http://127.0.0.1:8188"


def _grimoire(ctx: click.Context) -> Grimoire:
    return Grimoire(ctx.find_root().obj["grimoire"])


def _split_paths(values: tuple[str, ...]) -> list[Path]:
    out = []
    for value in values:
        out += [Path(p.strip()) for p in value.split(",") if p.strip()]
    return out


def _read_prompts_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrainwrightError(f"{path}: prompts file not found") from None
    except UnicodeDecodeError:
        raise TrainwrightError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    prompts = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not prompts:
        raise TrainwrightError(f"{path}: the prompt list is empty (one prompt per line)")
    return prompts


@click.command("eval-grid")
@click.argument("name")
@click.option(
    "--lora",
    "lora",
    required=True,
    type=click.Path(path_type=Path),
    help="The trained LoRA (.safetensors), usually the final checkpoint.",
)
@click.option(
    "--model",
    help="Base model (file name as ComfyUI lists it, or an embedded backend's own model); "
    "default: Base model in intent.md.",
)
@click.option("--prompt", "prompts", multiple=True, help="A test prompt of your own (repeatable).")
@click.option(
    "--prompts-file", type=click.Path(path_type=Path), help="A file of test prompts, one per line."
)
@click.option("--no-standard", is_flag=True, help="Leave out the standard prompts for the type.")
@click.option(
    "--type",
    "lora_type",
    type=click.Choice(["style", "character", "object"]),
    help="LoRA type for the standard prompts; default: Type in intent.md.",
)
@click.option("--trigger", help="Trigger word; default: Trigger word in intent.md.")
@click.option(
    "--weights", help="LoRA weights across the grid, 0-2.  [default: 0.3,0.5,0.7,0.9,1.0]"
)
@click.option(
    "--seed",
    default=1234,
    show_default=True,
    type=Int(0, 2**63 - 1),
    help="The one seed every cell uses, so only the weight changes.",
)
@click.option(
    "--checkpoints",
    "checkpoints",
    multiple=True,
    help="Earlier checkpoints to compare (comma-separated or repeated); one grid each.",
)
@click.option(
    "--comfyui",
    "comfyui_url",
    envvar="TRAINWRIGHT_COMFYUI",
    show_envvar=True,
    help=f"ComfyUI server URL.  [default: {DEFAULT_COMFYUI}]",
)
@click.option("--negative", help="Negative prompt (default from the evaluation data).")
@click.option("--width", type=Int(64, 8192), help="Image width (default by family).")
@click.option("--height", type=Int(64, 8192), help="Image height (default by family).")
@click.option("--steps", type=Int(1, 200), help="Sampler steps (default by family).")
@click.option("--cfg", type=Float(0, 30), help="CFG scale (default by family).")
@click.option("--sampler", help="ComfyUI sampler_name (default by family).")
@click.option("--scheduler", help="ComfyUI scheduler (default by family).")
@click.option(
    "--image-timeout",
    default=600.0,
    show_default=True,
    type=Float(1, 86_400),
    help="Seconds to wait for one image before giving up on ComfyUI.",
)
@click.option(
    "--request-timeout",
    default=30.0,
    show_default=True,
    type=Float(0.1, 3600),
    help="Seconds to wait for one HTTP answer.",
)
@json_option
@click.pass_context
def eval_grid_cmd(
    ctx: click.Context,
    name: str,
    lora: Path,
    model: str | None,
    prompts: tuple[str, ...],
    prompts_file: Path | None,
    no_standard: bool,
    lora_type: str | None,
    trigger: str | None,
    weights: str | None,
    seed: int,
    checkpoints: tuple[str, ...],
    comfyui_url: str | None,
    negative: str | None,
    width: int | None,
    height: int | None,
    steps: int | None,
    cfg: float | None,
    sampler: str | None,
    scheduler: str | None,
    image_timeout: float,
    request_timeout: float,
    as_json: bool,
) -> int:
    """Make the LoRA evaluation grid for project NAME: test prompts down, weights across.

    Every cell uses the same seed, so only the LoRA weight changes along a row. The standard
    prompts for the LoRA's type (resources/evaluation/test-prompts.yaml) come first, then your
    own. Cells are made by ComfyUI (--comfyui URL), or in-process when the base model is the
    embedded 'tiny' model. When no ComfyUI answers, one workflow JSON per cell is saved instead,
    ready to load in ComfyUI.

    Each run goes to a NEW folder grimoire/training/NAME/eval-runs/NNN-DATE/ (grid*.png, cells/,
    workflows/, manifest.json); eval.md gets the facts and the earlier eval.md is kept in the
    earlier run's folder. Exit 0: grid complete (or workflows saved because no ComfyUI was found
    at the default address); 1: grid partial or not made; 2: bad input, nothing written.
    """
    from trainwright.evaluate import comfyui, grid_run
    from trainwright.evaluate import prompts as prompt_mod
    from trainwright.evaluate.lora_file import inspect_lora
    from trainwright.evaluate.project import model_family, read_facts, require_project
    from trainwright.evaluate.record import record_run
    from trainwright.evaluate.runs import RUNS_DIR
    from trainwright.evaluate.workflow import Sampling

    g = _grimoire(ctx)
    check_name(name)
    require_project(g, name)
    facts = read_facts(g, name)
    if g.path_for("eval", name).exists():
        g.read("eval", name)  # a broken eval.md is reported before any image is made
    weight_list = prompt_mod.parse_weights(weights)
    custom = list(prompts) + (_read_prompts_file(prompts_file) if prompts_file else [])
    rows = prompt_mod.build_prompts(
        lora_type or facts.lora_type, trigger or facts.trigger, custom, not no_standard
    )
    base = model or facts.base_model
    if not base:
        raise TrainwrightError("no base model: give --model or set 'Base model' in intent.md")
    paths = _split_paths(checkpoints) + [lora]
    ckpts: list[grid_run.Checkpoint] = []
    for path in paths:
        if any(c.lora.path.resolve() == path.resolve() for c in ckpts):
            raise TrainwrightError(f"{path}: the same checkpoint is given twice")
        label = path.name.removesuffix(".safetensors")
        if any(c.label == label for c in ckpts):
            label = f"{path.resolve().parent.name}-{label}"
        ckpts.append(grid_run.Checkpoint(label, inspect_lora(path)))
    from_flag = ctx.get_parameter_source("comfyui_url") == click.core.ParameterSource.COMMANDLINE
    in_process = _in_process(base, ckpts, comfyui_flag=comfyui_url if from_flag else None)
    url = comfyui.check_url(comfyui_url or DEFAULT_COMFYUI)
    family, defaults = prompt_mod.sampling_for(prompt_mod.family_of(base, model_family(g, base)))
    sampling = Sampling(
        width=width or defaults["width"],
        height=height or defaults["height"],
        steps=steps or defaults["steps"],
        cfg=cfg if cfg is not None else defaults["cfg"],
        sampler=sampler or defaults["sampler"],
        scheduler=scheduler or defaults["scheduler"],
        negative=negative if negative is not None else prompt_mod.load_data()["default_negative"],
    )
    if sampling.width % 8 or sampling.height % 8:
        raise TrainwrightError("--width and --height must be multiples of 8")
    maker = None
    if in_process is not None:  # its own sampling (the embedded model: fixed size, no CFG)
        own = dict(in_process.EVAL_SAMPLING)
        own["steps"] = steps or own["steps"]
        sampling = Sampling(**own)
        maker = _in_process_maker(in_process, sampling.steps)
    req = grid_run.EvalRequest(
        project=name,
        checkpoints=ckpts,
        base_model=base,
        prompts=rows,
        weights=weight_list,
        seed=seed,
        sampling=sampling,
        generator=in_process.NAME if in_process is not None else "comfyui",
        comfyui_url=None if in_process is not None else url,
        comfyui_explicit=comfyui_url is not None,
        request_timeout=request_timeout,
        image_timeout=image_timeout,
        maker=maker,
        progress=not wants_json(as_json),
    )
    run = grid_run.run_eval(req, g.project_dir(name) / RUNS_DIR)
    data = run.as_dict()
    data["family"] = family if in_process is None else in_process.NAME
    data.update(record_run(g, name, run))
    ok = run.status == "complete" or (run.status == "workflows-only" and not req.comfyui_explicit)
    data["exit_code"] = 0 if ok else 1
    emit(data, as_json, _render_eval)
    return data["exit_code"]


def _in_process(base: str, ckpts: list[Any], comfyui_flag: str | None) -> Any:
    """The backend that makes this grid in-process (one whose own model is the base), or None
    for ComfyUI; a contradiction is refused.

    A LoRA such a backend trained fits only its bundled model, which ComfyUI does not have; a
    LoRA from another trainer cannot be applied to that model.
    """
    from trainwright import backends

    by_base = backends.in_process_eval(base)
    trained_by = {c.label: c.lora.metadata.get("trainwright_backend") for c in ckpts}
    own = {k: backends.lookup(v) for k, v in trained_by.items() if v}
    ours = sorted(k for k, m in own.items() if m is not None and backends.in_process_eval_of(m))
    others = sorted(k for k, v in trained_by.items() if v and k not in ours)
    maker = by_base or (own[ours[0]] if ours else None)
    if maker is None:
        return None
    name = maker.NAME
    if ours and others:
        raise TrainwrightError(
            f"{', '.join(ours)} came from the {name} backend and {', '.join(others)} "
            "from another trainer: one grid compares checkpoints of one base model"
        )
    if ours and by_base is None:
        raise TrainwrightError(
            f"{ours[0]} was trained by the {name} backend on its bundled model, not on "
            f"{base!r}: give --model {name} (or leave --model out when intent.md says {name})"
        )
    if by_base is not None and others:
        raise TrainwrightError(
            f"{others[0]} was trained by {trained_by[others[0]]}, not on the {name} "
            "model: give --model with the base model it was trained on"
        )
    if comfyui_flag is not None:
        raise TrainwrightError(
            f"the {name} model's grid is made in-process; ComfyUI ({comfyui_flag}) does not have "
            f"the bundled {name} model: leave out --comfyui"
        )
    return maker


def _in_process_maker(backend: Any, steps: int) -> Any:
    from trainwright import backends

    try:
        ok, why = backends.installed(backend)
        if not ok:
            raise TrainwrightError(f"the {backend.NAME} backend cannot run here: {why}")
        return backend.eval_image_maker(steps=steps)
    except ImportError as exc:
        raise TrainwrightError(
            f"the {backend.NAME} backend cannot be loaded ({exc}); install it: "
            f"{backends.install_hint(backend)}"
        ) from None


def _render_eval(d: dict[str, Any]) -> str:
    folder = d["folder"]
    how = {
        "comfyui": f"ComfyUI at {d['comfyui']}",
        "workflows": "no generator: workflow JSONs only",
    }.get(d["generator"], f"the {d['generator']} backend, in-process")
    lines = [f"eval-grid {d['project']}: run {d['run']} ({how}), seed {d['seed']}"]
    lines.append(f"  folder: {folder}")
    if d["status"] == "workflows-only":
        lines.append(f"  {d['message']}")
        lines.append(
            f"  {d['cells_total']} workflows in {folder}/workflows/ (open one in ComfyUI, or "
            "start ComfyUI and run this command again)"
        )
    else:
        status = {"partial": "PARTIAL: missing cells are grey tiles"}.get(d["status"], d["status"])
        lines.append(f"  {d['cells_made']} of {d['cells_total']} cells made ({status})")
        for grid_path in d["grids"]:
            lines.append(f"  grid: {folder}/{grid_path}")
        if d["message"]:
            lines.append(f"  problem: {d['message']}")
    if d.get("eval_md"):
        lines.append(f"  facts recorded in {d['eval_md']}")
    if d.get("snapshot"):
        lines.append(f"  the earlier evaluation is kept as {d['snapshot']}")
    if d["grids"]:
        lines.append(
            "  next: look at the grid (weight 0.5 first), then record the judgement: "
            f'trainwright grimoire set eval --project {d["project"]} "Sweet spot=0.5-0.7" '
            '"Recommended weight=0.6" ...'
        )
    return "\n".join(lines)


@click.command("diagnose")
@click.argument("symptoms", nargs=-1)
@click.option("--project", help="Training project: fills in its name and checkpoints.")
@click.option(
    "--from-progress",
    is_flag=True,
    help="Also diagnose the anomalies the monitor wrote in progress.md (needs --project).",
)
@click.option("--list", "show_list", is_flag=True, help="List every known symptom and stop.")
@json_option
@click.pass_context
def diagnose_cmd(
    ctx: click.Context,
    symptoms: tuple[str, ...],
    project: str | None,
    from_progress: bool,
    show_list: bool,
    as_json: bool,
) -> None:
    """Explain what went wrong with a LoRA: SYMPTOM -> likely cause -> fix -> next command.

    Describe what the images look like, in your words ("blurry", "ignores the trigger",
    "copies training images", "wrong colours", "only works at 1.0", ...). The table is
    resources/training/failure-modes.yaml; --list shows it. Exit 2 when a symptom matches
    nothing (close names are suggested).
    """
    from trainwright.evaluate import diagnose as dg
    from trainwright.evaluate.project import read_facts, require_project

    if show_list:
        emit({"catalogue": dg.catalogue()}, as_json, dg.render)
        return
    if from_progress and not project:
        raise TrainwrightError("--from-progress reads progress.md of a project: give --project")
    context = dg.Context()
    wanted = list(symptoms)
    if project:
        g = _grimoire(ctx)
        check_name(project)
        require_project(g, project)
        facts = read_facts(g, project)
        context = dg.Context(project, _checkpoints(g.project_dir(project), facts.checkpoints))
        if from_progress:
            found = dg.from_anomalies(facts.anomalies)
            if not found and not wanted:
                emit(
                    {
                        "project": project,
                        "diagnoses": [],
                        "message": f"progress.md of '{project}' records no loss anomalies",
                    },
                    as_json,
                    dg.render,
                )
                return
            wanted += found
    emit(dg.diagnose(wanted, context), as_json, dg.render)


def _checkpoints(folder: Path, listed: str | None) -> list[str] | None:
    import re

    def natural(p: Path) -> list[Any]:
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]

    files = sorted((folder / "checkpoints").glob("*.safetensors"), key=natural)
    if files:
        return [str(p) for p in files]
    names = [s.strip() for s in (listed or "").split(",") if s.strip()]
    return names or None


@click.command("register")
@click.argument("name")
@click.option("--weight", type=Float(), help="Recommended weight; default: the one in eval.md.")
@click.option("--good-for", help="What the LoRA does well; default: Description in intent.md.")
@click.option(
    "--file",
    "lora_file",
    type=click.Path(path_type=Path),
    help="The LoRA file; default: the one eval.md names.",
)
@click.option("--run", help="Eval run whose images to archive; default: the one eval.md names.")
@click.option("--date", help="Training date (YYYY-MM-DD); default: the LoRA file's date.")
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@click.option(
    "--override",
    metavar="REASON",
    help="Register although the run is not COMPLETE or a gate was not GO; the reason and your "
    "user name are recorded in the studio.md entry.",
)
@json_option
@click.pass_context
def register_cmd(
    ctx: click.Context,
    name: str,
    weight: float | None,
    good_for: str | None,
    lora_file: Path | None,
    run: str | None,
    date: str | None,
    dry_run: bool,
    override: str | None,
    as_json: bool,
) -> None:
    """Register project NAME's finished LoRA in grimoire/studio.md so /art can use it.

    Writes the `### LoRA: NAME` entry (file, type, trigger word, recommended weight, base model,
    good for, training date, training params) from intent.md, config.md and eval.md; sets
    status.md to COMPLETE; copies the evaluation run's images to
    grimoire/training/NAME/eval/RUN/. Running it again changes only what differs.
    """
    import datetime as dt
    import re

    from trainwright.evaluate.project import require_project
    from trainwright.evaluate.register import register, render

    g = _grimoire(ctx)
    check_name(name)
    require_project(g, name)
    if run is not None:
        check_name(run, "eval run")
    if date is not None:
        try:
            if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", date, re.ASCII):
                raise ValueError
            dt.date.fromisoformat(date)
        except ValueError:
            raise TrainwrightError(f"--date {date!r} is not a date like 2025-06-01") from None
    if override is not None and not override.strip():
        raise TrainwrightError('--override needs the reason, e.g. --override "trained by hand"')
    result = register(g, name, weight, good_for, lora_file, run, date, dry_run, override=override)
    emit(result, as_json, render)
