"""The environment check behind Gate 3: GPU, driver, CUDA, PyTorch, Python, backend, VRAM, disk.

Facts come from probes that can be swapped for recordings: `nvidia-smi` (TRAINWRIGHT_NVIDIA_SMI
names a program that prints recorded output), NVML (a `pynvml`-shaped object passed in), and
PyTorch's own files (read, not imported, so a check stays fast). The verdicts use the PyTorch /
CUDA / driver matrix in resources/environment/cuda-pytorch-matrix.yaml. Each finding says what is
wrong in plain words and how to fix it; any error makes the decision NO-GO.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata as md
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from trainwright import pack
from trainwright.errors import TrainwrightError
from trainwright.hardware.gpu import ENV_OVERRIDE, GPU, GPUProbe, probe_gpus

MATRIX = "resources/environment/cuda-pytorch-matrix.yaml"
MATRIX_SCHEMA = "resources/environment/cuda-pytorch-matrix.schema.json"
CHECKPOINT_GB = 0.25  # one saved checkpoint, unless the backend says (its CHECKPOINT_GB)
WORKING_ROOM_GB = 2.0
IMAGE_MB_ESTIMATE = 2.5
GiB = 1024**3


def version_tuple(text: str | None) -> tuple[int, ...]:
    nums = re.findall(r"\d+", text or "")
    return tuple(int(n) for n in nums[:3])


@functools.cache
def load_matrix() -> dict[str, Any]:
    data = yaml.safe_load(pack.read_text(MATRIX))
    schema = json.loads(pack.read_text(MATRIX_SCHEMA))
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        raise TrainwrightError(f"{MATRIX} is damaged: {exc.message}") from None
    return data


def driver_supports(driver: str, matrix: dict[str, Any]) -> str | None:
    """The newest CUDA toolkit version this driver runs, from the driver table."""
    best = None
    for cuda, minimum in matrix["cuda_driver_minimum"].items():
        if version_tuple(driver) >= version_tuple(minimum):
            if best is None or version_tuple(cuda) > version_tuple(best):
                best = cuda
    return best


def wheel_for(torch_version: str | None, driver_cuda: str | None, matrix: dict[str, Any]) -> str:
    """A pip command for a PyTorch build this driver runs: this release when one of its builds
    fits, else the newest release with a build of the driver's CUDA major, else any that fits."""
    releases = matrix["pytorch"]
    minor = ".".join(str(n) for n in version_tuple(torch_version)[:2])
    newest_first = sorted(releases, key=version_tuple, reverse=True)
    driver = version_tuple(driver_cuda)[:2]

    def fitting(release: str, same_major: bool) -> list[str]:
        entry = releases[release]
        if not driver:
            return sorted(entry["cuda"] or entry["cuda_experimental"], key=version_tuple)
        return sorted(
            (
                c
                for c in entry["cuda"] + entry["cuda_experimental"]
                if version_tuple(c)[:2] <= driver
                and (not same_major or version_tuple(c)[0] == driver[0])
            ),
            key=version_tuple,
        )

    if minor in releases:
        builds = fitting(minor, same_major=False)
        if builds:
            exact = ".".join(str(n) for n in version_tuple(torch_version))
            return _pip(f"torch=={exact}", builds[-1], matrix)
    others = [r for r in newest_first if r != minor]
    for same_major in (True, False):
        for release in others:
            builds = fitting(release, same_major)
            if builds:
                return _pip(f"torch=={release}.*", builds[-1], matrix)
    return "update the NVIDIA driver; no PyTorch build in the matrix runs on this one"


def _pip(pin: str, cuda: str, matrix: dict[str, Any]) -> str:
    tag = cuda.replace(".", "")
    return f"pip install {pin} --index-url {matrix['wheel_index'].format(tag=tag)}"


@dataclass
class TorchFacts:
    version: str | None = None
    cuda: str | None = None  # the CUDA the wheel was built with; None for a CPU build
    usable: bool | None = None  # CUDA initialised and allocated (None: not tried)
    error: str | None = None
    python: str | None = None  # the interpreter the backend runs with


@dataclass
class EnvFacts:
    gpus: list[GPU]
    gpu_error: str | None
    gpu_source: str | None
    driver: str | None
    driver_cuda: str | None
    torch: TorchFacts
    python: str
    backend: str | None
    backend_ok: bool | None
    backend_detail: str
    backend_fingerprint: str
    disk_path: str
    disk_free_bytes: int

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["gpus"] = [g.as_dict() for g in self.gpus]
        return d


@dataclass
class Needs:
    backend: str | None
    model_gb: float | None = None
    dataset_bytes: int | None = None
    dataset_images: int | None = None
    vram_gb: float | None = None
    epochs: int | None = None
    save_every: int = 5
    config: Path | None = None  # the project's main config: some configs need a GPU (QLoRA)

    @property
    def needs_gpu(self) -> bool:
        return bool(self.backend) and not runs_on_cpu(self.backend, self.config)

    def checkpoint_gb(self) -> float:
        declared = (
            getattr(backend_module(self.backend), "CHECKPOINT_GB", None) if self.backend else None
        )
        per = declared if declared is not None else (self.model_gb or CHECKPOINT_GB)
        count = max(1, -(-(self.epochs or 15) // self.save_every))
        return per * count

    def dataset_gb(self) -> float:
        if self.dataset_bytes is not None:
            return self.dataset_bytes / GiB
        return (self.dataset_images or 0) * IMAGE_MB_ESTIMATE / 1024

    def disk_gb(self) -> float:
        return (self.model_gb or 0.0) + self.dataset_gb() + self.checkpoint_gb() + WORKING_ROOM_GB


@dataclass
class Finding:
    check: str  # gpu | driver | torch | python | backend | vram | disk
    severity: str  # ok | warning | error
    text: str
    fix: str | None = None


@dataclass
class EnvReport:
    facts: EnvFacts
    needs: Needs
    findings: list[Finding] = field(default_factory=list)

    @property
    def decision(self) -> str:
        return "NO-GO" if any(f.severity == "error" for f in self.findings) else "GO"

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "backend": self.needs.backend,
            "facts": self.facts.as_dict(),
            "needs": {**asdict(self.needs), "disk_gb": round(self.needs.disk_gb(), 2)},
            "problems": [asdict(f) for f in self.findings if f.severity == "error"],
            "warnings": [asdict(f) for f in self.findings if f.severity == "warning"],
            "findings": [asdict(f) for f in self.findings],
        }


# --- probes ---------------------------------------------------------------------------------


def nvidia_smi_cuda(timeout: float = 15.0) -> str | None:
    """The driver's CUDA version from the header of plain `nvidia-smi` output."""
    binary = os.environ.get(ENV_OVERRIDE) or shutil.which("nvidia-smi")
    if not binary:
        return None
    try:
        out = subprocess.run([binary], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"CUDA Version:\s*([\d.]+)", out.stdout)
    return m.group(1) if m else None


def probe_nvml(nvml: Any) -> tuple[GPUProbe, str | None]:
    """GPUs and the driver's CUDA through NVML (`pynvml`, or an object with the same calls)."""
    try:
        nvml.nvmlInit()
        try:
            driver = nvml.nvmlSystemGetDriverVersion()
            driver = driver.decode() if isinstance(driver, bytes) else str(driver)
            cuda_int = int(nvml.nvmlSystemGetCudaDriverVersion())
            cuda = f"{cuda_int // 1000}.{(cuda_int % 1000) // 10}"
            gpus = []
            for i in range(int(nvml.nvmlDeviceGetCount())):
                h = nvml.nvmlDeviceGetHandleByIndex(i)
                name = nvml.nvmlDeviceGetName(h)
                name = name.decode() if isinstance(name, bytes) else str(name)
                mem = nvml.nvmlDeviceGetMemoryInfo(h)
                major, minor = nvml.nvmlDeviceGetCudaComputeCapability(h)
                gpus.append(
                    GPU(i, name, mem.total // 2**20, mem.used // 2**20, driver, f"{major}.{minor}")
                )
        finally:
            nvml.nvmlShutdown()
    except Exception as exc:  # noqa: BLE001 - NVML raises its own NVMLError family
        return GPUProbe(False, [], "nvml", f"NVML failed: {exc}"), None
    return GPUProbe(bool(gpus), gpus, "nvml", None if gpus else "NVML listed no GPUs"), cuda


def _pynvml() -> Any:
    """NVML's Python binding (the nvidia-ml-py package), when installed."""
    if importlib.util.find_spec("pynvml") is None:
        return None
    import pynvml

    return pynvml


def _torch_version_file(site: Path) -> str | None:
    text = (site / "torch" / "version.py").read_text(encoding="utf-8", errors="replace")
    m = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([\d.]+)['\"]", text, re.M)
    return m.group(1) if m else None


def torch_facts_fast(python: str | None = None) -> TorchFacts:
    """Torch version and CUDA build from its files (no import): this interpreter or a venv's."""
    if python is None or Path(python).resolve() == Path(sys.executable).resolve():
        spec = importlib.util.find_spec("torch")
        if spec is None or not spec.submodule_search_locations:
            return TorchFacts(python=sys.executable)
        site = Path(next(iter(spec.submodule_search_locations))).parent
        try:
            version = md.version("torch")
        except md.PackageNotFoundError:
            version = None
        try:
            cuda = _torch_version_file(site)
        except OSError:
            cuda = None
        return TorchFacts(version, cuda, python=sys.executable)
    venv = Path(python).parent.parent
    for site in sorted(venv.glob("lib/python3*/site-packages")):
        dists = sorted(site.glob("torch-*.dist-info"))
        if dists:
            version = dists[-1].name.removeprefix("torch-").removesuffix(".dist-info")
            try:
                cuda = _torch_version_file(site)
            except OSError:
                cuda = None
            return TorchFacts(version, cuda, python=python)
    return TorchFacts(python=python)


def torch_cuda_works(python: str, timeout: float = 180.0) -> tuple[bool, str | None]:
    """Initialise CUDA and allocate on GPU 0 in a child interpreter (a failure cannot hurt us)."""
    code = "import torch; torch.zeros(1, device='cuda'); print(torch.cuda.get_device_name(0))"
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    if out.returncode == 0:
        return True, None
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    return False, lines[-1] if lines else f"exit {out.returncode}"


def backend_module(name: str) -> Any:
    """The backend's module, asked of the registry (an unknown name lists the known ones)."""
    from trainwright import backends

    return backends.get(name)


def runs_on_cpu(name: str | None, config: Path | None = None) -> bool:
    from trainwright import backends

    return bool(name) and backends.runs_on_cpu(backend_module(str(name)), config)


def cpu_backends() -> list[str]:
    from trainwright import backends

    return backends.where(backends.runs_on_cpu)


def probe_backend(
    name: str, deep: bool = True, config: Path | None = None
) -> tuple[bool, str, str, str | None]:
    """(installed, what was found or the fix, fingerprint, the python it runs with), as the
    registry's probe finds them."""
    from trainwright import backends

    return backends.probe(backend_module(name), deep=deep, config=config)


def gather(
    backend: str | None,
    disk_path: Path,
    *,
    nvml: Any = None,
    deep: bool = True,
    config: Path | None = None,
) -> EnvFacts:
    """Collect the facts. `deep=False` skips the slow parts (import checks, CUDA init)."""
    probe = probe_gpus()
    driver_cuda = None
    if probe.found:
        driver_cuda = nvidia_smi_cuda()
    else:
        nvml = nvml if nvml is not None else _pynvml()
        if nvml is not None:
            by_nvml, cuda = probe_nvml(nvml)
            if by_nvml.found:
                probe, driver_cuda = by_nvml, cuda
    driver = probe.gpus[0].driver_version if probe.gpus else None
    ok, detail, fingerprint, python = (None, "", "", None)
    if backend:
        ok, detail, fingerprint, python = probe_backend(backend, deep=deep, config=config)
    torch = torch_facts_fast(python)
    if deep and probe.found and torch.version and torch.cuda:
        torch.usable, torch.error = torch_cuda_works(torch.python or sys.executable)
    folder = disk_path
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return EnvFacts(
        gpus=probe.gpus,
        gpu_error=probe.error,
        gpu_source="nvidia-smi" if probe.found and probe.source != "nvml" else probe.source,
        driver=driver,
        driver_cuda=driver_cuda,
        torch=torch,
        python=platform.python_version(),
        backend=backend,
        backend_ok=ok,
        backend_detail=detail,
        backend_fingerprint=fingerprint,
        disk_path=str(folder),
        disk_free_bytes=shutil.disk_usage(folder).free,
    )


# --- verdicts -------------------------------------------------------------------------------


def evaluate(facts: EnvFacts, needs: Needs, matrix: dict[str, Any] | None = None) -> EnvReport:
    matrix = matrix or load_matrix()
    report = EnvReport(facts, needs)
    add = report.findings.append
    _python(facts, matrix, add)
    _gpu(facts, needs, add)
    _torch(facts, needs, matrix, add)
    if needs.backend:
        if facts.backend_ok:
            add(
                Finding(
                    "backend",
                    "ok",
                    f"The {needs.backend} backend is installed: {facts.backend_detail}.",
                )
            )
        else:
            add(
                Finding(
                    "backend",
                    "error",
                    f"The {needs.backend} backend is not ready.",
                    facts.backend_detail,
                )
            )
    _vram(facts, needs, add)
    _disk(facts, needs, add)
    return report


def _python(facts: EnvFacts, matrix: dict[str, Any], add: Any) -> None:
    ver = version_tuple(facts.python)
    if not ver:
        add(
            Finding(
                "python",
                "error",
                f"No Python 3 found ({facts.python}).",
                "install Python 3.10 or newer (python3) on that machine",
            )
        )
        return
    if ver < (3, 10):
        add(
            Finding(
                "python",
                "error",
                f"Python {facts.python} is too old for trainwright.",
                "use Python 3.10 or newer",
            )
        )
        return
    minor = ".".join(str(n) for n in version_tuple(facts.torch.version)[:2])
    entry = matrix["pytorch"].get(minor)
    if entry and not (
        version_tuple(entry["python"][0]) <= ver[:2] <= version_tuple(entry["python"][1])
    ):
        add(
            Finding(
                "python",
                "error",
                f"PyTorch {minor} supports Python {entry['python'][0]} to "
                f"{entry['python'][1]}; this is Python {facts.python}.",
                "use a Python in that range for the training environment",
            )
        )
        return
    add(Finding("python", "ok", f"Python {facts.python}."))


def _gpu(facts: EnvFacts, needs: Needs, add: Any) -> None:
    if facts.gpus:
        names = ", ".join(f"{g.name} ({g.memory_total_gib:g} GB)" for g in facts.gpus)
        add(
            Finding(
                "gpu",
                "ok",
                f"GPU: {names}; driver {facts.driver}"
                + (f" (supports CUDA {facts.driver_cuda})" if facts.driver_cuda else "")
                + ".",
            )
        )
    elif needs.needs_gpu:
        add(
            Finding(
                "gpu",
                "error",
                f"No NVIDIA GPU found ({facts.gpu_error}); {needs.backend} trains on a GPU.",
                "run on a machine with an NVIDIA GPU and its driver, or rehearse the whole "
                "pipeline here with a backend that trains on the CPU "
                f"({', '.join(cpu_backends())})",
            )
        )
    else:
        add(
            Finding(
                "gpu",
                "ok",
                f"No GPU found ({facts.gpu_error}); "
                + (
                    f"the {needs.backend} backend trains on the CPU, which is fine for it."
                    if runs_on_cpu(needs.backend)
                    else "GPU backends will need one."
                ),
            )
        )


def _torch(facts: EnvFacts, needs: Needs, matrix: dict[str, Any], add: Any) -> None:
    t = facts.torch
    if not t.version:
        fix = (
            "pip install 'trainwright[torch]'"
            if not needs.needs_gpu
            else wheel_for(None, facts.driver_cuda, matrix)
        )
        add(
            Finding(
                "torch",
                "error",
                "PyTorch is not installed"
                + (f" for {t.python}" if t.python and t.python != sys.executable else "")
                + ".",
                fix,
            )
        )
        return
    minor = ".".join(str(n) for n in version_tuple(t.version)[:2])
    known = minor in matrix["pytorch"]
    note = "" if known else f" (not in the compatibility matrix, read {matrix['read']})"
    if not facts.gpus:
        add(
            Finding(
                "torch",
                "ok",
                f"PyTorch {t.version}{note}"
                + (f", built for CUDA {t.cuda}." if t.cuda else ", a CPU build."),
            )
        )
        return
    if not t.cuda:
        sev = "error" if needs.needs_gpu else "warning"
        add(
            Finding(
                "torch",
                sev,
                f"PyTorch {t.version} is a CPU-only build: it cannot use the {facts.gpus[0].name}.",
                wheel_for(t.version, facts.driver_cuda, matrix),
            )
        )
        return
    driver_cuda = facts.driver_cuda or (driver_supports(facts.driver or "", matrix))
    need_driver = matrix["cuda_driver_minimum"].get(
        ".".join(str(n) for n in version_tuple(t.cuda)[:2])
    )
    if driver_cuda and version_tuple(driver_cuda)[:2] < version_tuple(t.cuda)[:2]:
        same_major = version_tuple(driver_cuda)[0] == version_tuple(t.cuda)[0]
        compat_min = matrix["minor_version_compatibility"].get(str(version_tuple(t.cuda)[0]))
        compat = (
            same_major and compat_min and version_tuple(facts.driver) >= version_tuple(compat_min)
        )
        problem = (
            f"PyTorch {t.version} was built for CUDA {t.cuda} but the driver "
            f"{facts.driver} supports CUDA {driver_cuda}."
        )
        fix = (
            f"update the NVIDIA driver to {need_driver} or newer, or install the PyTorch build "
            f"for your driver: {wheel_for(t.version, driver_cuda, matrix)}"
        )
        if compat and t.usable is not False:
            add(
                Finding(
                    "driver",
                    "warning",
                    problem + " It can still run through CUDA minor-version compatibility, "
                    "but kernels compiled on the fly can fail.",
                    fix,
                )
            )
        else:
            add(
                Finding(
                    "driver",
                    "error",
                    problem + (f" CUDA failed to start: {t.error}" if t.error else ""),
                    fix,
                )
            )
        return
    if t.usable is False:
        add(
            Finding(
                "driver",
                "error",
                f"PyTorch could not use the GPU: {t.error}",
                "run 'nvidia-smi' to see whether the driver works; reinstall PyTorch with "
                + wheel_for(t.version, driver_cuda, matrix),
            )
        )
        return
    add(
        Finding(
            "torch",
            "ok",
            f"PyTorch {t.version} (CUDA {t.cuda}) and the driver "
            f"(CUDA {driver_cuda or '?'}) are compatible{note}.",
        )
    )


def _vram(facts: EnvFacts, needs: Needs, add: Any) -> None:
    if not facts.gpus or not needs.needs_gpu:
        return
    best = max(facts.gpus, key=lambda g: g.memory_total_mib - g.memory_used_mib)
    total = best.memory_total_mib / 1024
    free = (best.memory_total_mib - best.memory_used_mib) / 1024
    if needs.vram_gb is None:
        add(
            Finding(
                "vram",
                "ok",
                f"Your {best.name} has {total:.0f} GB VRAM ({free:.0f} GB "
                "free); config.md has no VRAM estimate to compare with.",
            )
        )
    elif total < needs.vram_gb:
        add(
            Finding(
                "vram",
                "error",
                f"Your {best.name} has {total:.0f} GB VRAM; this config needs about "
                f"{needs.vram_gb:g} GB.",
                "pick a smaller batch, resolution or model in the config (Gate 2), or a GPU "
                "with more memory",
            )
        )
    elif free < needs.vram_gb:
        add(
            Finding(
                "vram",
                "error",
                f"Only {free:.1f} GB of the {best.name}'s {total:.0f} GB is free (other "
                f"programs hold {best.memory_used_mib / 1024:.1f} GB); this config needs "
                f"about {needs.vram_gb:g} GB.",
                "close the programs using the GPU ('nvidia-smi' lists them) and check again",
            )
        )
    else:
        add(
            Finding(
                "vram",
                "ok",
                f"Your {best.name} has {total:.0f} GB VRAM ({free:.0f} GB "
                f"free): enough for this config (about {needs.vram_gb:g} GB).",
            )
        )


def _disk(facts: EnvFacts, needs: Needs, add: Any) -> None:
    free = facts.disk_free_bytes / GiB
    need = needs.disk_gb()
    parts = (
        f"model {needs.model_gb or 0:.1f} + dataset {needs.dataset_gb():.1f} + checkpoints "
        f"{needs.checkpoint_gb():.1f} + {WORKING_ROOM_GB:g} working room"
    )
    unknown = (
        " (model size unknown: pass --model-size GB)"
        if needs.model_gb is None and (needs.needs_gpu)
        else ""
    )
    if free < need:
        add(
            Finding(
                "disk",
                "error",
                f"You have {free:.1f} GB free at {facts.disk_path}; the run needs about "
                f"{need:.1f} GB ({parts}).",
                "free some space there, or move the project to a bigger disk",
            )
        )
    else:
        add(
            Finding(
                "disk",
                "ok" if not unknown else "warning",
                f"You have {free:.0f} GB free; the run needs about {need:.1f} GB ({parts})"
                f"{unknown}.",
            )
        )


def binding_facts(facts: EnvFacts, needs: Needs) -> dict[str, Any]:
    """The facts a Gate 3 GO stands on (free space and free VRAM change too often to bind)."""
    return {
        "gpus": [[g.name, g.memory_total_mib, g.compute_capability] for g in facts.gpus],
        "driver": facts.driver,
        "driver_cuda": facts.driver_cuda,
        "torch": [facts.torch.version, facts.torch.cuda, facts.torch.python],
        "python": ".".join(str(n) for n in version_tuple(facts.python)[:2]),
        "backend": facts.backend,
        "backend_fingerprint": facts.backend_fingerprint,
        "needs": {
            "vram_gb": needs.vram_gb,
            "disk_gb": round(needs.disk_gb()),
        },
    }


def binding_digest(facts: EnvFacts, needs: Needs) -> str:
    blob = json.dumps(binding_facts(facts, needs), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def summary_lines(report: EnvReport) -> list[str]:
    lines = []
    for f in report.findings:
        mark = {"ok": "ok  ", "warning": "warn", "error": "FAIL"}[f.severity]
        lines.append(f"  {mark} {f.text}")
        if f.fix and f.severity != "ok":
            lines.append(f"       fix: {f.fix}")
    return lines
