"""Every command the CLI prints as a hint (`fix:`, `next:`, `then:`) runs as printed.

Each test provokes NO-GO and error paths in a fresh `trainwright init` project (from its root,
default --grimoire), collects the hints of the human and the --json output, and parses every
`trainwright ...` command in them with the real CLI: a placeholder (NAME, PATH, ...,
LORA.safetensors) or an argument form the CLI refuses fails the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hintparse import check_command, commands_in, hints_of, problems
from userpaths import init_project, make_dataset, out, tw

STATUS_LIKE = (("status", "t1"), ("gate", "status", "t1"), ("launch", "t1"))


def collect(project: Path, *args: str, codes: tuple[int, ...] = (0, 1, 2)) -> list[str]:
    """The hints of `trainwright ARGS` and of `trainwright ARGS --json`."""
    found: list[str] = []
    for extra in ((), ("--json",)):
        proc = tw(project, *args, *extra)
        assert proc.returncode in codes, out(proc)
        assert "Traceback" not in proc.stderr, out(proc)
        found += hints_of(proc.stdout, proc.stderr)
    return found


def assert_runnable(hints: list[str], minimum: int = 1) -> None:
    commands = [c for h in hints for c in commands_in(h)]
    assert len(commands) >= minimum, hints  # the paths above do print commands
    assert not problems(hints), "\n".join(problems(hints))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = init_project(tmp_path / "proj")
    assert tw(root, "grimoire", "new", "t1").returncode == 0
    return root


def set_intent(project: Path, *pairs: str) -> None:
    proc = tw(project, "grimoire", "set", "intent", "--project", "t1", *pairs)
    assert proc.returncode == 0, out(proc)


def test_the_parser_catches_what_the_issue_found() -> None:
    assert check_command("trainwright config demo2") is not None
    assert "placeholder" in check_command("trainwright eval-grid t1 --lora LORA.safetensors")
    assert "placeholder" in check_command('trainwright grimoire set intent --project t1 "Type=..."')
    assert check_command("trainwright env check --project t1") is not None
    assert check_command("trainwright gate check t1 --gate 2") is None
    assert list(commands_in("x ('trainwright config t1', then 'trainwright dry-run t1')")) == [
        "trainwright config t1",
        "trainwright dry-run t1",
    ]


@pytest.mark.slow
def test_a_fresh_project_at_every_command(project: Path) -> None:
    hints: list[str] = []
    for args in (*STATUS_LIKE, ("env", "check", "t1"), ("dry-run", "t1")):
        hints += collect(project, *args)
    hints += collect(project, "gate", "check", "t1", "--gate", "2")
    assert_runnable(hints, minimum=6)


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    ["no-trigger", "missing-folder", "too-few", "duplicates", "captions", "spaces-in-folder"],
)
def test_gate_1_for_each_reason(project: Path, case: str) -> None:
    folder = "data/my style" if case == "spaces-in-folder" else "data/style"
    pairs = ["Type=style", "Base model=tiny", f"Dataset folder={folder}"]
    if case != "no-trigger":
        pairs.append("Trigger word=zzq")
    set_intent(project, *pairs)
    if case != "missing-folder":
        make_dataset(project / folder, 8 if case == "too-few" else 24)
    if case == "duplicates":
        import shutil

        src = project / folder / "painting_03.png"
        shutil.copy(src, project / folder / "painting_03_copy.png")
        shutil.copy(src.with_suffix(".txt"), project / folder / "painting_03_copy.txt")
    if case == "captions":
        (project / folder / "painting_05.txt").write_text("painted, no trigger here\n")
        (project / folder / "painting_06.txt").unlink()
    hints = collect(project, "gate", "check", "t1", "--gate", "1")
    for args in STATUS_LIKE:
        hints += collect(project, *args)
    assert_runnable(hints, minimum=3)


@pytest.mark.slow
def test_gates_2_to_4_fail_and_the_run_is_refused(project: Path) -> None:
    set_intent(
        project, "Type=style", "Base model=tiny", "Trigger word=zzq", "Dataset folder=data/style"
    )
    make_dataset(project / "data/style")
    assert tw(project, "gate", "check", "t1", "--gate", "1").returncode == 0
    hints: list[str] = []
    # A config outside the safe range: Gate 2 NO-GO.
    proc = tw(
        project,
        "config",
        "--project",
        "t1",
        "--backend",
        "tiny",
        "--preset",
        "quick",
        "learning_rate=0.5",
    )
    assert proc.returncode in (0, 1), out(proc)
    hints += collect(project, "gate", "check", "t1", "--gate", "2")
    for args in STATUS_LIKE:
        hints += collect(project, *args)
    # A config the trainer rejects: the dry run's failure class names its fix.
    assert (
        tw(
            project,
            "config",
            "--project",
            "t1",
            "--backend",
            "tiny",
            "--preset",
            "quick",
            "resolution=64",
            "epochs=1",
        ).returncode
        == 0
    )
    assert tw(project, "gate", "check", "t1", "--gate", "2").returncode == 0
    hints += collect(project, "env", "check", "t1")
    for args in STATUS_LIKE:
        hints += collect(project, *args)
    cfg = project / "grimoire/training/t1/tiny.yaml"
    cfg.write_text(cfg.read_text() + "no_such_key: 1\n")
    hints += collect(project, "dry-run", "t1")
    # The dataset vanished: the dry run cannot even start.
    (project / "data/style").rename(project / "data/elsewhere")
    hints += collect(project, "dry-run", "t1")
    for args in STATUS_LIKE:
        hints += collect(project, *args)
    assert_runnable(hints, minimum=8)


@pytest.mark.slow
def test_a_project_with_no_backend_names_the_one_its_model_needs(project: Path) -> None:
    set_intent(
        project, "Type=style", "Base model=sdxl", "Trigger word=zzq", "Dataset folder=data/style"
    )
    hints = collect(project, "launch", "t1") + collect(project, "env", "check", "t1")
    commands = [c for h in hints for c in commands_in(h)]
    assert any("config --project t1 --backend kohya" in c for c in commands), commands
    assert_runnable(hints)


@pytest.mark.slow
def test_the_runs_commands_name_the_experiment_folder(project: Path) -> None:
    exp = project / "exp" / "e1"
    exp.mkdir(parents=True)
    (exp / "runs_plan.md").write_text(
        "# Runs plan: e1\n\n- **Backend**: tiny\n\n## Defaults\n- **Dataset**: data\n"
        "- **Epochs**: 1\n\n## Runs\n\n| Run | Base model | Method | GPUs |\n|---|---|---|---|\n"
        "| a | bundled | lora | cpu |\n"
    )
    make_dataset(exp / "data", 4)
    hints: list[str] = []
    for step in (["plan"], ["setup-dirs"], ["configs"], ["slurm-scripts", "--time", "10"]):
        proc = tw(project, "runs", step[0], "exp/e1", *step[1:])
        assert proc.returncode == 0, out(proc)
        hints += hints_of(proc.stdout)
    commands = [c for h in hints for c in commands_in(h)]
    assert all("exp/e1" in c for c in commands), commands
    assert_runnable(hints, minimum=4)
