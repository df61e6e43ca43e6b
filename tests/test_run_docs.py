"""The run-phase docs cannot drift from the code and data they describe."""

from __future__ import annotations

import re

import click
import yaml

from helpers import REPO
from trainwright.cli import cli
from trainwright.run import anomalies, failures

FAILURE_MODES = REPO / "resources" / "training" / "failure-modes.md"
MATRIX_MD = REPO / "resources" / "environment" / "cuda-pytorch-matrix.md"
RUN_PHASE = REPO / ".claude" / "skills" / "train" / "references" / "run-phase.md"


def test_failure_modes_prose_covers_every_symptom_id_of_the_data() -> None:
    data = yaml.safe_load((REPO / "resources" / "training" / "failure-modes.yaml").read_text())
    headings = set(re.findall(r"^### ([a-z-]+)$", FAILURE_MODES.read_text(), flags=re.M))
    assert {m["id"] for m in data["symptoms"]} == headings


def test_failure_modes_prose_names_every_failure_kind_and_the_rule_numbers() -> None:
    text = " ".join(FAILURE_MODES.read_text().split())
    kinds = {"oom", "killed", "model", "dataset", "cuda", "package", "config", "hang"}
    kinds |= {"no-training", "crash"}
    assert all(f"| `{k}` |" in text for k in kinds)
    assert failures.classify("", 1).kind in kinds
    assert f"more than {anomalies.SPIKE_SIGMA:.0f} standard deviations" in text
    assert f"the {anomalies.SPIKE_WINDOW} losses before it" in text
    assert f"waits for {anomalies.SPIKE_MIN} earlier values" in text
    assert f"t-statistic above {anomalies.DIVERGE_T:.0f}" in text
    assert f"mean for {anomalies.PLATEAU_EPOCHS} epochs" in text
    assert f"within {anomalies.PLATEAU_DELTA:.0%} below" in text


def test_matrix_prose_table_matches_the_data() -> None:
    data = yaml.safe_load(
        (REPO / "resources" / "environment" / "cuda-pytorch-matrix.yaml").read_text()
    )
    rows = re.findall(r"^\| (\d\.\d+) \| [^|]+ \| ([^|]+) \|", MATRIX_MD.read_text(), flags=re.M)
    assert rows
    for version, stable in rows:
        assert [c.strip() for c in stable.split(",")] == data["pytorch"][version]["cuda"]


def _commands(group: click.Group, prefix: str = "trainwright") -> set[str]:
    out = set()
    for name, cmd in group.commands.items():
        out.add(f"{prefix} {name}")
        if isinstance(cmd, click.Group):
            out |= _commands(cmd, f"{prefix} {name}")
    return out


def test_every_command_the_run_phase_names_exists() -> None:
    known = _commands(cli)
    named = re.findall(r"`(trainwright [a-z-]+(?: [a-z-]+)?)", RUN_PHASE.read_text())
    assert named
    for cmd in named:
        words = cmd.split()
        assert " ".join(words[:3]) in known or " ".join(words[:2]) in known, cmd
