"""Tickets and runs know each other (issue 16, section 6): an experiment's files are ticket
artifacts the edit lock allows at every stage and never puts back, a runs plan names its ticket,
and `ticket status` shows the runs. Run from a `trainwright init` project with a real git
repository and the registered hooks, as the agent works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_cli
from lock_bracket import bracket, call_hook, event, locked_project, violations


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    assert run_cli("init", str(root)).returncode == 0
    return locked_project(root)  # ticket t1 at Stage 0, edits Locked


def _plan(project: Path, exp: str, *extra: str):
    return run_cli("runs", "plan", exp, "--backend", "tiny", *extra, cwd=project)


def _status(project: Path, name: str = "t1") -> dict:
    proc = run_cli("ticket", "status", name, "--json", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)["tickets"][0]


def test_a_plan_made_with_one_active_ticket_names_it_and_status_shows_its_runs(
    project: Path,
) -> None:
    made = _plan(project, "experiments/exp1")
    assert made.returncode == 0, made.stdout + made.stderr
    assert "ticket: t1" in made.stdout
    assert "- **Ticket**: t1" in (project / "experiments/exp1/runs_plan.md").read_text()
    exps = _status(project)["experiments"]
    assert [Path(e["experiment"]).name for e in exps] == ["exp1"]
    states = {r["run"]: r["state"] for r in exps[0]["runs"]}
    assert states == {"base": "SKIPPED", "run1": "PLANNED", "run2": "PLANNED"}
    human = run_cli("ticket", "status", "t1", cwd=project).stdout
    assert "experiment " in human and "run1 PLANNED" in human
    # a second plan without the ticket's name is not shown
    (project / "other").mkdir()
    (project / "other" / "runs_plan.md").write_text(
        (project / "experiments/exp1/runs_plan.md").read_text().replace("- **Ticket**: t1\n", "")
    )
    assert len(_status(project)["experiments"]) == 1


def test_with_two_tickets_the_person_names_one(project: Path) -> None:
    assert run_cli("ticket", "new", "t2", "--no-worktree", cwd=project).returncode == 0
    unnamed = _plan(project, "exp-a")
    assert unnamed.returncode == 0 and "ticket:" not in unnamed.stdout
    named = _plan(project, "exp-b", "--ticket", "t2")
    assert named.returncode == 0 and "ticket: t2" in named.stdout
    assert [Path(e["experiment"]).name for e in _status(project, "t2")["experiments"]] == ["exp-b"]
    assert _status(project, "t1")["experiments"] == []
    assert_one_line_error(_plan(project, "exp-c", "--ticket", "nope"), "no ticket 'nope'")
    assert not (project / "exp-c").exists()


def test_the_lock_allows_experiment_files_at_stage_0_and_blocks_other_configs(
    project: Path,
) -> None:
    def write(target: str) -> int:
        return call_hook(project, event(project, "PreToolUse", target, "toolu_w", tool="Write"))

    assert write(str(project / "experiments/exp2/runs_plan.md")).returncode == 0
    assert _plan(project, "experiments/exp2").returncode == 0
    for rel in ("run1/finetune.yaml", "run1/run1.slurm", "runs_status.yaml"):
        proc = write(str(project / "experiments/exp2" / rel))
        assert proc.returncode == 0, (rel, proc.stderr)
    blocked = write(str(project / "configs/new.yaml"))
    assert blocked.returncode == 2 and "Stage 0" in blocked.stderr


def test_a_bash_call_that_writes_run_files_is_never_put_back(project: Path) -> None:
    assert _plan(project, "experiments/exp3").returncode == 0
    exp = project / "experiments/exp3"
    (project / "tools").mkdir()
    (project / "tools" / "write.txt").write_text(
        "import pathlib\n"
        "run = pathlib.Path('experiments/exp3/run1')\n"
        "run.mkdir(parents=True)\n"
        "(run / 'finetune.yaml').write_text('lr: 1e-4\\n')\n"
        "(run / 'run1.slurm').write_text('#!/bin/bash\\n')\n"
        "pathlib.Path('configs/sft.yaml').write_text('lr: 9\\n')\n"
    )
    result = bracket(project, "python3 tools/write.txt")
    assert not result.blocked_before and result.reverted_after, result.describe()
    assert (exp / "run1/finetune.yaml").read_text() == "lr: 1e-4\n"
    assert (exp / "run1/run1.slurm").read_text() == "#!/bin/bash\n"
    assert (project / "configs/sft.yaml").read_text() == "lr: 1e-4\n"  # source: put back
    assert "experiments/exp3" not in result.post.stderr
    assert violations(project) == ["V-001"]


RUN_SKILLS = (
    "plan-runs", "setup-experiment-dirs", "create-torchtune-config", "generate-slurm-script",
    "launch-runs", "monitor-jobs",
)  # fmt: skip


@pytest.mark.parametrize(
    "stage",
    [
        "llm-fine-tuning/stages/05-training-and-validation/README.md",
        "deep-learning-experiment/stages/05-training-validation/README.md",
    ],
)
def test_stage_5_routes_cluster_work_to_the_run_skills(stage: str) -> None:
    skills = Path(__file__).resolve().parents[1] / ".claude" / "skills"
    text = (skills / stage).read_text()
    positions = [text.find(name) for name in RUN_SKILLS]
    assert all(p >= 0 for p in positions) and positions == sorted(positions)
    assert all((skills / name / "SKILL.md").is_file() for name in RUN_SKILLS)
    assert "--ticket" in text and "ticket status" in text
    plan_skill = (skills / "plan-runs" / "SKILL.md").read_text()
    assert "--ticket" in plan_skill and "ticket status" in plan_skill
