"""The registry of trainers: one module per backend in this package, found by looking.

A backend module declares, at module level, data where it can and small functions where it
must (kohya.py and torchtune.py are full examples; tiny.py is the embedded trainer). Optional
items have the defaults given here; the rest of the package asks this registry and never names
a backend.

Identity and install
    NAME, ALIASES=()          its name and other names people type (`kohya_ss`)
    KINDS, FAMILIES=None      "image" / "llm"; the catalog families it trains (None: any)
    DEFAULT_FOR=()            model kinds it is the suggested trainer for
    RUNS_ON_CPU=False         Gate 3 does not ask for a GPU (or `runs_on_cpu(config)`)
    INSTALL                   the install probe as data (see install_probe.py): packages, the
                              program, a bundled file, or a clone folder; `installed()` only for
                              what data cannot say
    FRAMEWORK                 its loss head, for the VRAM estimate ("hf" for llm, "none" for
                              image by default; or `framework(plan)`)
Config (`trainwright config`)
    CONFIG_FILE, OPTIMIZER_KEY, render(plan), check_keys(files, folder), read_config(path),
    vram_overrides(plan)={}
Running (dry run, launch, OOM retry, monitor)
    command(config, *, max_steps, batch_size, accumulation, resume, save) -> argv
    HAS_ACCUMULATION, CAN_RESUME
    BATCH_KEYS                (batch key, accumulation key) of the main config: the default
                              batch_settings() and the one out-of-memory rule use them
    OUTPUT_KEY="output_dir"   the default checkpoint_dir() (relative to the config's folder)
    LOG_SIGNATURE, parse_log(text, state)   its log, found by content; or parse_line(line)
    FAILURE_TEXTS={}          kind (oom, model, dataset, config, ...) -> regexes of its
                              trainer's own failure lines, joined on run/failures.py's rules
    EVAL_BASE_MODELS=()       base-model names whose eval grid it makes in-process
                              (with eval_image_maker(steps))
On a cluster (`trainwright runs ...`)
    cluster_config(run, experiment_dir) -> text of the run's finetune.yaml
    cluster_launch(run, run_dir, config, python, launcher) -> Launch (backends/common.py)
    MAX_PROCESSES=None, CLUSTER_DEFAULTS, cluster_problems(config, path)=[],
    validate(path)=None, model_problem(model)=None
    MULTI_NODE=False          with MAX_PROCESSES: that many per node, over several nodes

Adding a trainer is adding one module here; nothing else lists them.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from trainwright.errors import TrainwrightError

NOT_BACKENDS = (
    "common",
    "toml",
    "names",
    "training_plan",
    "install_probe",
    "configure",
    "config_gate",
)


def module_name(name: str) -> str:
    return (name or "").strip().lower().replace("-", "_")


@cache
def _modules() -> tuple[ModuleType, ...]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg or info.name.startswith("_") or info.name in NOT_BACKENDS:
            continue
        if info.name.endswith("_commands") or info.name == "commands":
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "NAME"):
            found.append(mod)
    return tuple(sorted(found, key=lambda m: str(m.NAME)))


def all_backends() -> tuple[ModuleType, ...]:
    return _modules()


def names() -> list[str]:
    """Every backend's NAME, sorted."""
    return [str(m.NAME) for m in _modules()]


def _aliases() -> dict[str, ModuleType]:
    table = {}
    for mod in _modules():
        for alias in (mod.NAME, *getattr(mod, "ALIASES", ())):
            table[module_name(str(alias))] = mod
    return table


def lookup(name: str) -> ModuleType | None:
    return _aliases().get(module_name(name))


def get(name: str) -> ModuleType:
    """The backend called `name` (or one of its aliases); a clear error listing the known ones."""
    mod = lookup(name)
    if mod is None:
        raise TrainwrightError(f"unknown backend {name!r}; one of: {', '.join(names())}")
    return mod


def where(predicate: Any) -> list[str]:
    """Names of the backends for which `predicate(module)` is true."""
    return [str(m.NAME) for m in _modules() if predicate(m)]


# ---- what the rest of the package asks --------------------------------------------------------


def render_settings(mod: ModuleType, **settings: Any) -> dict[str, str]:
    """The backend's files from flat settings (model=ID, project=..., any neutral or backend
    key): a TrainingPlan built as `trainwright config` builds it, rendered by the backend."""
    from trainwright.backends.training_plan import plan_from_settings

    return mod.render(plan_from_settings(str(mod.NAME), settings))


def batch_settings(mod: ModuleType, config: Path) -> tuple[int, int]:
    """(batch, accumulation) from the main config, through BATCH_KEYS unless the backend knows
    better; ValueError on a config that does not say."""
    if hasattr(mod, "batch_settings"):
        return mod.batch_settings(config)
    cfg = mod.read_config(config)
    batch_key, accum_key = mod.BATCH_KEYS
    try:
        return int(cfg.get(batch_key, 1)), int(cfg.get(accum_key, 1))
    except (TypeError, ValueError):
        raise ValueError(f"{batch_key} / {accum_key} are not whole numbers") from None


def checkpoint_dir(mod: ModuleType, config: Path) -> Path:
    if hasattr(mod, "checkpoint_dir"):
        return Path(mod.checkpoint_dir(config))
    key = getattr(mod, "OUTPUT_KEY", "output_dir")
    out = Path(str(mod.read_config(config).get(key) or "output"))
    return out if out.is_absolute() else Path(config).parent / out


def runs_on_cpu(mod: ModuleType, config: Path | None = None) -> bool:
    if config is not None and hasattr(mod, "runs_on_cpu"):
        try:
            return bool(mod.runs_on_cpu(config))
        except (ValueError, OSError):  # an unreadable config: Gate 2 says what is wrong with it
            pass
    return bool(getattr(mod, "RUNS_ON_CPU", False))


def framework(mod: ModuleType, plan: Any = None) -> str:
    if plan is not None and hasattr(mod, "framework"):
        return str(mod.framework(plan))
    default = "hf" if "llm" in getattr(mod, "KINDS", ()) else "none"
    return str(getattr(mod, "FRAMEWORK", default))


def probe(
    mod: ModuleType, deep: bool = False, config: Path | None = None
) -> tuple[bool, str, str, str | None]:
    """(installed, what was found or the fix, fingerprint, the python it runs with) on this
    machine: its INSTALL data judged on local facts (`deep`: a cloned trainer imports its own
    code with its venv's Python), then its `installed([config])` for what data cannot say (a
    GPU-only flavour)."""
    from trainwright.backends import install_probe

    spec = install_probe.spec_of(mod)
    if not spec:
        ok, detail = mod.installed() if hasattr(mod, "installed") else (False, "")
        return ok, detail or f"{mod.NAME} is not installed", "", None
    ok, detail, fingerprint, python = install_probe.verdict(
        module_name(mod.NAME), spec, install_probe.local_facts(spec, deep=deep)
    )
    if ok and hasattr(mod, "installed"):
        takes_config = "config" in inspect.signature(mod.installed).parameters
        more_ok, more = mod.installed(config) if takes_config else mod.installed()
        if not more_ok:
            return False, str(more), "", python
    return ok, detail, fingerprint, python


def installed(mod: ModuleType, deep: bool = False) -> tuple[bool, str]:
    """Whether this machine can run the backend, and what was found or the fix."""
    ok, detail, _, _ = probe(mod, deep=deep)
    return ok, detail


def log_parsers() -> dict[str, ModuleType]:
    """Backends whose log format is known by content: name -> module (LOG_SIGNATURE, parse_log)."""
    return {
        str(getattr(m, "LOG_FORMAT", None) or m.NAME): m
        for m in _modules()
        if hasattr(m, "LOG_SIGNATURE") and hasattr(m, "parse_log")
    }


def failure_texts() -> dict[str, list[str]]:
    """Failure kind -> the regexes of every backend's own texts for it (FAILURE_TEXTS)."""
    out: dict[str, list[str]] = {}
    for mod in _modules():
        for kind, patterns in getattr(mod, "FAILURE_TEXTS", {}).items():
            out.setdefault(kind, []).extend(patterns)
    return out


def default_for_kind(kind: str) -> str:
    """The backend declared the suggested one for a kind of model ("image" / "llm")."""
    for mod in _modules():
        if kind in getattr(mod, "DEFAULT_FOR", ()):
            return str(mod.NAME)
    return next(str(m.NAME) for m in _modules() if kind in getattr(m, "KINDS", ()))


def suggested_for(model: Any) -> str:
    """The backend to suggest for a catalog model: one that trains only its family, else the
    one declared the default for its kind."""
    for mod in _modules():
        fams = getattr(mod, "FAMILIES", None)
        if fams and model.family in fams and len(fams) == 1:
            return str(mod.NAME)
    return default_for_kind("image" if model.is_image else "llm")


def embedded() -> ModuleType:
    """The backend that runs anywhere (on the CPU) and makes its own eval grid: the demo's."""
    return next(m for m in _modules() if runs_on_cpu(m) and in_process_eval_of(m))


def in_process_eval(base_model: str) -> ModuleType | None:
    """The backend that makes eval grids in-process for this base model name, if any."""
    name = (base_model or "").strip().lower()
    for mod in _modules():
        if any(name.startswith(b) for b in getattr(mod, "EVAL_BASE_MODELS", ())):
            return mod
    return None


def in_process_eval_of(mod: ModuleType) -> bool:
    return bool(getattr(mod, "EVAL_BASE_MODELS", ())) and hasattr(mod, "eval_image_maker")


def install_hint(mod: ModuleType) -> str:
    """How to install the backend, from its INSTALL data."""
    return str((getattr(mod, "INSTALL", None) or {}).get("install") or f"install {mod.NAME}")


def cluster_backends() -> list[str]:
    return where(lambda m: hasattr(m, "cluster_launch"))


def cluster_default() -> str:
    """The backend a runs plan uses when it names none: the suggested trainer for LLMs."""
    ok = cluster_backends()
    llm = [n for n in ok if "llm" in getattr(get(n), "DEFAULT_FOR", ())]
    return (llm or ok)[0]


def launchers() -> list[str]:
    """Every way a backend offers to start multi-GPU runs (its LAUNCHERS, the default first)."""
    seen: list[str] = []
    for name in [cluster_default(), *cluster_backends()]:
        for launcher in getattr(get(name), "LAUNCHERS", ()):
            if launcher not in seen:
                seen.append(launcher)
    return seen


def cluster_backend(name: str) -> ModuleType:
    mod = get(name)
    if not hasattr(mod, "cluster_launch"):
        raise TrainwrightError(
            f"backend {mod.NAME!r} cannot run under `trainwright runs`; one of: "
            f"{', '.join(cluster_backends())}"
        )
    return mod
