"""The cluster room: runs plans that are broken, and an sbatch / squeue / sacct on PATH that
print garbage, bytes that are not text, the same job id twice, or hang."""

from __future__ import annotations

import os

import pytest
from harness import Case, cli, run_case
from room_kit import dataset, fake_bin, ok, params, said, write

EXP = "exp"
STATUS = ["exp/runs_status.yaml", "exp/*/logs/*", "exp/*/*"]


def _plan(p):
    ok(cli(p, "runs", "plan", EXP, "--backend", "tiny"))
    dataset(p, "exp/data")
    for step in ("setup-dirs", "configs", "slurm-scripts"):
        ok(cli(p, "runs", step, EXP))


def _plan_text(text: str | bytes):
    def setup(p):
        ok(cli(p, "runs", "plan", EXP))
        write(p / "exp/runs_plan.md", text)

    return setup


def _env(kind: str, sbatch: str, squeue: str = "exit 0", sacct: str = "exit 0") -> dict:
    return {"PATH": fake_bin(kind, {"sbatch": sbatch, "squeue": squeue, "sacct": sacct})}


GARBAGE_SBATCH = _env("sb-garbage", 'echo "garbage <html>"')
BYTES_SQUEUE = _env("sq-bytes", "echo 4242", 'printf "\\000\\377 garbage|||||\\n"')
FAILING_SBATCH = _env("sb-fail", 'echo "sbatch: error: invalid partition" >&2; exit 1')
SILENT_SBATCH = _env("sb-silent", "exit 0")


def _unknown_state(p):
    _plan(p)
    env = {**os.environ, **_env("sq-ok", "echo 4242", "exit 0")}
    ok(cli(p, "runs", "launch", EXP, "--only", "run1", PATH=env["PATH"]))


WAT = _env("sq-wat", "echo 4343", 'echo "4242|WAT|None|N/A|run1"', 'echo "4242|WAT|0:0|a|b"')


def _still_live(r) -> None:
    text = (r.project / "exp/runs_status.yaml").read_text()
    assert "WAT" not in text and "ended" not in text, text


CASES = [
    Case(
        "plan-binary",
        "cluster",
        "bad-file",
        "refused",
        ["runs", "validate", EXP],
        setup=_plan_text(os.urandom(3000)),
    ),
    Case(
        "plan-empty",
        "cluster",
        "bad-file",
        "refused",
        ["runs", "validate", EXP],
        setup=_plan_text(""),
    ),
    Case(
        "plan-no-table",
        "cluster",
        "bad-file",
        "refused",
        ["runs", "validate", EXP],
        setup=_plan_text("# Runs plan: exp\n\n## Runs\n\nnothing here\n"),
    ),
    Case(
        "plan-missing-folder",
        "cluster",
        "path-escape",
        "clear-error",
        ["runs", "validate", "no/such/exp"],
    ),
    Case(
        "plan-hostile-run-name",
        "cluster",
        "hostile-name",
        "refused",
        ["runs", "validate", EXP],
        setup=_plan_text(
            "# Runs plan: exp\n\n## Runs\n\n| Run | Base model | Method | Dataset | GPUs |\n"
            "|---|---|---|---|---|\n| ../$(touch pwn) | llama3.2-1b | lora | alpaca | 1 |\n"
        ),
    ),
    Case(
        "plan-tiny-defaults-valid",
        "cluster",
        "silent-nonsense",
        "correct",
        ["runs", "plan", EXP, "--backend", "tiny"],
        check=said("added"),
    ),
    Case(
        "sbatch-garbage",
        "cluster",
        "lying-tool",
        "clear-error",
        ["runs", "launch", EXP],
        setup=_plan,
        env=GARBAGE_SBATCH,
        may_change=STATUS,
    ),
    Case(
        "sbatch-fails",
        "cluster",
        "lying-tool",
        "refused",
        ["runs", "launch", EXP],
        setup=_plan,
        env=FAILING_SBATCH,
        may_change=STATUS,
        check=said("invalid partition"),
    ),
    Case(
        "sbatch-silent",
        "cluster",
        "lying-tool",
        "clear-error",
        ["runs", "launch", EXP],
        setup=_plan,
        env=SILENT_SBATCH,
        may_change=STATUS,
    ),
    Case(
        "squeue-bytes",
        "cluster",
        "lying-tool",
        "correct",
        ["runs", "launch", EXP],
        setup=_plan,
        env=BYTES_SQUEUE,
        may_change=STATUS,
        check=said("4242"),
    ),
    Case(
        "squeue-unknown-state",
        "cluster",
        "lying-tool",
        "correct",
        ["runs", "monitor", EXP],
        setup=_unknown_state,
        env=WAT,
        may_change=STATUS,
        check=_still_live,
    ),
    Case(
        "monitor-no-plan",
        "cluster",
        "corrupt-state",
        "clear-error",
        ["runs", "monitor", EXP],
        setup=lambda p: (p / EXP).mkdir() and None,
    ),
    Case(
        "status-yaml-garbage",
        "cluster",
        "corrupt-state",
        "clear-error",
        ["runs", "monitor", EXP],
        setup=lambda p: (_plan(p), write(p / "exp/runs_status.yaml", "runs: [: bad")) and None,
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
