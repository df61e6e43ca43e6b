"""Gate 2, the config: GO when the VRAM estimate fits the GPU with the 20% margin and every
parameter is inside its safe range; bound to the hash of the generated config files. A backend
that runs on the CPU, written where no GPU was found, is checked against the system RAM
available when the gate runs, with the same margin.

The check reads what `trainwright config` wrote (config.md's Config file list and
trainwright-plan.json), takes the batch settings back from the backend's own file (the knob people
edit most), and redoes the estimate, the range checks, the trainer-name checks and the search for
paths still to fill in. Editing any config file afterwards changes the hash: the GO goes stale.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from trainwright.errors import TrainwrightError
from trainwright.state.content_hash import content_hash
from trainwright.state.gates import GO, NO_GO, GateResult
from trainwright.state.grimoire import Grimoire
from trainwright.state.hints import config_command

PLAN_FILE = "trainwright-plan.json"


def _files(grimoire: Grimoire, project: str) -> list[Path]:
    _, data = grimoire.read("config", project)
    listed = (data["sections"][""].get("Config file") or "").strip()
    if not listed:
        raise TrainwrightError(
            f"no config written for '{project}' yet: run '{config_command(grimoire, project)}'"
        )
    folder = grimoire.project_dir(project)
    paths = [folder / name.strip() for name in listed.split(",") if name.strip()]
    paths.append(folder / PLAN_FILE)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise TrainwrightError(f"config files missing: {', '.join(missing)}")
    return paths


def binding(grimoire: Grimoire, project: str) -> str:
    return content_hash(*_files(grimoire, project)).digest


def check(grimoire: Grimoire, project: str) -> GateResult:
    from trainwright import backends
    from trainwright.backends.common import PLACEHOLDER
    from trainwright.backends.configure import replan, vram_setup
    from trainwright.backends.training_plan import RANGED, plan_ranges
    from trainwright.hardware.commands import ram_target
    from trainwright.hardware.vram import GIB, SAFETY_MARGIN, check_fit

    paths = _files(grimoire, project)
    digest = content_hash(*paths).digest
    record = json.loads(paths[-1].read_text(encoding="utf-8"))
    backend = backends.get(record["backend"])
    plan = replan(record)
    main_config = paths[0]
    try:
        batch, accumulation = backends.batch_settings(backend, main_config)
    except (ValueError, KeyError, OSError) as exc:
        raise TrainwrightError(f"{main_config}: {exc}") from None
    plan = replace(plan, batch_size=batch, gradient_accumulation=accumulation)
    reasons: list[str] = []
    fixes: list[str] = []
    folder = grimoire.project_dir(project)
    files = {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8") for p in paths[:-1]}

    gpu = record.get("gpu")
    device = record.get("device", "cuda")
    if device == "cpu":  # a CPU run: checked against the RAM this machine has free now
        ram = ram_target()
        gpu = {"name": ram.name, "memory_gib": ram.memory_gib, "source": ram.source}
    setup = vram_setup(plan, backend, device)
    fit = check_fit(plan.model, setup, gpu["memory_gib"] if gpu else None)
    est = fit.estimate
    vram_ok = bool(fit.fits)
    if device == "cpu":
        usable = gpu["memory_gib"] * (1 - SAFETY_MARGIN)
        reasons.append(
            f"runs on the CPU (no GPU found when the config was written): {est.total / GIB:.1f} "
            f"GiB of system RAM {'fits' if vram_ok else 'does not fit'} the "
            f"{gpu['memory_gib']:.1f} GiB available now ({gpu['source']}; {usable:.1f} GiB "
            f"usable with the {int(SAFETY_MARGIN * 100)}% margin)"
        )
        if not vram_ok:
            if fit.recommended_batch:
                fixes.append(
                    f"set batch {fit.recommended_batch} with gradient accumulation "
                    f"{fit.recommended_gradient_accumulation}"
                )
            fixes.append("free memory on this machine, or run on a GPU")
    elif gpu is None:
        reasons.append("no GPU to check the estimate against")
        fixes.append(
            "add the GPU to grimoire/studio.md (or give the config command --gpu or --vram), "
            f"then rerun: {config_command(grimoire, project)}"
        )
    elif vram_ok:
        reasons.append(
            f"VRAM {est.total / GIB:.1f} GiB fits {gpu['name']} ({gpu['memory_gib']:.1f} GiB) "
            f"with the {int(SAFETY_MARGIN * 100)}% margin"
        )
    else:
        reasons.append(
            f"VRAM {est.total / GIB:.1f} GiB does not fit {gpu['name']} "
            f"({gpu['memory_gib'] * (1 - SAFETY_MARGIN):.1f} GiB usable with the margin)"
        )
        if fit.recommended_batch:
            fixes.append(
                f"set batch {fit.recommended_batch} with gradient accumulation "
                f"{fit.recommended_gradient_accumulation}"
            )
        fixes += fit.advice

    skip = ("seq_len",) if plan.model.is_image else ("resolution", "repeats", "caption_dropout")
    values = {k: getattr(plan, k) for k in RANGED if k not in skip}
    ranges = plan_ranges(plan.model, values, plan.optimizer)
    if ranges.errors or ranges.warnings:
        reasons += ranges.errors + ranges.warnings
        fixes.append("bring the values above into their safe ranges (parameters-guide.md)")
    else:
        reasons.append("every parameter is inside its safe range")

    no_images = plan.model.is_image and not plan.images
    if no_images:
        reasons.append("no images were counted in the dataset folder when the config was written")
        fixes.append(
            "put the images in intent.md's Dataset folder, then rerun: "
            + config_command(grimoire, project)
        )
    left = [name for name, text in files.items() if PLACEHOLDER in text]
    if left:
        reasons.append(f"{', '.join(left)} still contain {PLACEHOLDER}")
        fixes.append(
            "name the downloaded model in grimoire/studio.md (a '### Model:' entry with its File),"
            f" then rerun: {config_command(grimoire, project)}"
        )
    problems = backend.check_keys(files, folder) if hasattr(backend, "check_keys") else []
    if problems:
        reasons += problems
        fixes.append("remove or rename the keys the trainer does not know")

    ok = (
        vram_ok
        and not ranges.errors
        and not ranges.warnings
        and not left
        and not problems
        and not no_images
    )
    if device == "cpu":
        memory = (
            f"{est.total / GIB:.1f} GiB of system RAM (runs on the CPU; available: "
            f"{gpu['memory_gib']:.1f} GiB, {gpu['source']})"
        )
    else:
        memory = f"{est.total / GIB:.1f} GiB" + (
            f" (available: {gpu['memory_gib']:.1f} GiB on {gpu['name']})" if gpu else ""
        )
    updates: dict[str, dict[str, Any]] = {
        "": {
            "Estimated VRAM": memory,
            "Key parameters": plan.key_parameters(),
        }
    }
    return GateResult(
        GO if ok else NO_GO,
        reasons,
        digest,
        fixes=fixes,
        updates=updates,
        details={
            "total_gib": round(est.total / GIB, 2),
            "available_gib": gpu["memory_gib"] if gpu else None,
            "device": device,
            "assumptions": est.assumptions,
            "batch": batch,
            "gradient_accumulation": accumulation,
        },
    )
