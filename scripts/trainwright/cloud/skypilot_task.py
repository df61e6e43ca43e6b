"""A SkyPilot task for people who rent through SkyPilot rather than `cloud up`:
`trainwright cloud sky NAME --gpu "RTX 4090"` writes `sky-task.yaml` in the project's folder.

The task does on the cluster what `cloud setup`, `cloud validate`, `cloud dry-run` and
`cloud launch` do over ssh: a venv on the image's Python with this pack's wheel and the backend
(the same requirements as `cloud setup`), then Gate 3, Gate 4 and the run, each stopping the task
when refused. SkyPilot syncs the project root (`workdir`) and mounts the wheel folder.

The guard is SkyPilot's own, and runs on the cluster: `resources.autostop` with `down: true`
tears the cluster down once no job has run for `--idle-minutes`, and the run is bounded by
`timeout` at `--max-hours`, after which the cluster is idle and goes down too. SkyPilot keeps
its own list of clusters (`sky status`): these are not recorded in studio.md.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from trainwright.errors import TrainwrightError
from trainwright.state.grimoire import Grimoire
from trainwright.state.names import check_name

TASK_FILE = "sky-task.yaml"
WHEELS_THERE = "/tmp/trainwright-wheels"
VENV_THERE = "$HOME/trainwright-venv"  # outside the synced workdir: a local .venv never collides
SKY_INFRA = {"vast": "vast", "runpod": "runpod"}  # trainwright provider -> SkyPilot infra
VENDOR_WORDS = re.compile(r"\b(nvidia|geforce|tesla|amd|radeon|instinct)\b", re.I)
FORM_FACTOR = re.compile(r"SXM\d?|PCIE|NVL|HBM\d?E?")
TWO_SIZES = {("A100", "80GB"), ("V100", "32GB"), ("A800", "80GB")}  # SkyPilot: A100-80GB


def accelerator(gpu: str) -> str:
    """SkyPilot's accelerator name for a GPU as people (or nvidia-smi) write it:
    'NVIDIA GeForce RTX 4090' -> RTX4090, 'NVIDIA A100-SXM4-80GB' -> A100-80GB, 'H100 SXM' ->
    H100 (SkyPilot's catalogs name the model, and the memory only where a model has two)."""
    words = re.split(r"[\s_-]+", VENDOR_WORDS.sub(" ", gpu).upper().strip())
    words = [w for w in words if w]
    memory = next((w for w in words if re.fullmatch(r"\d+GB", w)), None)
    words = [w for w in words if not FORM_FACTOR.fullmatch(w) and w != memory]
    name = "".join(words)
    if not re.fullmatch(r"[A-Z][A-Z0-9]*", name or "-"):
        raise TrainwrightError(
            f"--gpu {gpu!r} is not a GPU model name (e.g. 'RTX 4090', 'A100 80GB', 'H100')"
        )
    if memory and (name, memory) in TWO_SIZES:
        name += f"-{memory}"
    return name


def render(
    project: str,
    accelerator_name: str,
    infra: str | None,
    max_hours: float,
    idle_minutes: int,
    wheel: str,
    requirements: list[str],
    wheel_folder: str,
    task_path: str,
) -> str:
    """The task's YAML text; `wheel_folder` and `task_path` as seen from the project root, where
    `sky launch` is run (SkyPilot reads local paths from its working folder)."""
    check_name(project)
    from trainwright.cloud.provision import WHEELHOUSE, install_steps

    venv = f"mkdir -p {WHEELHOUSE} && cp {WHEELS_THERE}/*.whl {WHEELHOUSE}/\n"
    venv += "\n".join(install_steps("python3", VENV_THERE, wheel, requirements, False)) + "\n"
    seconds = int(max_hours * 3600)
    run = (
        f'export PATH="{VENV_THERE}/bin:$PATH"\n'
        f"trainwright gate check {project} --gate 3\n"
        f"trainwright dry-run {project}\n"
        f"timeout --signal=INT {seconds}s trainwright launch {project}\n"
    )
    resources: dict[str, Any] = {"accelerators": f"{accelerator_name}:1"}
    if infra:
        resources["infra"] = SKY_INFRA[infra]
    resources["autostop"] = {"idle_minutes": idle_minutes, "down": True}
    task = {
        "name": f"tw-{project}",
        "resources": resources,
        "workdir": ".",
        "file_mounts": {WHEELS_THERE: wheel_folder},
        "setup": "set -e\n" + venv,
        "run": "set -e\n" + run,
    }
    head = (
        f"# SkyPilot task for '{project}', written by trainwright (cloud sky). From the project "
        f"root: sky launch -c tw-{project} {task_path}\n"
        f"# The run stops after {max_hours:g} h at most; the cluster goes down once idle for "
        f"{idle_minutes} min.\n"
    )
    return head + yaml.dump(task, Dumper=_Dumper, sort_keys=False, width=100)


def _from_root(g: Grimoire, path: Path) -> str:
    """`path` as typed from the project root (absolute for a grimoire kept outside it)."""
    try:
        return path.relative_to(g.project_root).as_posix()
    except ValueError:
        return str(path)


class _Dumper(yaml.SafeDumper):
    """Multi-line scripts as literal blocks, as people write SkyPilot tasks."""


_Dumper.add_representer(
    str,
    lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|" if "\n" in v else None),
)


def write(
    g: Grimoire,
    project: str,
    gpu: str,
    provider: str | None,
    max_hours: float | None,
    idle_minutes: int,
    wheelhouse: Path | None,
) -> dict[str, Any]:
    from trainwright.clock import file_stamp
    from trainwright.cloud.bringup import state_dir
    from trainwright.cloud.estimate import deadline_hours, from_config
    from trainwright.cloud.provision import backend_requirements, pack_wheel
    from trainwright.state.atomic import atomic_write_text
    from trainwright.state.safe_paths import new_backup_file

    check_name(project)
    if project not in g.projects():
        raise TrainwrightError(
            f"no training project {project!r} in {g.root} (trainwright grimoire new {project})"
        )
    if provider is not None and provider not in SKY_INFRA:
        raise TrainwrightError(f"SkyPilot knows no provider {provider!r}; one of: vast, runpod")
    name = accelerator(gpu)
    if max_hours is None:
        max_hours = deadline_hours(from_config(g, project, gpu), "bound the run by")
    wheel = pack_wheel(g, wheelhouse)
    here = state_dir(g) / "wheelhouse"
    if wheel.parent != here:  # from --wheelhouse: copied where the task mounts it from
        here.mkdir(exist_ok=True)
        shutil.copy2(wheel, here / wheel.name)
    requirements = backend_requirements(g, project, wheel.name)
    path = g.project_dir(project) / TASK_FILE
    relative = _from_root(g, path)
    text = render(
        project, name, provider, max_hours, idle_minutes, wheel.name, requirements,
        _from_root(g, here), relative,
    )  # fmt: skip
    kept = None
    if path.exists() and path.read_bytes() != text.encode("utf-8"):  # edited by hand, say
        kept = str(new_backup_file(path, file_stamp(), path.read_bytes()))
    atomic_write_text(path, text)
    return {
        "project": project,
        "task": relative,
        "kept": kept,
        "accelerator": name,
        "infra": SKY_INFRA.get(provider or "", None),
        "max_hours": max_hours,
        "idle_minutes": idle_minutes,
        "wheel": wheel.name,
        "backend_requirements": requirements,
        "launch": f"sky launch -c tw-{project} {relative}",
        "down": f"sky down tw-{project}",
    }
