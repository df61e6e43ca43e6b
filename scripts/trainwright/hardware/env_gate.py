"""Gate 3 (environment): decide from a fresh environment check what this project's run needs.

What the run needs comes from the project: the backend and the VRAM estimate in config.md, the
base model's file size, the dataset folder named in intent.md, and the overrides that
`trainwright env check NAME --model-size/--dataset-size` records under "Requirements" in
environment.md. The GO is bound to a hash of the facts that matter (GPU models, driver, CUDA,
PyTorch build, Python, backend install, the run's needs), not to free space, which moves.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from trainwright.errors import TrainwrightError
from trainwright.hardware import env_check, remote_probe
from trainwright.state.gates import GO, NO_GO, GateResult
from trainwright.state.grimoire import Grimoire
from trainwright.state.hints import config_command

CHECK_KEYS = {
    "gpu": "GPU check",
    "driver": "Driver check",
    "torch": "PyTorch check",
    "python": "Python check",
    "backend": "Backend check",
    "vram": "VRAM check",
    "disk": "Disk check",
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def backend_name(raw: str | None) -> str | None:
    """The backend's module name (config.md may say `ai-toolkit`, `kohya_ss`, ...: the
    registry knows each backend's aliases; an unknown name stops here, the known ones listed)."""
    if not raw or not raw.strip():
        return None
    from trainwright.backends import module_name

    return module_name(env_check.backend_module(raw.strip().replace(" ", "_")).NAME)


def _main_config(g: Grimoire, project: str, top: dict[str, Any]) -> Path | None:
    """config.md's main config file (the first listed), when it exists."""
    listed = [p.strip() for p in str(top.get("Config file") or "").split(",") if p.strip()]
    if not listed:
        return None
    path = Path(listed[0]).expanduser()
    path = path if path.is_absolute() else g.project_dir(project) / path
    return path if path.is_file() else None


def _first_number(text: str | None) -> float | None:
    m = re.search(r"\d+(?:\.\d+)?", text or "")
    return float(m.group(0)) if m else None


def _dataset(folder: Path) -> tuple[int, int]:
    n_bytes = n_images = 0
    for path in folder.rglob("*"):
        if path.is_file() and not any(p.startswith(".") for p in path.relative_to(folder).parts):
            n_bytes += path.stat().st_size
            n_images += path.suffix.lower() in IMAGE_SUFFIXES
    return n_bytes, n_images


def needs_for(g: Grimoire, project: str) -> env_check.Needs:
    _, config = g.read("config", project)
    top = config["sections"][""]
    backend = backend_name(top.get("Backend"))
    if backend is None:
        raise TrainwrightError(
            f"config.md of '{project}' names no backend: decide the config first "
            f"('{config_command(g, project)}', then 'trainwright gate check {project} --gate 2')"
        )
    needs = env_check.Needs(backend, config=_main_config(g, project, top))
    needs.vram_gb = _first_number(top.get("Estimated VRAM"))
    m = re.search(r"epochs\s*=\s*(\d+)", top.get("Key parameters") or "")
    needs.epochs = int(m.group(1)) if m else None
    _, env = g.read("environment", project)
    req = env["sections"].get("Requirements", {})
    needs.model_gb = req.get("Model size GB")
    if needs.model_gb is None:
        base = (top.get("Base model") or "").strip()
        path = Path(base).expanduser() if base else None
        module = env_check.backend_module(backend)
        if hasattr(module, "base_model_file"):  # a backend that ships its own base model
            path = module.base_model_file()
        if path and path.is_file():
            needs.model_gb = path.stat().st_size / env_check.GiB
    if req.get("Dataset images") is not None:
        needs.dataset_images = int(req["Dataset images"])
    folder = g.dataset_folder(project)
    if folder and folder.is_dir():
        needs.dataset_bytes, count = _dataset(folder)
        needs.dataset_images = needs.dataset_images or count
    return needs


def _fields(report: env_check.EnvReport) -> dict[str, dict[str, object]]:
    f, n = report.facts, report.needs
    gpu = ", ".join(f"{g.name} ({g.memory_total_gib:g} GB)" for g in f.gpus) or (
        f"none found ({f.gpu_error})"
    )
    t = f.torch
    torch_text = (
        f"{t.version} ({'CUDA ' + t.cuda if t.cuda else 'CPU-only build'})"
        if t.version
        else "not installed"
    )
    if f.gpus:
        best = max(f.gpus, key=lambda x: x.memory_total_mib - x.memory_used_mib)
        free_vram = f"{(best.memory_total_mib - best.memory_used_mib) / 1024:.1f} GB on {best.name}"
        if n.vram_gb:
            free_vram += f" (need about {n.vram_gb:g} GB)"
    else:
        free_vram = "no GPU"
    top: dict[str, object] = {
        "GPU": gpu,
        "Driver": f.driver or "none",
        "CUDA": (
            f"driver supports {f.driver_cuda or '?'}; PyTorch built for {t.cuda or 'none (CPU)'}"
        ),
        "PyTorch": torch_text,
        "Python": f.python,
        "Backend": f"{n.backend}: {'installed' if f.backend_ok else 'NOT READY'} "
        f"({f.backend_detail})",
        "Free VRAM": free_vram,
        "Free disk": f"{f.disk_free_bytes / env_check.GiB:.1f} GB at {f.disk_path} "
        f"(need about {n.disk_gb():.1f} GB)",
        "Checked at": env_check_time(),
    }
    problems: dict[str, object] = {key: "not checked" for key in CHECK_KEYS.values()}
    for finding in report.findings:
        key = CHECK_KEYS[finding.check]
        word = {"ok": "ok", "warning": "warning", "error": "PROBLEM"}[finding.severity]
        text = f"{word}: {finding.text}"
        if finding.fix and finding.severity != "ok":
            text += f" Fix: {finding.fix}"
        problems[key] = text
    return {"": top, "Problems and fixes": problems}


def env_check_time() -> str:
    from trainwright.clock import now_iso

    return now_iso()


def run_check(
    g: Grimoire,
    project: str,
    *,
    deep: bool = True,
    nvml: Any = None,
    target: remote_probe.Target | None = None,
) -> env_check.EnvReport:
    """The check here, or on `target` over ssh (remote_probe.SSHFailure when ssh fails)."""
    needs = needs_for(g, project)
    if target is not None:
        facts = remote_probe.gather(target, needs.backend, deep=deep)
    else:
        facts = env_check.gather(
            needs.backend, g.project_dir(project), nvml=nvml, deep=deep, config=needs.config
        )
    return env_check.evaluate(facts, needs)


def where(target: remote_probe.Target | None) -> str:
    return f"{target.host} (over ssh)" if target else "this machine"


def check(g: Grimoire, project: str, target: remote_probe.Target | None = None) -> GateResult:
    try:
        report = run_check(g, project, target=target)
    except TrainwrightError as exc:
        if "names no backend" not in str(exc):
            raise
        return GateResult(NO_GO, [exc.one_line()], None, fixes=[config_command(g, project)])
    except remote_probe.SSHFailure as exc:
        assert target is not None
        finding = remote_probe.ssh_finding(target, str(exc))
        problem = asdict(finding)
        return GateResult(
            NO_GO,
            [finding.text],
            None,
            fixes=[finding.fix or ""],
            updates={"": {"Checked on": where(target), "Checked at": env_check_time()}},
            details={"host": target.host, "problems": [problem], "findings": [problem]},
        )
    errors = [x for x in report.findings if x.severity == "error"]
    warnings = [x for x in report.findings if x.severity == "warning"]
    reasons = [x.text for x in errors] or [
        f"{report.needs.backend} can run here: "
        + "; ".join(x.text for x in report.findings if x.check in ("gpu", "backend"))
    ]
    reasons += [f"warning: {x.text}" for x in warnings]
    updates = _fields(report)
    updates[""]["Checked on"] = where(target)
    return GateResult(
        NO_GO if errors else GO,
        reasons,
        env_check.binding_digest(report.facts, report.needs),
        fixes=[x.fix for x in errors if x.fix],
        updates=updates,
        details={**report.as_dict(), "host": target.host if target else None},
    )


def binding(g: Grimoire, project: str) -> str:
    needs = needs_for(g, project)
    facts = env_check.gather(needs.backend, g.project_dir(project), deep=False, config=needs.config)
    return env_check.binding_digest(facts, needs)
