"""Make an evaluation grid: every prompt x weight (x checkpoint) cell, one fixed seed.

Three ways to make the cells: ComfyUI over HTTP, a backend that makes them in-process (its
EVAL_BASE_MODELS: the embedded trainer's own model), or, when
no ComfyUI answers, only the workflow JSONs (one per cell, loadable in ComfyUI) for later. Every
run gets a new folder (see runs.py); a cell that fails is drawn as a grey tile and the grid is
marked PARTIAL, in its name, its legend, the manifest and eval.md.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from trainwright.evaluate import comfyui, grid
from trainwright.evaluate.lora_file import LoraFile
from trainwright.evaluate.prompts import Prompt, weight_label
from trainwright.evaluate.runs import new_run_dir, slug, write_manifest
from trainwright.evaluate.workflow import (
    OUTPUT_NODE,
    Sampling,
    build_workflow,
    file_choice,
    match_file,
    validate_workflow,
)
from trainwright.state.atomic import atomic_write_bytes, atomic_write_text

OK, FAILED, NOT_RUN, WORKFLOW_ONLY = "ok", "failed", "not-run", "workflow-only"

# (lora path, prompt, weight, seed) -> image; an in-process backend provides one.
ImageMaker = Callable[[Path, str, float, int], Image.Image]

NOT_IN_PROCESS = ("comfyui", "workflows")


@dataclass
class Checkpoint:
    label: str
    lora: LoraFile


@dataclass
class Cell:
    checkpoint: str
    row: int
    col: int
    weight: float
    prompt: Prompt
    status: str = NOT_RUN
    image: str | None = None
    workflow: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "row": self.row,
            "col": self.col,
            "weight": self.weight,
            "prompt": self.prompt.label,
            "status": self.status,
            "image": self.image,
            "workflow": self.workflow,
            "error": self.error,
        }


@dataclass
class EvalRequest:
    project: str
    checkpoints: list[Checkpoint]
    base_model: str
    prompts: list[Prompt]
    weights: list[float]
    seed: int
    sampling: Sampling
    generator: str  # "comfyui", or the name of the backend that makes the cells in-process
    comfyui_url: str | None = None
    comfyui_explicit: bool = False
    request_timeout: float = 30.0
    image_timeout: float = 600.0
    probe_timeout: float = 3.0
    maker: ImageMaker | None = None
    progress: bool = False


@dataclass
class EvalRun:
    run_id: str
    folder: Path
    request: EvalRequest
    cells: list[Cell]
    generator: str
    status: str = "complete"  # complete, partial, workflows-only, failed
    message: str = ""
    grids: list[str] = field(default_factory=list)
    server: dict[str, Any] = field(default_factory=dict)

    @property
    def made(self) -> int:
        return sum(c.status == OK for c in self.cells)

    @property
    def partial(self) -> bool:
        return 0 < self.made < len(self.cells)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.folder).as_posix()

    def as_dict(self) -> dict[str, Any]:
        r = self.request
        return {
            "run": self.run_id,
            "folder": str(self.folder),
            "project": r.project,
            "status": self.status,
            "message": self.message,
            "generator": self.generator,
            "base_model": r.base_model,
            "seed": r.seed,
            "weights": r.weights,
            "prompts": [p.as_dict() for p in r.prompts],
            "checkpoints": [{"label": c.label, **c.lora.as_dict()} for c in r.checkpoints],
            "sampling": r.sampling.as_dict(),
            "comfyui": r.comfyui_url if self.generator in NOT_IN_PROCESS else None,
            "cells_total": len(self.cells),
            "cells_made": self.made,
            "partial": self.partial,
            "grids": self.grids,
            "cells": [c.as_dict() for c in self.cells],
        }


def plan_cells(req: EvalRequest) -> list[Cell]:
    return [
        Cell(ck.label, r, c, w, p)
        for ck in req.checkpoints
        for r, p in enumerate(req.prompts)
        for c, w in enumerate(req.weights)
    ]


def _cell_stem(cell: Cell) -> str:
    return f"r{cell.row + 1:02d}-{slug(cell.prompt.label, 20)}-w{weight_label(cell.weight)}"


def _progress(req: EvalRequest, total: int) -> Any:
    from tqdm import tqdm

    quiet = not req.progress or not sys.stderr.isatty()
    return tqdm(total=total, desc="eval grid", unit="image", disable=quiet, file=sys.stderr)


def run_eval(req: EvalRequest, runs_dir: Path, today: _dt.date | None = None) -> EvalRun:
    """Make the grid(s) in a new run folder; never raises for ComfyUI trouble (see `status`)."""
    server: dict[str, Any] = {}
    generator = req.generator
    message = ""
    if generator == "comfyui":
        client = comfyui.ComfyUIClient(req.comfyui_url or "", timeout=req.probe_timeout)
        try:
            server = {"system_stats": client.system_stats()}
        except comfyui.ComfyUIError as exc:
            generator = "workflows"
            message = f"{exc}; saved one workflow JSON per cell instead (load them in ComfyUI)"
    run_id, folder = new_run_dir(runs_dir, today)
    run = EvalRun(run_id, folder, req, plan_cells(req), generator, message=message, server=server)
    try:
        if generator not in NOT_IN_PROCESS:
            _run_in_process(run)
        else:
            _write_workflows(run)
            if generator == "comfyui":
                _run_comfyui(run)
    except KeyboardInterrupt:
        _stop(run, [c for c in run.cells if c.status != OK], "stopped by the user (Ctrl-C)")
        _finish(run)
        raise
    _finish(run)
    return run


def _write_workflows(run: EvalRun, names: dict[str, str] | None = None) -> None:
    req = run.request
    ckpt_name = (names or {}).get("__model__", Path(req.base_model).name)
    for cell in run.cells:
        lora = next(c.lora for c in req.checkpoints if c.label == cell.checkpoint)
        lora_name = (names or {}).get(cell.checkpoint, lora.path.name)
        graph = build_workflow(
            ckpt_name,
            lora_name,
            cell.weight,
            cell.prompt.text,
            req.seed,
            req.sampling,
            filename_prefix=f"trainwright/{slug(req.project)}/{run.run_id}/{_cell_stem(cell)}",
        )
        path = run.folder / "workflows" / slug(cell.checkpoint) / f"{_cell_stem(cell)}.json"
        atomic_write_text(path, json.dumps(graph, indent=2) + "\n")
        cell.workflow = run.rel(path)
        cell.status = WORKFLOW_ONLY


def _graph(run: EvalRun, cell: Cell) -> dict[str, Any]:
    assert cell.workflow is not None
    return json.loads((run.folder / cell.workflow).read_text(encoding="utf-8"))


def _server_names(run: EvalRun, info: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Map our model and LoRA files to the names ComfyUI lists; say which it does not have."""
    req = run.request
    names: dict[str, str] = {}
    missing: list[str] = []
    model = Path(req.base_model).name
    found = match_file(file_choice(info, "CheckpointLoaderSimple", "ckpt_name"), model)
    if found:
        names["__model__"] = found
    else:
        missing.append(f"base model {model} (ComfyUI/models/checkpoints/)")
    loras = file_choice(info, "LoraLoader", "lora_name")
    for ck in req.checkpoints:
        hit = match_file(loras, ck.lora.path.name)
        if hit:
            names[ck.label] = hit
        else:
            missing.append(f"LoRA {ck.lora.path.name} (ComfyUI/models/loras/)")
    return names, missing


def _run_comfyui(run: EvalRun) -> None:
    req = run.request
    client = comfyui.ComfyUIClient(req.comfyui_url or "", timeout=req.request_timeout)
    try:
        info = client.object_info()
    except comfyui.ComfyUIError as exc:
        _stop(run, run.cells, f"could not read ComfyUI's node list: {exc}")
        return
    names, missing = _server_names(run, info)
    if missing:
        _stop(
            run,
            run.cells,
            "ComfyUI does not have " + "; ".join(missing) + ": copy the file(s) there "
            "(or refresh ComfyUI) and run again",
        )
        return
    _write_workflows(run, names)
    problems = validate_workflow(_graph(run, run.cells[0]), info, check_files=True)
    if problems:
        _stop(run, run.cells, "the workflow does not fit this ComfyUI: " + "; ".join(problems[:3]))
        return
    bar = _progress(req, len(run.cells))
    with bar:
        for i, cell in enumerate(run.cells):
            try:
                prompt_id = client.queue(_graph(run, cell))
                entry = client.wait(prompt_id, req.image_timeout)
                images = comfyui.output_images(entry, OUTPUT_NODE)
                if not images:
                    raise comfyui.ExecutionFailed("ComfyUI finished but saved no image")
                _save_png(run, cell, client.view(images[0]))
            except (comfyui.Rejected, comfyui.ExecutionFailed) as exc:
                cell.status, cell.error = FAILED, str(exc)
            except (comfyui.Unreachable, comfyui.TimedOut, comfyui.ServerError) as exc:
                cell.status, cell.error = FAILED, str(exc)
                run.message = f"stopped after {run.made} of {len(run.cells)} cells: {exc}"
                _stop(run, run.cells[i + 1 :], f"not run: {exc}")
                return
            bar.update(1)


def _stop(run: EvalRun, cells: list[Cell], reason: str) -> None:
    for cell in cells:
        if cell.status in (NOT_RUN, WORKFLOW_ONLY):
            cell.status, cell.error = NOT_RUN, reason
    if not run.message:
        run.message = reason


def _save_png(run: EvalRun, cell: Cell, data: bytes) -> None:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            img = im.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise comfyui.ExecutionFailed(f"ComfyUI's /view did not return an image ({exc})") from None
    path = run.folder / "cells" / slug(cell.checkpoint) / f"{_cell_stem(cell)}.png"
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    cell.status, cell.image, cell.error = OK, run.rel(path), None


def _run_in_process(run: EvalRun) -> None:
    req = run.request
    if req.maker is None:
        _stop(run, run.cells, f"the {run.generator} backend is not available in this installation")
        return
    bar = _progress(req, len(run.cells))
    with bar:
        for cell in run.cells:
            lora = next(c.lora for c in req.checkpoints if c.label == cell.checkpoint)
            try:
                img = req.maker(lora.path, cell.prompt.text, cell.weight, req.seed)
            except Exception as exc:  # one cell's failure must not lose the others
                cell.status, cell.error = FAILED, f"{type(exc).__name__}: {exc}"
            else:
                buf = io.BytesIO()
                img.convert("RGB").save(buf, format="PNG")
                _save_png(run, cell, buf.getvalue())
            bar.update(1)


def _finish(run: EvalRun) -> None:
    req = run.request
    if run.generator == "workflows":
        run.status = "workflows-only"
    elif run.made == len(run.cells):
        run.status = "complete"
    elif run.made == 0:
        run.status = "failed"
    else:
        run.status = "partial"
    if run.made:
        for ck in req.checkpoints:
            run.grids.append(_compose_one(run, ck))
    if run.status == "partial" and not run.message:
        failed = [c for c in run.cells if c.status != OK]
        run.message = f"{len(failed)} of {len(run.cells)} cells failed: {failed[0].error}"
    elif run.status == "failed" and not run.message:
        run.message = next((c.error for c in run.cells if c.error), "no cell was generated")
    write_manifest(run.folder, {**run.as_dict(), "server": run.server})


def _compose_one(run: EvalRun, ck: Checkpoint) -> str:
    req = run.request
    rows: list[list[Image.Image | None]] = [[None] * len(req.weights) for _ in req.prompts]
    reasons: list[list[str | None]] = [[None] * len(req.weights) for _ in req.prompts]
    for cell in run.cells:
        if cell.checkpoint != ck.label:
            continue
        if cell.status == OK and cell.image:
            with Image.open(run.folder / cell.image) as im:
                rows[cell.row][cell.col] = im.convert("RGB")
        else:
            reasons[cell.row][cell.col] = cell.error or cell.status
    how = (
        f"{run.generator} backend, in-process, {req.sampling.steps} "
        f"{req.sampling.sampler.upper()} steps"
        if run.generator not in NOT_IN_PROCESS
        else f"{req.sampling.sampler}/{req.sampling.scheduler}, {req.sampling.steps} steps, "
        f"cfg {req.sampling.cfg:g}"
    )
    spec = grid.GridSpec(
        title=f"{req.project}  |  LoRA {ck.label}  |  base {req.base_model}  |  seed {req.seed}"
        f"  |  {how}  |  run {run.run_id}",
        col_labels=[f"weight {weight_label(w)}" for w in req.weights],
        row_labels=[p.label for p in req.prompts],
        row_texts=[p.text for p in req.prompts],
    )
    image = grid.compose(spec, rows, reasons)
    many = len(req.checkpoints) > 1
    partial = any(r is None for row in rows for r in row)
    name = "grid" + (f"-{slug(ck.label)}" if many else "") + ("-partial" if partial else "")
    path = run.folder / f"{name}.png"
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return run.rel(path)
