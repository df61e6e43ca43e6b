"""Why a trainer stopped, read from its output and exit status, in plain words with the fix.

The patterns are the messages the real tools print (PyTorch's allocators, CUDA, safetensors,
Python's import system); each backend adds its trainer's own texts to a kind (its
FAILURE_TEXTS, asked of the registry). resources/training/failure-modes.md lists the same kinds
for people.
"""

from __future__ import annotations

import re
import signal
from dataclasses import asdict, dataclass
from functools import cache

OOM_PATTERNS = (
    r"CUDA out of memory",
    r"HIP out of memory",
    r"torch\.OutOfMemoryError",
    r"DefaultCPUAllocator: can't allocate memory",
    r"CUBLAS_STATUS_ALLOC_FAILED",
    r"CUDNN_STATUS_NOT_SUPPORTED",  # cuDNN's way of saying it found no workspace, usually
    r"CUDNN_STATUS_ALLOC_FAILED",
    r"MPS backend out of memory",
    r"\bout of memory\.",
    r"Detected \d+ oom[-_]kill events?",  # slurmstepd, after the cgroup's OOM killer acted
    r"^MemoryError\b",  # Python's own allocation failure (host memory or an address-space cap)
    r"Unable to allocate [^\n]* for an array",  # NumPy's
    r"std::bad_alloc",  # a C++ extension's allocation failure
)
KILLED_CODES = (-signal.SIGKILL, 128 + signal.SIGKILL)


@dataclass
class Failure:
    # oom | killed | model | dataset | cuda | package | config | hang | no-training | crash
    kind: str
    message: str
    fix: str
    evidence: str | None = None  # the line that gave it away

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


_RULES: list[tuple[str, re.Pattern[str], str, str]] = [
    (
        "cuda",
        re.compile(
            r"driver (?:on your system )?is too old|CUDA driver version is insufficient|"
            r"no kernel image is available|Found no NVIDIA driver|"
            r"Torch not compiled with CUDA enabled|cudaErrorInsufficientDriver|"
            r"CUDA error: (?!out of memory)[^\n]*",
            re.I,
        ),
        "PyTorch and the NVIDIA driver do not match (or this PyTorch has no CUDA support).",
        "run 'trainwright env check' and install the PyTorch build it names for your driver",
    ),
    (
        "package",
        re.compile(
            r"ModuleNotFoundError: No module named '[^']+'|ImportError: [^\n]+|"
            r"command not found|No such file or directory: '(?:accelerate|tune|python)[^']*'"
        ),
        "A package the trainer needs is not installed.",
        "install the missing package in the trainer's environment, then rerun "
        "'trainwright env check'",
    ),
    (
        "model",
        re.compile(
            r"Error while deserializing header[^\n]*|"
            r"HeaderTooLarge|SafetensorError[^\n]*|invalid load key[^\n]*|"
            r"PytorchStreamReader failed[^\n]*|"
            r"(?:FileNotFoundError|OSError)[^\n]{0,400}?(?:\.safetensors|\.ckpt|\.bin|model)"
            r"[^\n]*|"
            r"is not a valid model identifier[^\n]*|Repository Not Found[^\n]*"
        ),
        "The base model could not be loaded: the path is wrong or the file is damaged "
        "(often a download that stopped part-way).",
        "check the base model path in config.md; if the file exists, download it again and "
        "compare its size with the source",
    ),
    (
        "dataset",
        re.compile(
            r"UnicodeDecodeError[^\n]*|"
            r"No data found in dataset|no images? found[^\n]*|"
            r"extra keys not allowed[^\n]*|cannot identify image file[^\n]*",
            re.I,
        ),
        "The dataset or its captions could not be read.",
        "fix the file it names (captions must be UTF-8 text next to each image), then rerun "
        "the dataset gate{: 'trainwright gate check {project} --gate 1'}",
    ),
    (
        "config",
        re.compile(r"error: unrecognized arguments[^\n]*"),
        "The trainer rejected its configuration.",
        "regenerate the configuration{ with '{config}'} and rerun Gate 2",
    ),
]


@cache
def rules() -> list[tuple[str, re.Pattern[str], str, str]]:
    """The generic rules, each with the backends' own texts for its kind joined on."""
    from trainwright import backends

    extra = backends.failure_texts()
    out = []
    for kind, pattern, message, fix in _RULES:
        more = extra.get(kind, [])
        if more:
            pattern = re.compile("|".join([pattern.pattern, *more]), pattern.flags)
        out.append((kind, pattern, message, fix))
    return out


@cache
def oom_pattern() -> re.Pattern[str]:
    """The allocators' messages with the backends' own out-of-memory texts joined on."""
    from trainwright import backends

    return re.compile("|".join([*OOM_PATTERNS, *backends.failure_texts().get("oom", [])]), re.M)


def oom_line(text: str) -> str | None:
    m = oom_pattern().search(text)
    if not m:
        return None
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.end())
    return text[start : end if end != -1 else len(text)].strip()


def is_oom(text: str, returncode: int | None, oom_kill: bool | None = None) -> bool:
    """An allocator's message, or death by SIGKILL unless the kernel's OOM-kill counters say
    the killer did not act (`oom_kill` False: a person's or a watchdog's kill); with no
    counters to read (None) a SIGKILL still counts, as it almost always is the OOM killer."""
    return oom_line(text) is not None or (returncode in KILLED_CODES and oom_kill is not False)


def classify(
    text: str,
    returncode: int | None,
    batch: int | None = None,
    project: str | None = None,
    config: str | None = None,
    oom_kill: bool | None = None,
) -> Failure:
    """Name the most likely cause of a failed run from its output; with `project` (and its
    `trainwright config` line) the fix names the commands to run. `oom_kill` is what the
    kernel's counters said about a SIGKILL (see oom_kills.py; None: not known)."""
    line = oom_line(text)
    if not line and returncode in KILLED_CODES and oom_kill is False:
        return Failure(
            "killed",
            "The trainer was killed (SIGKILL), and not by the out-of-memory killer: the "
            "kernel's OOM-kill counters did not move. A person, a scheduler or a watchdog "
            "stopped it.",
            "if nobody meant to stop it, find what sends SIGKILL (a job scheduler's limits, a "
            "watchdog); then launch again, which resumes from the last checkpoint",
        )
    if line or returncode in KILLED_CODES:
        smaller = f" (try batch {max(1, batch // 2)})" if batch and batch > 1 else ""
        how = (
            f"the trainer ran out of memory: {line}"
            if line
            else "the trainer was killed by the kernel's out-of-memory killer (SIGKILL under "
            "a memory cap; its OOM-kill counter rose)"
            if oom_kill
            else "the trainer was killed by the system (SIGKILL), which on Linux almost always "
            "means the kernel's out-of-memory killer"
        )
        return Failure(
            "oom",
            f"Out of memory on the first steps: {how}.",
            f"lower the batch size{smaller}; 'trainwright launch' does this by itself, halving "
            "the batch and raising gradient accumulation to keep the effective batch",
            line,
        )
    for kind, pattern, message, fix in rules():
        m = pattern.search(text)
        if m:
            return Failure(kind, message, _fill(fix, project, config), m.group(0).strip()[:300])
    tail = [ln for ln in text.strip().splitlines() if ln.strip()][-1:] or [""]
    return Failure(
        "crash",
        f"The trainer stopped with exit status {returncode}.",
        _fill(
            "read the last lines of the log{; 'trainwright monitor {project}' shows them}",
            project,
            config,
        ),
        tail[0][:300] or None,
    )


_OPTIONAL = re.compile(r"\{([^{}]*\{(\w+)\}[^{}]*)\}")


def _fill(fix: str, project: str | None, config: str | None) -> str:
    """A fix with its `{... {project} ...}` parts filled in, or left out when the value is not
    known (a printed hint names no placeholder)."""
    values = {"project": project, "config": config}

    def part(m: re.Match[str]) -> str:
        value = values.get(m.group(2))
        return m.group(1).replace("{" + m.group(2) + "}", value) if value else ""

    return _OPTIONAL.sub(part, fix)
