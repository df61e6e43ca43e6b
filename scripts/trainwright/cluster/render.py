"""The sbatch script as text: sorted `#SBATCH --key=value` lines and a bash body, all quoted.

Nothing that comes from a person (run names, paths, options) reaches the shell unquoted: values are
`shlex.quote`d, and only fragments written here (`Raw`) are emitted as shell code.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trainwright.pack import read_text
from trainwright.shell_words import Raw, Word

TEMPLATE = "resources/slurm/finetune.slurm.tmpl"
_GLOB_CHARS = "*?[]\\"


@dataclass
class JobScript:
    """Everything one script needs; `run_dirs` has one entry, or one per task of a job array."""

    label: str
    options: Mapping[str, str | int | bool]
    run_dirs: Sequence[Path]
    checkpoints: Sequence[str]  # one glob per run dir (already escaped), see checkpoint_glob()
    launch: Sequence[Word]
    resume: Sequence[Word] = ()
    nodes: int = 1
    setup: Sequence[str] = field(default_factory=list)


def word(w: Word) -> str:
    return w.text if isinstance(w, Raw) else shlex.quote(str(w))


def words(ws: Sequence[Word]) -> str:
    return " ".join(word(w) for w in ws)


def sbatch_line(key: str, value: str | int | bool) -> str:
    if value is True:
        return f"#SBATCH --{key}"
    return f"#SBATCH --{key}={shlex.quote(str(value))}"


def sbatch_lines(options: Mapping[str, str | int | bool]) -> str:
    return "\n".join(sbatch_line(k, v) for k, v in sorted(options.items()) if v is not False)


def checkpoint_glob(folder: Path | str, pattern: str) -> str:
    """A glob for `compgen -G`: the literal folder escaped, then the pattern."""
    literal = "".join("\\" + c if c in _GLOB_CHARS else c for c in str(folder))
    return f"{literal}/{pattern}" if pattern else literal


def _select_run(job: JobScript) -> str:
    if len(job.run_dirs) == 1:
        run_dir, ckpt = shlex.quote(str(job.run_dirs[0])), shlex.quote(job.checkpoints[0])
        return f"RUN_DIR={run_dir}\nCHECKPOINT={ckpt}"
    dirs = " \\\n  ".join(shlex.quote(str(d)) for d in job.run_dirs)
    ckpts = " \\\n  ".join(shlex.quote(c) for c in job.checkpoints)
    return (
        f"RUN_DIRS=(\n  {dirs}\n)\nCHECKPOINTS=(\n  {ckpts}\n)\n"
        'TASK="${SLURM_ARRAY_TASK_ID:?this script is a job array: submit it with sbatch}"\n'
        'RUN_DIR="${RUN_DIRS[$TASK]}"\nCHECKPOINT="${CHECKPOINTS[$TASK]}"'
    )


DISTRIBUTED = """\
# One launcher per node (srun); they meet at the first node of the allocation.
MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
export MASTER_ADDR
export MASTER_PORT="${MASTER_PORT:-29500}"
"""


def render_script(job: JobScript) -> str:
    if len(job.checkpoints) != len(job.run_dirs):
        raise ValueError("one checkpoint glob per run folder")
    template = string.Template(read_text(TEMPLATE))
    return template.substitute(
        label=" ".join(job.label.split()).replace("\n", " "),
        sbatch_lines=sbatch_lines(job.options),
        setup_lines="\n".join(job.setup),
        select_run=_select_run(job),
        distributed=DISTRIBUTED if job.nodes > 1 else "",
        launch=words(job.launch),
        resume=words(job.resume),
    )
