"""Skill-driven acceptance: run the `trainwright ...` commands a skill names, in the skill's order.

The commands are read from the skill files themselves (inline code and fenced blocks, in order),
placeholders are filled from the small table of each case, and each command runs in a fresh
`trainwright init` project from its root, with --grimoire at its default. It must exit as the
skill says: 0, or 1 where the skill expects a NO-GO. A skill that names a command or a form the
CLI does not take fails here, not in a session.

A written command is not run when it is a synopsis (`[...]`, `a | b`) or a bare mention of a
command inside prose (`trainwright launch`); those are listed per case with the reason, and the
synopses still have to name a real command.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import REPO
from userpaths import init_project, make_dataset, out, tw

CODE = re.compile(r"```.*?```|`[^`\n]+`", re.S)


def skill_commands(*files: str) -> list[str]:
    """The `trainwright ...` commands of the files, in order (continuations joined, comments
    dropped)."""
    found: list[str] = []
    for rel in files:
        text = (REPO / rel).read_text(encoding="utf-8")
        for m in CODE.finditer(text):
            block = m.group(0).strip("`")
            block = re.sub(r"\\\n\s*", " ", block)
            for line in block.splitlines():
                line = re.sub(r"\s+#\s.*$", "", line).strip()
                if line.startswith("trainwright "):
                    found.append(line)
    return found


@dataclass
class Skill:
    id: str
    files: tuple[str, ...]
    subs: tuple[tuple[str, str], ...] = ()  # whole-word placeholder -> value
    setup: Callable[[Path], None] | None = None
    expect: dict[str, tuple[int, ...]] = field(default_factory=dict)  # regex -> exit codes
    not_run: dict[str, str] = field(default_factory=dict)  # regex of the written form -> why
    timeout: float = 300
    env: dict[str, str] = field(default_factory=dict)
    capture: dict[str, str] = field(default_factory=dict)  # placeholder -> regex over stdout


def fill(command: str, subs: tuple[tuple[str, str], ...]) -> str:
    for old, new in subs:
        command = re.sub(rf"(?<![\w/-]){re.escape(old)}(?![\w-])", new, command)
    return command


def dataset_project(root: Path) -> None:
    make_dataset(root / "data/style")


def experiment(root: Path) -> None:
    (root / "exp").mkdir()


def retro_reports(root: Path) -> None:
    reports = root / "reports" / "cuda"
    reports.mkdir(parents=True)
    for name, rank in (("a", 8), ("b", 16)):
        (reports / f"{name}.md").write_text(
            f"# LoRA rank {rank}\n\n- **Date**: 2026-11-0{rank // 8}\n- **Outcome**: success\n\n"
            f"## Lessons\n- rank {rank} trained stably at lr 1e-4\n"
        )


INTENT = 'Type=style "Base model=tiny" "Trigger word=zzq" "Dataset folder=data/style"'
TRAIN_SUBS = (
    ("--project NAME ...", f"--project t1 {INTENT}"),  # "...": the intent keys
    ("NAME", "t1"),
    ("<name>", "t1"),
    ("/path/to/images", "data/style"),
    ("DIR", "data/style"),
    ("/path/outside/the/dataset", "quarantine"),
    ("WORD", "zzq"),
    ("FINAL.safetensors", "grimoire/training/t1/output/t1-epoch-0001.safetensors"),
)
SYNOPSIS = r"\[|\s\|\s|\.\.\.|<"

SKILLS = [
    Skill(
        "train-intent-and-dataset",
        (
            ".claude/commands/train.md",
            ".claude/skills/train/SKILL.md",
            ".claude/skills/train/references/dataset-phase.md",
        ),
        TRAIN_SUBS,
        dataset_project,
        expect={
            # Named before `grimoire new` ("if the project exists"): a fresh project is not
            # there yet (exit 2); later it reports the phase.
            r"^trainwright status t1$": (0, 2),
            # The overview names Gate 2 before the config phase writes a config: refused.
            r"--gate 2": (2,),
            r"^trainwright dedup --undo": (2,),  # MANIFEST: the one a quarantine printed
        },
        not_run={
            r"^trainwright status$": "a bare mention in prose",
            r"^trainwright (launch|cost)$": "a bare mention in prose",
            r"^trainwright dedup --undo MANIFEST$": "MANIFEST is the file dedup printed",
            r"captions apply .* --from captions.json": "captions.json is the agent's drafts",
        },
    ),
]


def trained_setup(root: Path) -> None:
    """A project through Gate 2 (the config phase's own steps), three epochs with a checkpoint
    each, so the evaluation has a final, an early and a middle checkpoint."""
    make_dataset(root / "data/style")
    steps = [
        ("grimoire", "new", "t1"),
        ("grimoire", "set", "intent", "--project", "t1", *shlex.split(INTENT)),
        ("gate", "check", "t1", "--gate", "1"),
        (
            "config",
            "--project",
            "t1",
            "--backend",
            "tiny",
            "--preset",
            "quick",
            "resolution=64",
            "epochs=3",
            "repeats=1",
            "save_every_n_epochs=1",
        ),
        ("gate", "check", "t1", "--gate", "2"),
    ]
    for args in steps:
        proc = tw(root, *args)
        assert proc.returncode == 0, out(proc)


OUTPUT = "grimoire/training/t1/output/t1-epoch-000{}.safetensors"
SKILLS.append(
    Skill(
        "train-config-run-eval",
        (
            ".claude/skills/train/references/config-phase.md",
            ".claude/skills/train/references/run-phase.md",
            ".claude/skills/train/references/eval-phase.md",
        ),
        (
            ("B", "tiny"),
            ("PATH", "grimoire/training/t1/train.log"),
            ("FINAL.safetensors", OUTPUT.format(3)),
            ("EARLY.safetensors", OUTPUT.format(1)),
            ("MIDDLE.safetensors", OUTPUT.format(2)),
            ("...", "as the person judged it"),
            *TRAIN_SUBS,
        ),
        trained_setup,
        expect={},
        not_run={
            r"^trainwright (config|cost)$": "a bare mention in prose",
            r"--ssh USER@HOST": "needs a machine to reach over ssh",
        },
        timeout=600,
    )
)

RUN_SKILLS = tuple(
    f".claude/skills/{name}/SKILL.md"
    for name in (
        "plan-runs",
        "setup-experiment-dirs",
        "create-torchtune-config",
        "generate-slurm-script",
        "launch-runs",
        "monitor-jobs",
    )
)
SKILLS.append(
    Skill(
        "experiment-runs",
        RUN_SKILLS,
        (
            ("EXPERIMENT_DIR", "exp/qwen-vs-llama"),
            ("DIR", "exp/qwen-vs-llama"),
            ("P", "gpu"),
            ("NAME", "t1"),
        ),
        None,
        expect={
            # A fresh project has no downloaded weights: the configs keep SET-ME and every
            # check after says so with exit 1, as the skills describe; nothing is submitted.
            r"^trainwright runs (torchtune-)?configs ": (1,),
            r"^trainwright runs launch ": (1,),
            # create-torchtune-config names the /train project's Gate 2 for a grimoire project
            # whose config is still to be written: refused.
            r"gate check t1 --gate 2": (2,),
            # plan-runs names the staged-workflow ticket an experiment may belong to; this
            # project has none, so `ticket status t1` is refused, naming it
            r"^trainwright ticket status t1$": (2,),
        },
        not_run={r"runs monitor .* --follow": "follows until every run ends; none was submitted"},
        env={"PATH": str(Path(sys.executable).parent)},  # no sbatch: the local executor
    )
)

TICKET_SUBS = (
    ("NAME", "t1"),
    ("N+1", "1"),
    ('"..."', '"the stage checklist holds"'),
    ("PATH", "src/app.py"),
    ("--from N", "--from 1"),
    ("CLASS", "unclear"),  # the class that applies at Stage 1
)
TICKET_EXPECT = {
    r"ticket check src/app.py": (1,),  # source is locked at Stage 1: "exit 1 when blocked"
    # Archive is for the end, "when the person has verified the result"; run in the skill's
    # order at Stage 1 it is refused, and so is reopening a ticket that is not archived.
    r"ticket (archive|reopen) ": (2,),
}
for name in ("llm-fine-tuning", "deep-learning-experiment"):
    SKILLS.append(
        Skill(
            name,
            (f".claude/skills/{name}/SKILL.md",),
            TICKET_SUBS,
            expect=TICKET_EXPECT,
            not_run={r"^trainwright ticket$": "a bare mention in prose"},
        )
    )
SKILLS.append(
    Skill(
        "domain-retrospective",
        (
            ".codex/skills/domain-retrospective/SKILL.md",
            ".codex/skills/domain-retrospective/references/collect-format.md",
        ),
        (
            ("--match ...", "--match rank"),
            ("[--name softmax-online | --subject softmax --finding online]", "--name lora-rank"),
        ),
        retro_reports,
        capture={"ID": r"then: trainwright retro apply (\S+) --approved"},
        expect={
            r"retro apply skill-lora-rank$": (1,),  # without --approved: shown, not applied
        },
        not_run={
            r"bench kernel": "measures GPU kernels; tests/test_retro_bench.py runs it",
            r"^trainwright retro log$": "a mention in prose: entries need a TITLE",
        },
    )
)


def run_skill(skill: Skill, root: Path) -> list[str]:
    """Run the skill's commands; return a line per command (for the failure message)."""
    done: list[str] = []
    captured: dict[str, str] = {}  # placeholders whose value an earlier command printed
    commands = skill_commands(*skill.files)
    assert commands, skill.files
    for written in commands:
        # Optional parts ([--flag VALUE]) are left out: the command runs with its defaults.
        command = re.sub(r"\s*\[[^\]]*\]", "", fill(written, (*skill.subs, *captured.items())))
        why = next((w for pat, w in skill.not_run.items() if re.search(pat, command)), None)
        if why or re.search(SYNOPSIS, command):
            head = shlex.split(re.split(SYNOPSIS, command)[0])[1:2]
            proc = tw(root, *head, "--help")
            assert proc.returncode == 0, (written, out(proc))
            done.append(f"not run ({why or 'synopsis'}): {written}")
            continue
        codes = next((c for pat, c in skill.expect.items() if re.search(pat, command)), (0,))
        proc = tw(root, *shlex.split(command)[1:], timeout=skill.timeout, env=skill.env)
        done.append(f"exit {proc.returncode}: {command}")
        for name, pattern in skill.capture.items():
            m = re.search(pattern, proc.stdout, re.M)
            if m:
                captured[name] = m.group(1)
        assert "Traceback" not in proc.stderr, (command, out(proc))
        assert proc.returncode in codes, "\n".join(done) + "\n" + out(proc)
    return done


@pytest.mark.slow
@pytest.mark.parametrize("skill", SKILLS, ids=[s.id for s in SKILLS])
def test_skill_runs_as_written(skill: Skill, tmp_path: Path) -> None:
    root = init_project(tmp_path / "proj")
    if skill.setup:
        skill.setup(root)
    lines = run_skill(skill, root)
    assert any(line.startswith("exit ") for line in lines), lines


def test_the_reader_keeps_the_skill_order() -> None:
    cmds = skill_commands(".claude/skills/train/references/run-phase.md")
    assert cmds.index("trainwright dry-run NAME") < cmds.index("trainwright launch NAME")
    assert "trainwright config --project NAME --backend tiny --preset quick" in cmds
    assert not any(c.startswith("trainwright config NAME") for c in cmds)


def test_fill_replaces_whole_words_only() -> None:
    assert fill("trainwright gate check NAME --gate 1", (("NAME", "t1"),)) == (
        "trainwright gate check t1 --gate 1"
    )
    assert fill("trainwright x --file-name NAMES", (("NAME", "t1"),)).endswith("NAMES")
