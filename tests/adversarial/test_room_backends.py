"""The backends room: `trainwright config` against bad overrides, models a backend cannot train,
hostile dataset folder names (quotes, `$(...)`, brackets) that must reach the trainer's files
escaped, symlinked project folders, and a person's hand edits."""

from __future__ import annotations

import pytest
import tomllib
import yaml
from harness import Case, Result, cli, run_case
from room_kit import absent, dataset, ok, params, project_dir, said, training_project

P = "grimoire/training/t1"
WRITES = [f"{P}/*"]
HOSTILE = "d s\"q'$(touch pwn)[x]"
C = ["config", "--project", "t1", "--backend", "tiny"]


def _sdxl(p, folder: str = "ds"):
    training_project(p, folder=folder)
    ok(cli(p, "grimoire", "set", "intent", "--project", "t1", "Base model=sdxl"))


def _hostile(p):
    _sdxl(p, HOSTILE)


def _kohya_dir(r: Result) -> None:
    data = tomllib.loads((r.project / P / "kohya-dataset.toml").read_text())
    got = data["datasets"][0]["subsets"][0]["image_dir"]
    assert (r.project / P / got).resolve() == (r.project / HOSTILE).resolve(), got
    assert not (r.project / "pwn").exists()


def _toolkit_dir(r: Result) -> None:
    data = yaml.safe_load((r.project / P / "ai-toolkit.yaml").read_text())
    folders = [d["folder_path"] for d in data["config"]["process"][0]["datasets"]]
    assert [(r.project / P / f).resolve() for f in folders] == [(r.project / HOSTILE).resolve()]


def _tiny_dataset(expected: str):
    def check(r: Result) -> None:
        cfg = project_dir(r.project) / "tiny.yaml"
        got = yaml.safe_load(cfg.read_text())["dataset"]
        where = (cfg.parent / got).resolve()
        assert where == (r.project / expected).resolve(), (got, where)

    return check


def _hand_edited(p):
    training_project(p, config=True)
    with open(project_dir(p) / "tiny.yaml", "a") as fh:
        fh.write("# my own note: keep epochs low\n")


def _hand_edit_kept(r: Result) -> None:
    backups = [b for b in (r.project / P).glob("tiny.yaml*") if b.name != "tiny.yaml"]
    assert any("my own note" in b.read_text() for b in backups), backups


def _symlinked_project(p):
    dataset(p)
    ok(cli(p, "grimoire", "new", "t1"))
    (p / "elsewhere").mkdir()
    (p / P).rename(p / "elsewhere/t1")
    (p / P).symlink_to(p / "elsewhere/t1")
    ok(
        cli(
            p,
            "grimoire",
            "set",
            "intent",
            "--project",
            "t1",
            "Type=style",
            "Base model=tiny",
            "Trigger word=exstyle",
            "Dataset folder=ds",
        )
    )


def _absolute_ds(p):
    dataset(p, "data/set one")
    ok(cli(p, "grimoire", "new", "t1"))
    ok(
        cli(
            p,
            "grimoire",
            "set",
            "intent",
            "--project",
            "t1",
            "Type=style",
            "Base model=tiny",
            "Trigger word=exstyle",
            f"Dataset folder={p / 'data/set one'}",
        )
    )


CASES = [
    Case(
        "config-no-project-flag",
        "backends",
        "bad-file",
        "clear-error",
        ["config", "--backend", "tiny"],
    ),
    Case(
        "config-missing-project",
        "backends",
        "corrupt-state",
        "clear-error",
        ["config", "--project", "nope", "--backend", "tiny"],
    ),
    Case(
        "config-dotdot-project",
        "backends",
        "hostile-name",
        "clear-error",
        ["config", "--project", "../t1", "--backend", "tiny"],
    ),
    Case(
        "config-backend-unknown",
        "backends",
        "bad-file",
        "clear-error",
        ["config", "--project", "t1", "--backend", "nonsense"],
        setup=lambda p: training_project(p),
    ),
    Case(
        "config-no-intent",
        "backends",
        "corrupt-state",
        "clear-error",
        C,
        setup=lambda p: ok(cli(p, "grimoire", "new", "t1")),
    ),
    Case(
        "config-override-text",
        "backends",
        "bad-file",
        "clear-error",
        [*C, "network_dim=abc"],
        setup=lambda p: training_project(p),
        check=absent(f"{P}/tiny.yaml"),
    ),
    Case(
        "config-override-no-key",
        "backends",
        "bad-file",
        "clear-error",
        [*C, "=5"],
        setup=lambda p: training_project(p),
    ),
    Case(
        "config-override-no-equals",
        "backends",
        "bad-file",
        "clear-error",
        [*C, "network_dim"],
        setup=lambda p: training_project(p),
    ),
    Case(
        "config-resolution-negative",
        "backends",
        "silent-nonsense",
        "clear-error",
        [*C, "resolution=-1"],
        setup=lambda p: training_project(p),
    ),
    Case(
        "config-epochs-huge",
        "backends",
        "resource-exhaustion",
        "clear-error",
        [*C, "epochs=1e9"],
        setup=lambda p: training_project(p),
    ),
    Case(
        "config-unknown-key",
        "backends",
        "silent-nonsense",
        "clear-error",
        [*C, "nosuchkey=1"],
        setup=lambda p: training_project(p),
        check=absent(f"{P}/tiny.yaml"),
    ),
    Case(
        "config-shell-value",
        "backends",
        "hostile-name",
        "clear-error",
        [*C, "resolution=$(touch pwn)"],
        setup=lambda p: training_project(p),
        check=absent("pwn"),
    ),
    Case(
        "config-model-unknown",
        "backends",
        "bad-file",
        "clear-error",
        [*C, "--model", "nosuchmodel"],
        setup=lambda p: training_project(p),
    ),
    Case(
        "config-gpu-unknown",
        "backends",
        "bad-file",
        "clear-error",
        [*C, "--gpu", "Potato"],
        setup=lambda p: training_project(p),
    ),
    Case(
        "config-optimizer-unknown",
        "backends",
        "bad-file",
        "clear-error",
        [*C, "--optimizer", "nonsense"],
        setup=lambda p: training_project(p),
    ),
    Case(
        "config-kohya-tiny-model",
        "backends",
        "silent-nonsense",
        "clear-error",
        ["config", "--project", "t1", "--backend", "kohya", "--vram", "24"],
        setup=lambda p: training_project(p),
    ),
    Case(
        "config-torchtune-image",
        "backends",
        "silent-nonsense",
        "clear-error",
        ["config", "--project", "t1", "--backend", "torchtune"],
        setup=lambda p: training_project(p),
    ),
    Case(
        "config-kohya-hostile-folder",
        "backends",
        "hostile-name",
        "correct",
        ["config", "--project", "t1", "--backend", "kohya", "--vram", "24"],
        setup=_hostile,
        may_change=WRITES,
        check=_kohya_dir,
    ),
    Case(
        "config-toolkit-hostile-folder",
        "backends",
        "hostile-name",
        "correct",
        ["config", "--project", "t1", "--backend", "ai-toolkit", "--vram", "24"],
        setup=_hostile,
        may_change=WRITES,
        check=_toolkit_dir,
    ),
    Case(
        "config-keeps-hand-edit",
        "backends",
        "data-loss",
        "correct",
        C,
        setup=_hand_edited,
        may_change=WRITES,
        check=_hand_edit_kept,
    ),
    Case(
        "config-dry-run-writes-nothing",
        "backends",
        "silent-nonsense",
        "correct",
        [*C, "--dry-run"],
        setup=lambda p: training_project(p),
        check=absent(f"{P}/tiny.yaml"),
    ),
    Case(
        "config-symlinked-project",
        "backends",
        "path-escape",
        "correct",
        C,
        setup=_symlinked_project,
        may_change=["elsewhere/t1/*"],
        check=_tiny_dataset("ds"),
    ),
    Case(
        "config-absolute-dataset",
        "backends",
        "path-escape",
        "correct",
        C,
        setup=_absolute_ds,
        may_change=WRITES,
        check=_tiny_dataset("data/set one"),
    ),
    Case(
        "config-relative-dataset",
        "backends",
        "path-escape",
        "correct",
        C,
        setup=lambda p: training_project(p, folder="data/my set"),
        may_change=WRITES,
        check=_tiny_dataset("data/my set"),
    ),
    Case(
        "config-dataset-missing",
        "backends",
        "corrupt-state",
        "correct",
        C,
        setup=lambda p: (training_project(p), __import__("shutil").rmtree(p / "ds")) and None,
        may_change=WRITES,
        check=said("wrote"),
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
