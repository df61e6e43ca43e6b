"""Paths as people type them, and the hints the CLI prints (issue 13, sections 1 and 2).

Relative and absolute dataset folders, other spellings of --grimoire, symlinked project parts,
and the `fix:` / `next:` commands of refusals, each of which must parse with the real CLI. The
full trained path (launch, eval-grid, register) is in tests/test_user_paths.py.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from harness import Case, Result, cli, ids, run_case

from hintparse import hints_of, problems


def project(
    root: Path, dataset: str | None = "data/style", images: int = 0, trigger: bool = True
) -> None:
    """Project t1 with a complete intent naming `dataset` (typed as given)."""
    from trainwright.backends.tiny_model.data import write_example_dataset

    assert cli(root, "grimoire", "new", "t1").returncode == 0
    pairs = ["Type=style", "Base model=tiny"] + (["Trigger word=zzq"] if trigger else [])
    if dataset is not None:
        pairs.append(f"Dataset folder={dataset}")
    assert cli(root, "grimoire", "set", "intent", "--project", "t1", *pairs).returncode == 0
    if images:
        write_example_dataset(root / "data/style", images, trigger="zzq", size=96)


def with_project(
    *args: str, dataset: str | None = "data/style", images: int = 0, trigger: bool = True
):
    def setup(root: Path) -> list[str]:
        project(root, dataset, images, trigger)
        return list(args)

    return setup


def hints_parse(r: Result) -> None:
    found = hints_of(r.out, r.err)
    assert found, (r.out, r.err)
    assert not problems(found), problems(found)


def error_names(fragment: str):
    def check(r: Result) -> None:
        assert fragment in r.err, r.err

    return check


def tiny_dataset_is(folder: str):
    """tiny.yaml's dataset, read as the trainer reads it (relative to the file), is `folder`
    under the project root, and is written relative (the project can move: a rented instance)."""

    def check(r: Result) -> None:
        yaml_path = r.project / "grimoire/training/t1/tiny.yaml"
        written = yaml.safe_load(yaml_path.read_text())["dataset"]
        assert not os.path.isabs(written), written
        assert (yaml_path.parent / written).resolve() == (r.project / folder).resolve(), written

    return check


def gate_decision(decision: str):
    def check(r: Result) -> None:
        assert json.loads(r.out)["decision"] == decision, r.out

    return check


def symlinked_training(root: Path) -> list[str]:
    project(root, images=24)
    folder = root / "grimoire/training/t1"
    target = root.parent / "elsewhere-t1"
    folder.rename(target)
    folder.symlink_to(target, target_is_directory=True)
    return ["gate", "check", "t1", "--gate", "1", "--json"]


def symlinked_dataset(root: Path) -> list[str]:
    project(root, images=24)
    (root / "data/style").rename(root / "data/real")
    (root / "data/style").symlink_to(root / "data/real", target_is_directory=True)
    return ["gate", "check", "t1", "--gate", "1", "--json"]


def outside_dataset(root: Path) -> list[str]:
    from trainwright.backends.tiny_model.data import write_example_dataset

    write_example_dataset(root.parent / "shared-data", 24, trigger="zzq", size=96)
    project(root, dataset="../shared-data")
    return ["gate", "check", "t1", "--gate", "1", "--json"]


def runs_plan(root: Path) -> list[str]:
    exp = root / "exp" / "e1"
    exp.mkdir(parents=True)
    (exp / "runs_plan.md").write_text(
        "# Runs plan: e1\n\n- **Backend**: tiny\n\n## Defaults\n- **Dataset**: data\n\n"
        "## Runs\n\n| Run | Base model | Method | GPUs |\n|---|---|---|---|\n"
        "| a | bundled | lora | cpu |\n"
    )
    return ["runs", "plan", "exp/e1"]


def launch_without_dirs(root: Path) -> list[str]:
    runs_plan(root)
    assert cli(root, "runs", "plan", "exp/e1").returncode == 0
    return ["runs", "launch", "exp/e1", "--dry-run"]


re_setup = re.compile(r"`trainwright runs setup-dirs (\S*/)?exp/e1`")


def next_names_exp(r: Result) -> None:
    assert re_setup.search(r.out), r.out  # the folder as typed, or made absolute
    hints_parse(r)


CONFIG = ["config", "--project", "t1", "--backend", "tiny", "--preset", "quick"]
MADE = ["grimoire/**", "grimoire/*"]

CASES = [
    # Dataset folders typed relative, absolute, with spaces, outside the project, linked.
    Case(
        "gate1-relative-dataset",
        "dataset",
        "path-escape",
        "correct",
        setup=with_project("gate", "check", "t1", "--gate", "1", "--json", images=24),
        check=gate_decision("GO"),
        may_change=MADE,
    ),
    Case(
        "gate1-dotted-relative-dataset",
        "dataset",
        "path-escape",
        "correct",
        setup=with_project(
            "gate",
            "check",
            "t1",
            "--gate",
            "1",
            "--json",
            dataset="./data/../data/style",
            images=24,
        ),
        check=gate_decision("GO"),
        may_change=MADE,
    ),
    Case(
        "gate1-dataset-outside-the-project",
        "dataset",
        "path-escape",
        "correct",
        setup=outside_dataset,
        check=gate_decision("GO"),
        may_change=MADE,
    ),
    Case(
        "gate1-symlinked-dataset",
        "dataset",
        "path-escape",
        "correct",
        setup=symlinked_dataset,
        check=gate_decision("GO"),
        may_change=MADE,
    ),
    Case(
        "gate1-symlinked-training-folder",
        "state",
        "path-escape",
        "correct",
        setup=symlinked_training,
        check=gate_decision("GO"),
        may_change=MADE,
    ),
    Case(
        "gate1-missing-relative-dataset",
        "dataset",
        "path-escape",
        "clear-error",
        setup=with_project("gate", "check", "t1", "--gate", "1", dataset="data/none"),
        check=error_names("data/none"),
        may_change=MADE,
    ),
    Case(
        "config-relative-dataset-is-written-absolute",
        "backends",
        "path-escape",
        "correct",
        setup=with_project(*CONFIG, images=4),
        check=tiny_dataset_is("data/style"),
        may_change=MADE,
    ),
    Case(
        "config-dot-grimoire",
        "backends",
        "path-escape",
        "correct",
        setup=with_project("--grimoire", "./grimoire", *CONFIG, images=4),
        check=tiny_dataset_is("data/style"),
        may_change=MADE,
    ),
    Case(
        "config-env-grimoire",
        "backends",
        "path-escape",
        "correct",
        setup=with_project(*CONFIG, images=4),
        env={"TRAINWRIGHT_GRIMOIRE": "grimoire"},
        check=tiny_dataset_is("data/style"),
        may_change=MADE,
    ),
    Case(
        "status-dot-slash-grimoire",
        "cli",
        "path-escape",
        "correct",
        setup=with_project("--grimoire", "./grimoire", "status", "t1"),
        may_change=MADE,
    ),
    Case(
        "grimoire-relative-missing",
        "cli",
        "path-escape",
        "clear-error",
        ["--grimoire", "./nope/grimoire", "status", "t1"],
    ),
    # Hints: every fix/next command of a refusal parses with the real CLI.
    Case(
        "hint-status-fresh-project",
        "state",
        "silent-nonsense",
        "correct",
        setup=with_project("status", "t1", dataset=None),
        check=hints_parse,
        may_change=MADE,
    ),
    Case(
        "hint-status-gate1-spaces",
        "state",
        "silent-nonsense",
        "correct",
        setup=with_project("status", "t1", dataset="data/my style"),
        check=hints_parse,
        may_change=MADE,
    ),
    Case(
        "hint-launch-refused",
        "run",
        "silent-nonsense",
        "refused",
        setup=with_project("launch", "t1"),
        check=hints_parse,
        may_change=MADE,
    ),
    Case(
        "hint-launch-refused-json",
        "run",
        "silent-nonsense",
        "refused",
        setup=with_project("launch", "t1", "--json"),
        check=hints_parse,
        may_change=MADE,
    ),
    Case(
        "hint-env-check-no-config",
        "hardware",
        "silent-nonsense",
        "refused",
        setup=with_project("env", "check", "t1", "--json", images=4),
        check=hints_parse,
        may_change=MADE,
    ),
    Case(
        "hint-dry-run-no-config",
        "run",
        "silent-nonsense",
        "refused",
        setup=with_project("dry-run", "t1"),
        check=hints_parse,
        may_change=MADE,
    ),
    Case(
        "hint-dry-run-no-config-json",
        "run",
        "silent-nonsense",
        "refused",
        setup=with_project("dry-run", "t1", "--json"),
        check=hints_parse,
        may_change=MADE,
    ),
    Case(
        "hint-gate2-no-config",
        "state",
        "silent-nonsense",
        "clear-error",
        setup=with_project("gate", "check", "t1", "--gate", "2"),
        check=error_names("'trainwright config --project t1 --backend tiny'"),
        may_change=MADE,
    ),
    Case(
        "hint-gate1-no-trigger",
        "dataset",
        "silent-nonsense",
        "refused",
        setup=with_project("gate", "check", "t1", "--gate", "1", images=24, trigger=False),
        check=hints_parse,
        may_change=MADE,
    ),
    Case(
        "hint-runs-plan-names-the-folder",
        "cluster",
        "silent-nonsense",
        "correct",
        setup=runs_plan,
        check=next_names_exp,
        may_change=["exp/**"],
    ),
    Case(
        "runs-launch-relative-plan-missing-dirs",
        "cluster",
        "path-escape",
        "refused",
        setup=launch_without_dirs,
        may_change=["exp/**"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
