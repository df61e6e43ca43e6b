"""What the cluster steps need from each trainer: config file, launch line, resume, batch knob.

The configs themselves are written by the backend modules (trainwright.backends.*); this file
only knows how a run of each backend is started, resumed and shrunk after an out-of-memory.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trainwright.cluster.render import Raw, Word
from trainwright.cluster.runs_plan import PlannedRun
from trainwright.errors import TrainwrightError

CONFIG_NAME = "finetune.yaml"
SCRIPT_NAME = "finetune.slurm"


@dataclass(frozen=True)
class Launch:
    """How one run starts: the command words, what to add to resume, where checkpoints land."""

    words: list[Word]
    resume: list[Word]
    checkpoint_dir: Path
    checkpoint_pattern: str
    prelude: tuple[str, ...] = ()  # shell lines written by trainwright, run before the launch


@dataclass(frozen=True)
class Adapter:
    name: str
    cpu: bool  # can train without a GPU
    max_processes: int | None  # None: any number of GPUs and nodes
    launch: Callable[[PlannedRun, Path, dict[str, Any], str, str], Launch]
    batch_keys: tuple[str, str] = ("batch_size", "gradient_accumulation_steps")


def read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainwrightError(
            f"{path}: config missing; write it first (`trainwright runs configs`)"
        ) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise TrainwrightError(f"{path}:{line}: not valid YAML ({exc.problem})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TrainwrightError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise TrainwrightError(f"{path}: expected `key: value` lines at the top level")
    return data


def output_dir(config: dict[str, Any], run_dir: Path, default: str) -> Path:
    out = Path(str(config.get("output_dir") or default))
    return out if out.is_absolute() else run_dir / out


# --- torchtune --------------------------------------------------------------------------------

RENDEZVOUS: list[Word] = [
    "--rdzv_id",
    Raw('"$SLURM_JOB_ID"'),
    "--rdzv_backend",
    "c10d",
    "--rdzv_endpoint",
    Raw('"$MASTER_ADDR:$MASTER_PORT"'),
]
SRUN: list[Word] = ["srun", "--kill-on-bad-exit=1", "--ntasks-per-node=1"]
# torchrun needs the recipe's file; torchtune installs its recipes as plain files, not a package.
RECIPE_FILE = (
    "RECIPE_FILE=\"$({python} -c 'import importlib.util, os; "
    'print(os.path.join(importlib.util.find_spec("recipes").submodule_search_locations[0], '
    '"{recipe}.py"))\')"'
)


def sibling_executable(python: str, name: str) -> str:
    """`name` beside the interpreter that renders (the same environment), else from PATH."""
    candidate = Path(python).parent / name
    return str(candidate) if Path(python).is_absolute() and candidate.exists() else name


def _torchtune_launch(
    run: PlannedRun, run_dir: Path, config: dict[str, Any], python: str, launcher: str
) -> Launch:
    from trainwright.backends.torchtune import recipe_for

    gpus = run.gpus or 1
    recipe = recipe_for(run.method, gpus)
    prelude: tuple[str, ...] = ()
    if launcher == "torchrun" and gpus > 1:
        torchrun = sibling_executable(python, "torchrun")
        nnodes: Word = Raw('"$SLURM_NNODES"') if run.nodes > 1 else "1"
        words: list[Word] = [*SRUN] if run.nodes > 1 else []
        words += [torchrun, "--nnodes", nnodes, "--nproc_per_node", str(run.gpus_per_node)]
        words += [*RENDEZVOUS] if run.nodes > 1 else ["--standalone"]
        words += [Raw('"$RECIPE_FILE"')]
        prelude = (RECIPE_FILE.format(python=shlex.quote(python), recipe=recipe),)
    elif run.nodes > 1:
        tune = sibling_executable(python, "tune")
        words = [*SRUN, tune, "run", "--nnodes", Raw('"$SLURM_NNODES"')]
        words += ["--nproc_per_node", str(run.gpus_per_node), *RENDEZVOUS, recipe]
    elif gpus > 1:
        words = [sibling_executable(python, "tune"), "run", "--nproc_per_node", str(gpus), recipe]
    else:
        words = [sibling_executable(python, "tune"), "run", recipe]
    words += ["--config", CONFIG_NAME]
    out = output_dir(config, run_dir, "output")
    resume: list[Word] = ["resume_from_checkpoint=True"]
    return Launch(words, resume, out, "recipe_state/recipe_state.pt", prelude)


# --- tiny (the embedded CPU backend: one process) ---------------------------------------------


def _tiny_launch(
    run: PlannedRun, run_dir: Path, config: dict[str, Any], python: str, launcher: str
) -> Launch:
    from trainwright.backends import tiny

    words: list[Word] = [python, *tiny.command(Path(CONFIG_NAME))[1:]]
    resume = tiny.command(Path(CONFIG_NAME), resume=True)[len(words) :]
    out = output_dir(config, run_dir, "checkpoints")
    return Launch(words, list(resume), out, "*.safetensors")


ADAPTERS: dict[str, Adapter] = {
    "torchtune": Adapter("torchtune", cpu=False, max_processes=None, launch=_torchtune_launch),
    "tiny": Adapter("tiny", cpu=True, max_processes=1, launch=_tiny_launch),
}


def adapter(name: str) -> Adapter:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise TrainwrightError(
            f"backend {name!r} has no cluster adapter; known: {', '.join(ADAPTERS)}"
        ) from None


def backend_names() -> tuple[str, ...]:
    return tuple(ADAPTERS)


def cpu_backends() -> tuple[str, ...]:
    return tuple(n for n, a in ADAPTERS.items() if a.cpu)


_TOP_KEY = r"^(?P<key>{key})(?P<sep>[ \t]*:[ \t]*)(?P<value>[^#\n]*?)(?P<rest>[ \t]*(#.*)?)$"


def set_top_level(text: str, updates: dict[str, int]) -> str:
    """Change top-level `key: value` lines in place (comments kept); append missing keys."""
    for key, value in updates.items():
        pattern = re.compile(_TOP_KEY.format(key=re.escape(key)), re.M)
        text, count = pattern.subn(lambda m, v=value: f"{m['key']}{m['sep']}{v}{m['rest']}", text)
        if count == 0:
            text = text.rstrip("\n") + f"\n{key}: {value}\n"
    return text


def halve_batch(config_path: Path, keys: tuple[str, str]) -> tuple[int, int, int, int]:
    """Halve the batch and double the accumulation (same effective batch). Returns old and new.

    Raises TrainwrightError when the batch is already 1.
    """
    config = read_config(config_path)
    batch_key, accum_key = keys
    batch = int(config.get(batch_key) or 1)
    accum = int(config.get(accum_key) or 1)
    if batch <= 1:
        raise TrainwrightError(f"{config_path}: {batch_key} is already 1; it cannot shrink further")
    new_batch = batch // 2
    new_accum = -(-batch * accum // new_batch)  # ceil: the effective batch never shrinks
    text = config_path.read_text(encoding="utf-8")
    from trainwright.state.atomic import atomic_write_text

    new_text = set_top_level(text, {batch_key: new_batch, accum_key: new_accum})
    check = yaml.safe_load(new_text)
    if check.get(batch_key) != new_batch or check.get(accum_key) != new_accum:
        raise TrainwrightError(f"{config_path}: could not change {batch_key} in place")
    atomic_write_text(config_path, new_text)
    return batch, accum, new_batch, new_accum
