"""Issue 13, section 1: the user's own path works.

Everything runs from the root of a project made by `trainwright init`, with --grimoire at its
default and paths as a person types them. The trainer and the supervisor run in other working
folders (the project folder, the run folder), so any path handed to them relative to the
project root would name nothing there.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from hintparse import check_command, commands_in, hints_of
from userpaths import init_project, make_dataset, out, tw

INTENT = ("Type=style", "Base model=tiny", "Trigger word=zzq")
# Small and quick: 64 px, one epoch, each image shown twice.
QUICK = ("--preset", "quick", "resolution=64", "epochs=1", "repeats=2")


def ok(proc, code: int = 0) -> str:
    assert proc.returncode == code, out(proc)
    assert "Traceback" not in proc.stderr, out(proc)
    return proc.stdout


def through_gate_1(root: Path, dataset: str, grimoire: tuple[str, ...] = ()) -> None:
    ok(tw(root, *grimoire, "grimoire", "new", "t1"))
    ok(
        tw(
            root,
            *grimoire,
            "grimoire",
            "set",
            "intent",
            "--project",
            "t1",
            *INTENT,
            f"Dataset folder={dataset}",
        )
    )
    ok(tw(root, *grimoire, "gate", "check", "t1", "--gate", "1"))


def through_gate_4(root: Path, grimoire: tuple[str, ...] = (), env=None) -> None:
    ok(tw(root, *grimoire, "config", "--project", "t1", "--backend", "tiny", *QUICK, env=env))
    ok(tw(root, *grimoire, "gate", "check", "t1", "--gate", "2", env=env))
    ok(tw(root, *grimoire, "env", "check", "t1", env=env))
    text = ok(tw(root, *grimoire, "dry-run", "t1", env=env))
    assert "Gate 4 GO" in text, text


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return init_project(tmp_path / "proj")


@pytest.mark.slow
@pytest.mark.parametrize("typed", ["relative", "absolute"])
def test_the_issue_sequence_from_the_project_root(root: Path, typed: str) -> None:
    make_dataset(root / "data/style")
    dataset = "data/style" if typed == "relative" else str(root / "data/style")
    through_gate_1(root, dataset)
    through_gate_4(root)
    ok(tw(root, "launch", "t1"))
    assert "complete" in ok(tw(root, "monitor", "t1"))
    listing = ok(tw(root, "checkpoints", "t1"))
    assert "epoch-1" in listing, listing
    # status names the real LoRA file, and that command runs as printed.
    status = ok(tw(root, "status", "t1"))
    (nxt,) = [c for h in hints_of(status) for c in commands_in(h) if "eval-grid" in c]
    assert check_command(nxt) is None, nxt
    lora = shlex.split(nxt)[shlex.split(nxt).index("--lora") + 1]
    assert lora.endswith("t1-epoch-0001.safetensors") and (root / lora).is_file(), lora
    grid = ok(tw(root, *shlex.split(nxt)[1:], "--weights", "0,1", "--json"))
    assert '"grids"' in grid
    ok(tw(root, "grimoire", "set", "eval", "--project", "t1", "Recommended weight=1.0"))
    ok(tw(root, "register", "t1", "--file", lora))
    studio = (root / "grimoire/studio.md").read_text()
    assert str(root / lora) in studio or os.path.realpath(root / lora) in studio, studio


@pytest.mark.slow
def test_a_project_moved_to_another_folder_still_trains(root: Path, tmp_path: Path) -> None:
    """A project folder moved (a new disk, a colleague's machine, a rented instance): the
    configs name its files relative to their folder, so the gates stay GO and the run finds
    its data without `trainwright config` again."""
    make_dataset(root / "data/style")
    through_gate_1(root, "data/style")
    through_gate_4(root)
    moved = tmp_path / "moved" / "proj"
    moved.parent.mkdir()
    root.rename(moved)
    status = ok(tw(moved, "gate", "status", "t1", "--json"))
    assert "STALE" not in status and '"ok": false' not in status, status
    ok(tw(moved, "launch", "t1"))
    assert "complete" in ok(tw(moved, "monitor", "t1"))
    assert list((moved / "grimoire/training/t1").rglob("t1-epoch-0001.safetensors"))


def test_config_writes_paths_the_trainer_finds_for_a_relative_grimoire(root: Path) -> None:
    """The dataset is written relative to the config's folder (where the trainer starts, and
    what tiny reads paths against), so the project still runs when it is copied elsewhere."""
    make_dataset(root / "data/style", 4)
    ok(tw(root, "--grimoire", "grimoire", "grimoire", "new", "t1"))
    ok(
        tw(
            root,
            "grimoire",
            "set",
            "intent",
            "--project",
            "t1",
            *INTENT,
            "Dataset folder=data/style",
        )
    )
    ok(tw(root, "config", "--project", "t1", "--backend", "tiny", *QUICK))
    cfg = (root / "grimoire/training/t1/tiny.yaml").read_text()
    assert "dataset: ../../../data/style\n" in cfg, cfg
    command = (root / "grimoire/training/t1/config.md").read_text()
    assert str(root / "grimoire/training/t1/tiny.yaml") in command


def _path_args(cmd: list[str]) -> list[str]:
    """The arguments of a command line that name a file or folder (not a hub id, not a flag)."""
    paths = []
    for arg in cmd:
        value = arg.split("=", 1)[1] if re.match(r"^[a-z_]+=", arg) else arg
        if value.startswith("-") or "/" not in value:
            continue
        if re.fullmatch(r"[\w.-]+/[\w.-]+", value) and not value.endswith((".py", ".toml")):
            continue  # org/model
        paths.append(value)
    return paths


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend,model",
    [
        ("kohya", "sd-1.5"),
        ("ai-toolkit", "sd-1.5"),
        ("simpletuner", "sd-1.5"),
        ("torchtune", "qwen2.5-0.5b"),
        ("tiny", "tiny"),
    ],
)
def test_every_backends_command_line_names_absolute_paths(
    root: Path, backend: str, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dry run and the launch run these in the project folder: no path may be relative to
    the project root (the kohya --config_file of the issue)."""
    make_dataset(root / "data/style", 4)
    ok(tw(root, "grimoire", "new", "t1"))
    ok(
        tw(
            root,
            "grimoire",
            "set",
            "intent",
            "--project",
            "t1",
            "Type=style",
            f"Base model={'tiny' if model == 'tiny' else 'sd-1.5'}",
            "Trigger word=zzq",
            "Dataset folder=data/style",
        )
    )
    ok(
        tw(
            root,
            "--grimoire",
            "grimoire",
            "config",
            "--project",
            "t1",
            "--backend",
            backend,
            "--model",
            model,
            "--vram",
            "80",
            "--preset",
            "quick",
        ),
        0,
    )
    monkeypatch.chdir(root)
    from trainwright.run.launch_target import load_plan
    from trainwright.state.grimoire import Grimoire

    plan = load_plan(Grimoire("grimoire"), "t1")
    for cmd in (plan.command(max_steps=3, save=False), plan.command(resume=True)):
        for path in _path_args(cmd):
            assert os.path.isabs(path), (path, cmd)
    assert plan.config.is_absolute() and plan.config.is_file()
    assert plan.checkpoint_dir().is_absolute()
    recorded = (root / "grimoire/training/t1/config.md").read_text()
    line = next(ln for ln in recorded.splitlines() if ln.startswith("- **Command**:"))
    for path in _path_args(shlex.split(line.split(":", 1)[1])):
        assert os.path.isabs(path), (path, line)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["./grimoire", "../grimoire", "env"])
def test_other_relative_grimoire_forms(root: Path, form: str) -> None:
    make_dataset(root / "data/style")
    through_gate_1(root, "data/style")
    cwd, flags, env = root, ("--grimoire", form), None
    if form == "../grimoire":
        cwd = root / "data"  # a subfolder of the project
    if form == "env":
        flags, env = (), {"TRAINWRIGHT_GRIMOIRE": "grimoire"}
    ok(tw(cwd, *flags, "config", "--project", "t1", "--backend", "tiny", *QUICK, env=env))
    ok(tw(cwd, *flags, "gate", "check", "t1", "--gate", "2", env=env))
    ok(tw(cwd, *flags, "env", "check", "t1", env=env))
    assert "Gate 4 GO" in ok(tw(cwd, *flags, "dry-run", "t1", env=env))


@pytest.mark.slow
def test_a_symlinked_project_folder(tmp_path: Path) -> None:
    real = init_project(tmp_path / "disk" / "proj")
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    make_dataset(link / "data/style")
    through_gate_1(link, "data/style")
    through_gate_4(link, ("--grimoire", str(link / "grimoire")))
    # Typed through the link, the recorded config keeps the typed path.
    config_md = (real / "grimoire/training/t1/config.md").read_text()
    assert str(link / "grimoire/training/t1/tiny.yaml") in config_md, config_md


@pytest.mark.slow
def test_a_symlinked_training_folder(root: Path, tmp_path: Path) -> None:
    make_dataset(root / "data/style")
    elsewhere = tmp_path / "big-disk" / "t1"
    elsewhere.parent.mkdir()
    ok(tw(root, "grimoire", "new", "t1"))
    (root / "grimoire/training/t1").rename(elsewhere)
    (root / "grimoire/training/t1").symlink_to(elsewhere, target_is_directory=True)
    ok(
        tw(
            root,
            "grimoire",
            "set",
            "intent",
            "--project",
            "t1",
            *INTENT,
            "Dataset folder=data/style",
        )
    )
    ok(tw(root, "gate", "check", "t1", "--gate", "1"))
    through_gate_4(root)
    assert (elsewhere / "tiny.yaml").is_file() and (elsewhere / "dry-run.log").is_file()


@pytest.mark.slow
def test_the_runs_commands_with_a_relative_plan_and_the_local_executor(
    root: Path, tmp_path: Path
) -> None:
    exp = root / "exp" / "e1"
    exp.mkdir(parents=True)
    (exp / "runs_plan.md").write_text(
        "# Runs plan: e1\n\n- **Backend**: tiny\n\n## Defaults\n- **Dataset**: data\n"
        "- **Epochs**: 1\n- **Batch size**: 4\n\n## Runs\n\n"
        "| Run | Base model | Method | GPUs | Learning rate |\n|---|---|---|---|---|\n"
        "| a | bundled | lora | cpu | 1e-3 |\n"
    )
    make_dataset(exp / "data", 4)
    empty = tmp_path / "no-sbatch"
    empty.mkdir()
    env = {"PATH": str(empty)}
    for step in (["plan"], ["validate"], ["setup-dirs"], ["configs"]):
        ok(tw(root, "runs", step[0], "exp/e1", *step[1:]))
    ok(
        tw(
            root,
            "runs",
            "slurm-scripts",
            "exp/e1",
            "--cpus",
            "1",
            "--mem",
            "1G",
            "--time",
            "10",
            env=env,
        )
    )
    script = (exp / "a" / "finetune.slurm").read_text()
    run_dir = re.search(r"^RUN_DIR=(.+)$", script, re.M).group(1)
    assert run_dir == str(exp / "a"), run_dir
    for line in script.splitlines():
        if line.startswith("#SBATCH --output"):
            assert os.path.isabs(line.split("=", 1)[1]), line
    cfg = (exp / "a" / "finetune.yaml").read_text()
    assert f"dataset: {exp / 'data'}" in cfg, cfg
    ok(tw(root, "runs", "launch", "exp/e1", env=env))
    ok(
        tw(
            root,
            "runs",
            "monitor",
            "exp/e1",
            "--follow",
            "--max-interval",
            "2",
            env=env,
            timeout=600,
        )
    )
    assert list((exp / "a" / "checkpoints").glob("*.safetensors"))
