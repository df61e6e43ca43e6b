"""`trainwright config` as a library: from a project's intent, the catalog, a preset, overrides
and the VRAM estimate to a TrainingPlan, rendered by the chosen backend and recorded in config.md
(the command in commands.py only parses options and prints)."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

from trainwright.clock import file_stamp
from trainwright.errors import TrainwrightError

PLAN_FILE = "trainwright-plan.json"


def vram_setup(plan: Any, backend: Any = None, device: str = "cuda") -> Any:
    """The estimator's view of a plan; a backend may add what its file implies
    (`vram_overrides(plan)`: a quantized base, cached text-encoder outputs)."""
    from trainwright.backends.common import data
    from trainwright.hardware.vram import Setup

    opt = data("optimizers")["optimizers"][plan.optimizer]
    image = plan.model.is_image
    backend_view: dict[str, Any] = {}
    if backend is not None and hasattr(backend, "vram_overrides"):
        backend_view = backend.vram_overrides(plan)
    setup = Setup(
        method=plan.method,
        precision=plan.precision,
        rank=plan.rank,
        targets="all",  # the trainers' defaults adapt every linear layer
        optimizer=opt["vram_name"],
        batch=plan.batch_size,
        seq_len=None if image else plan.seq_len,
        resolution=(plan.resolution, plan.resolution) if image else None,
        gradient_accumulation=plan.gradient_accumulation,
        gradient_checkpointing=plan.gradient_checkpointing,
        cache_latents=plan.cache_latents if image else False,
        cache_text_encoder=plan.cache_text_encoder if image else False,
        lora_dropout=plan.lora_dropout,
        device=device,
    )
    if backend is not None and hasattr(setup, "framework"):  # the loss head it computes
        from trainwright import backends

        backend_view.setdefault("framework", backends.framework(backend, plan))
    return replace(setup, **backend_view)


def run_target(backend: Any, gpu: Any, model: Any = None) -> tuple[Any, str]:
    """What the estimate is checked against, and the device: the GPU chosen (--gpu, --vram,
    studio.md); for a backend that also runs on the CPU with none chosen, the GPU nvidia-smi
    finds (its trainer picks CUDA when present), else the system RAM available now."""
    on_cpu = getattr(backend, "RUNS_ON_CPU", False) or (
        model is not None and getattr(backend, "model_runs_on_cpu", lambda m: False)(model)
    )
    if gpu is not None or not on_cpu:
        return gpu, "cuda"
    from trainwright.hardware.commands import ram_target
    from trainwright.hardware.gpu import GPUSpec, lookup_gpu, probe_gpus

    probe = probe_gpus()
    if probe.found:
        first = probe.gpus[0]
        try:
            tflops = lookup_gpu(first.name).bf16_tflops
        except TrainwrightError:
            tflops = None
        return GPUSpec(first.name, first.memory_total_gib, tflops, source="nvidia-smi"), "cuda"
    return ram_target(), "cpu"


def memory_text(total_bytes: float, target: Any, device: str, fits: bool | None) -> str:
    """config.md's Estimated VRAM value."""
    from trainwright.hardware.vram import GIB

    verdict = "fits with the 20% margin" if fits else "DOES NOT FIT with the 20% margin"
    if device == "cpu":
        return (
            f"{total_bytes / GIB:.1f} GiB of system RAM (runs on the CPU: no GPU found; "
            f"available: {target.memory_gib:.1f} GiB, {target.source}; {verdict})"
        )
    text = f"{total_bytes / GIB:.1f} GiB"
    if target:
        return text + f" (available: {target.memory_gib:.1f} GiB on {target.name}; {verdict})"
    return text + " (available: unknown; give --gpu or --vram, or list a GPU in studio.md)"


def _studio_model_path(g: Any, model: Any) -> str | None:
    """The File of a studio.md `### Model:` entry naming this model (id, alias or name)."""
    path = g.path_for("studio")
    if not path.exists():
        return None
    _, data = g.read("studio")
    wanted = {model.id.lower(), model.name.lower(), *(a.lower() for a in model.aliases)}
    for title, fields in data["sections"].items():
        if title.startswith("Model: ") and title.removeprefix("Model: ").strip().lower() in wanted:
            raw = str(fields.get("File") or "").strip()
            return _local_path(g, raw) if raw else None
    return None


# Override keys that name a file or folder. The person types them relative to the project root;
# the trainer starts in the project's config folder, so they are written relative to that folder
# when they lie inside the project (the files then work wherever the project is copied: a rented
# instance, a cluster's shared disk) and absolute when they lie outside it.
PATH_KEYS = {
    "dataset_dir",
    "image_dir",
    "base_model_path",
    "pretrained_model_name_or_path",
    "checkpoint_dir",
}


def portable_path(g: Any, folder: Path, path: str | Path) -> str:
    """An absolute path as the config in `folder` should name it: relative to `folder` when it
    lies under the project root, else as it is."""
    target = Path(path)
    if not target.is_absolute():
        return str(path)
    root = Path(os.path.realpath(g.project_root))
    real, where = Path(os.path.realpath(target)), Path(os.path.realpath(folder))
    if not all(p == root or root in p.parents for p in (real, where)):
        return str(path)  # outside the project, or reached through a link that leads out of it
    return os.path.relpath(real, where)


def _local_path(g: Any, raw: str) -> str:
    """raw made absolute against the project root when it names something there (a hub id such
    as org/model is left as it is)."""
    path = g.resolve(raw)
    return str(path) if path.exists() or raw.startswith((".", "~")) else raw


def _config_paths(g: Any, folder: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(overrides)
    for key, value in overrides.items():
        if key in ("dataset_dir", "image_dir") and isinstance(value, str) and value.strip():
            out[key] = portable_path(g, folder, g.resolve(value))
        elif key in PATH_KEYS and isinstance(value, str) and value.strip():
            out[key] = portable_path(g, folder, _local_path(g, value))
    return out


def _hub_id(model: Any) -> str | None:
    return next((a for a in model.aliases if "/" in a), None)


def _write_files(folder: Path, files: dict[str, str]) -> list[str]:
    """Write the files; a changed existing one is kept beside as <name>.<time>.bak first."""
    from trainwright.state.atomic import atomic_write_text
    from trainwright.state.safe_paths import new_backup_file

    kept = []
    stamp = file_stamp()
    for name, text in files.items():
        path = folder / name
        if name != PLAN_FILE and path.exists() and path.read_bytes() != text.encode("utf-8"):
            kept.append(str(new_backup_file(path, stamp, path.read_bytes())))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return kept


def generate(
    grimoire: Path,
    project: str,
    backend_name: str,
    model_id: str | None,
    preset: str,
    optimizer: str,
    overrides: dict[str, Any],
    gpu_name: str | None = None,
    vram_gb: float | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    from trainwright import backends
    from trainwright.backends.common import PLACEHOLDER, count_images
    from trainwright.backends.training_plan import build_plan, has_placeholder, with_batch
    from trainwright.hardware import catalog, timing
    from trainwright.hardware.studio_gpus import select_gpu
    from trainwright.hardware.vram import check_fit
    from trainwright.state.content_hash import content_hash
    from trainwright.state.grimoire import Grimoire

    g = Grimoire(grimoire)
    folder = g.project_dir(project)
    if not g.path_for("config", project).exists():
        raise TrainwrightError(
            f"project '{project}' has no config.md: start it with "
            f"'trainwright grimoire new {project}'"
        )
    backend = backends.get(backend_name)
    if not hasattr(backend, "render"):
        raise TrainwrightError(f"backend {backend_name!r} is not written by trainwright config")
    intent: dict[str, Any] = {}
    if g.path_for("intent", project).exists():
        intent = g.read("intent", project)[1]["sections"][""]
    model_name = model_id or intent.get("Base model")
    if not model_name:
        raise TrainwrightError("give --model ID (or set the Base model in intent.md)")
    model = catalog.load().get(str(model_name))
    defaults: dict[str, Any] = {}
    if model.is_image:
        dataset = g.dataset_folder(project) if intent.get("Dataset folder") else None
        if dataset:
            defaults["dataset_dir"] = portable_path(g, folder, dataset)
            defaults["images"] = count_images(str(dataset))
        if intent.get("Trigger word"):
            defaults["trigger_word"] = str(intent["Trigger word"])
    elif intent.get("Dataset folder"):  # a language model's rows: a file or a folder of them
        defaults["dataset_dir"] = portable_path(g, folder, g.dataset_folder(project))
    studio_model = _studio_model_path(g, model)
    defaults["base_model_path"] = (
        (studio_model and portable_path(g, folder, studio_model))
        or _hub_id(model)
        or getattr(backend, "BASE_MODEL", None)  # a trainer that ships its model (tiny)
        or PLACEHOLDER
    )
    result = build_plan(
        backend,
        model,
        project,
        preset=preset,
        optimizer=optimizer,
        overrides=_config_paths(g, folder, overrides or {}),
        defaults=defaults,
    )
    plan = result.plan
    gpu, device = run_target(backend, select_gpu(g, gpu_name, vram_gb), model)
    fit = check_fit(model, vram_setup(plan, backend, device), gpu.memory_gib if gpu else None)
    notes: list[str] = []
    if fit.fits is False and fit.recommended_batch:
        notes.append(
            f"batch {plan.batch_size} does not fit on {gpu.name} with the 20% margin: "
            f"batch {fit.recommended_batch} with gradient accumulation "
            f"{fit.recommended_gradient_accumulation} keeps the effective batch"
        )
        plan = with_batch(plan, fit.recommended_batch, fit.recommended_gradient_accumulation or 1)
        fit = check_fit(model, vram_setup(plan, backend, device), gpu.memory_gib)
    elif fit.fits is False and plan.batch_size > 1:
        effective = plan.batch_size * plan.gradient_accumulation
        notes.append(f"nothing fits on {gpu.name} even at batch 1; batch set to 1 (see below)")
        plan = with_batch(plan, 1, effective)
        fit = check_fit(model, vram_setup(plan, backend, device), gpu.memory_gib)
    files = backend.render(plan)
    est = fit.estimate
    vram_text = memory_text(est.total, gpu, device, fit.fits)
    time_text = "unknown (no GPU throughput known)"
    if device == "cpu":
        time_text = "unknown on the CPU (the dry run measures seconds per step)"
    if gpu and gpu.bf16_tflops:
        per_example = plan.resolution**2 if model.is_image else plan.seq_len
        step = timing.seconds_per_step(
            model,
            per_example,
            plan.batch_size * plan.gradient_accumulation,
            gpu.bf16_tflops,
            plan.gradient_checkpointing,
        )
        if model.is_image and not plan.images:
            time_text = "unknown until the dataset folder (intent.md) has images"
        elif model.is_image:
            total = step * plan.total_steps()
            time_text = (
                f"about {timing.describe(total)} on {gpu.name} ({plan.total_steps()} steps; "
                "rough, within 2x)"
            )
        else:
            time_text = f"about {timing.describe(step)} per step on {gpu.name} (rough, within 2x)"
    placeholders = has_placeholder(files)
    warnings = list(result.ranges.warnings)
    if model.is_image and not plan.images:
        warnings.append(
            "no images found in the dataset folder: step counts assume one image; rerun "
            "trainwright config once intent.md's Dataset folder holds the images"
        )
    if placeholders:
        warnings.append(
            f"{', '.join(placeholders)} still contain {PLACEHOLDER}: fill in the model paths "
            "(KEY=VALUE overrides, or a `### Model:` entry in studio.md)"
        )
    record = {
        "backend": backend.NAME,
        "plan": plan.as_dict(),
        "files": list(files),
        "gpu": {"name": gpu.name, "memory_gib": gpu.memory_gib}
        if device == "cuda" and gpu
        else None,
        "device": device,
        "warnings": warnings,
    }
    written: list[str] = []
    if not dry_run:
        files_with_plan = {**files, PLAN_FILE: json.dumps(record, indent=2) + "\n"}
        written = _write_files(folder, files_with_plan)
        digest = content_hash(*[folder / f for f in files_with_plan]).digest
        launch = shlex.join(backend.command(folder / next(iter(files))))
        why = {k: f"{getattr(plan, k, '')} ({v})" for k, v in result.ranges.explanations.items()}
        g.update(
            "config",
            {
                "": {
                    "Backend": backend.NAME,
                    "Base model": f"{model.name} ({plan.base_model_path})",
                    "Preset": plan.preset,
                    "Key parameters": plan.key_parameters(),
                    "Estimated VRAM": vram_text,
                    "Estimated time": time_text,
                    "Config file": ", ".join(files),
                    "Config hash": digest,
                    "Command": launch,
                    "Warnings": "; ".join(warnings) or "none",
                },
                "Why these settings": why,
            },
            project,
        )
    else:
        digest = launch = None
    return {
        "project": project,
        "backend": backend.NAME,
        "model": model.id,
        "folder": str(folder),
        "files": {name: str(folder / name) for name in files},
        "contents": files if dry_run else None,
        "config_hash": digest,
        "command": launch,
        "estimated_vram": vram_text,
        "estimated_time": time_text,
        "fits": fit.fits,
        "device": device,
        "batch_size": plan.batch_size,
        "gradient_accumulation": plan.gradient_accumulation,
        "key_parameters": plan.key_parameters(),
        "warnings": warnings,
        "notes": notes + fit.advice,
        "explanations": result.ranges.explanations,
        "backups": written,
        "dry_run": dry_run,
    }


def replan(plan_record: dict[str, Any]) -> Any:
    """The TrainingPlan recorded by `config` (for Gate 2)."""
    from trainwright.backends.common import TrainingPlan
    from trainwright.hardware import catalog

    raw = dict(plan_record["plan"])
    model = catalog.load().get(raw.pop("model"))
    return TrainingPlan(model=model, **raw)
