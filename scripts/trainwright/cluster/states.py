"""Job states: SLURM's names, plus PLANNED and SKIPPED for runs that never reach a scheduler."""

from __future__ import annotations

PLANNED = "PLANNED"  # in the plan, never submitted
SKIPPED = "SKIPPED"  # a base-model run: nothing to fine-tune
PENDING = "PENDING"
RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
TIMEOUT = "TIMEOUT"
OUT_OF_MEMORY = "OUT_OF_MEMORY"
NODE_FAIL = "NODE_FAIL"
PREEMPTED = "PREEMPTED"
LOST = "LOST"  # the scheduler forgot the job and its log shows no end

# submitit's rule: a job whose state is not one of these will not change again.
LIVE = frozenset(
    {
        PENDING,
        RUNNING,
        "REQUEUED",
        "COMPLETING",
        PREEMPTED,
        "READY",
        "UNKNOWN",
        "CONFIGURING",
        "RESIZING",
        "SUSPENDED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "STAGE_OUT",
        "SIGNALING",
        "STOPPED",
        "RESV_DEL_HOLD",
    }
)
# Ended without finishing the training: a later `launch` resubmits these (resuming).
UNFINISHED = frozenset(
    {FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, LOST, "BOOT_FAIL", "DEADLINE", "REVOKED"}
)
KNOWN = LIVE | UNFINISHED | {PLANNED, SKIPPED, COMPLETED, "SPECIAL_EXIT"}


def normalize(raw: str) -> str:
    """`CANCELLED by 0` -> CANCELLED; `OUT_OF_ME+` (cut by sacct) -> OUT_OF_MEMORY; a word
    SLURM does not use -> UNKNOWN (still live), so garbage never ends a run."""
    word = raw.strip().split()[0].upper() if raw.strip() else "UNKNOWN"
    word = word.rstrip("+")
    if word in KNOWN:
        return word
    for state in sorted(KNOWN):
        if state.startswith(word) and len(word) >= 4:
            return state
    return "UNKNOWN"


def is_live(state: str) -> bool:
    return state in LIVE


def is_terminal(state: str) -> bool:
    return state not in LIVE and state != PLANNED
