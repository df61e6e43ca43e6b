"""`trainwright retro check SUMMARY.md`: each line of a retrospective against the sources it cites.

Run from the project root made by `trainwright init`, with the hand-written reports of
tests/data/retro/hand under reports/, as the skill has the agent run it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_cli
from support.retro_project import make_project

HAND = Path(__file__).parent / "data" / "retro" / "hand"
SOURCES = """
### Sources
1. `reports/research/ablation-prose.md`: Ablation (markdown)
2. `reports/research/notes.md`: Notes, week 47 (markdown)
3. `reports/cuda/kernel-table.md`: Softmax kernel block sizes on H100 (markdown)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("proj")
    assert run_cli("init", cwd=root).returncode == 0
    for name, domain in (("ablation-prose.md", "research"), ("notes.md", "research"),
                         ("kernel-table.md", "cuda")):  # fmt: skip
        (root / "reports" / domain).mkdir(parents=True, exist_ok=True)
        shutil.copy(HAND / name, root / "reports" / domain / name)
    return root


def check(project: Path, name: str, body: str, *extra: str) -> tuple[int, dict]:
    (project / name).write_text(body)
    proc = run_cli("retro", "check", "--json", name, *extra, cwd=project)
    assert proc.returncode in (0, 1), proc.stderr
    data = json.loads(proc.stdout)
    assert data["supported"] == (proc.returncode == 0)
    return proc.returncode, {f["line"]: f["problems"] for f in data["unsupported"]}


def test_claims_in_other_units_and_formats_are_supported(project: Path) -> None:
    body = (
        """## Retrospective: softmax and the intent classifier

### Key findings
- BLOCK=4096 reached 3.02 TB/s, 0.90 of peak, in 356 µs [3]
- Fixed settings: lr 0.0001, batch size 32, 10 epochs; warmup of 500 steps [1]
- Warmup plus label smoothing 0.1 gave 92.4 % accuracy, against 89% without warmup [1]

### What failed
- "lr 1e-4 too high there": it diverged around step 900, and 5e-5 trained to step 3000 [2]
"""
        + SOURCES
    )
    code, problems = check(project, "good.md", body)
    assert (code, problems) == (0, {})


def test_numbers_and_quotes_the_sources_do_not_hold_are_listed(project: Path) -> None:
    body = (
        """## Retrospective

### Key findings
- lr 2e-4 was held fixed for 10 epochs [1]
- BLOCK=4096 reached 3.2 TB/s [3]
- The notes say "eval every 100 steps" [2]
- Label smoothing 0.1 gave 92.4% accuracy [1]
"""
        + SOURCES
    )
    code, problems = check(project, "bad.md", body)
    assert code == 1
    assert problems == {
        4: ["2e-4 is not in [1]"],
        5: ["3.2 TB/s is not in [3]"],
        6: ["100 is not in [2]", '"eval every 100 steps" is not in [2]'],
    }


def test_a_cited_source_number_that_does_not_exist_is_listed(project: Path) -> None:
    body = "## R\n\n- Accuracy reached 92.4% [7]\n- Warmup helped [1, 4]\n" + SOURCES
    body += "4. `reports/research/gone.md`: a report since deleted (markdown)\n"
    code, problems = check(project, "ghost.md", body)
    assert code == 1
    assert problems[3] == ["cites [7], which is not a source (Sources lists 1-4)"]
    assert problems[4] == ["source 4 (`reports/research/gone.md`) does not exist"]
    assert problems[10] == ["source 4 (`reports/research/gone.md`) does not exist"]


def test_a_summary_without_citations_has_every_factual_line_flagged(project: Path) -> None:
    body = """# What we learned

We held lr at 1e-4 with batch size 32.
- Warmup mattered: 91.2% against 89.0% without it
- The tokenizer needs pad = eos
- BLOCK=4096 was fastest
"""
    code, problems = check(project, "bare.md", body)
    assert code == 1
    assert problems == {n: ["cites no source"] for n in (3, 4, 5, 6)}


def test_claims_that_nothing_was_recorded_are_checked_against_the_sources(project: Path) -> None:
    body = (
        """## Retrospective

### Key findings
- none recorded

### Open questions
- No source records hyperparameters: measure it next time.
- No source records tokenizer settings: measure it next time.
"""
        + SOURCES
    )
    code, problems = check(project, "absent.md", body)
    assert code == 1
    assert sorted(problems) == [4, 7]
    assert problems[4][0].startswith(
        "says nothing was recorded, but source 1 has passages no rule structured (lines 3-4, 6-8"
    )
    assert (
        "says no source records hyperparameters, but source 1 mentions 'lr' (line 4)"
        in (problems[7])
    )


def test_scaffold_passes_and_paths_work_relative_and_absolute(project: Path) -> None:
    proc = run_cli("retro", "summarize", "--domain", "cuda", "--out", "retro.md", cwd=project)
    assert proc.returncode == 0, proc.stderr
    rel = run_cli("retro", "check", "retro.md", cwd=project)
    assert rel.returncode == 0, rel.stdout
    assert rel.stdout.strip().endswith("checked line(s) supported")
    absolute = run_cli("retro", "check", str(project / "retro.md"), cwd=project / "reports")
    assert absolute.returncode == 0, absolute.stdout


@pytest.mark.parametrize("domain", ["research", "unsloth", "cuda"])
def test_golden_scaffolds_pass_but_placeholders_and_a_changed_number(
    tmp_path: Path, domain: str
) -> None:
    """Every line the scaffold takes from the structured data is supported; only its
    placeholders (read the passages yourself) are listed, until the agent replaces them."""
    make_project(tmp_path, domain)
    text = run_cli("retro", "summarize", cwd=tmp_path).stdout
    (tmp_path / "s.md").write_text(text)
    proc = run_cli("retro", "check", "--json", "s.md", cwd=tmp_path)
    listed = {f["line"]: f["problems"] for f in json.loads(proc.stdout)["unsupported"]}
    lines = text.splitlines()
    placeholders = [i + 1 for i, ln in enumerate(lines) if "read the passages of" in ln]
    assert sorted(listed) == placeholders
    assert all(p[0].startswith("a scaffold placeholder") for p in listed.values())
    assert proc.returncode == (1 if placeholders else 0)
    n = next(i for i, ln in enumerate(lines) if ln.startswith("- Highest") or ln.startswith(
        "- Lowest"))  # fmt: skip
    lines[n] = lines[n].replace(":", ": 987654.5 and", 1)
    (tmp_path / "t.md").write_text("\n".join(lines) + "\n")
    proc = run_cli("retro", "check", "t.md", cwd=tmp_path)
    assert proc.returncode == 1
    assert f"t.md:{n + 1}: 987654.5 is not in" in proc.stdout


def test_bad_input_is_one_line_and_exit_2(project: Path) -> None:
    assert_one_line_error(run_cli("retro", "check", "nope.md", cwd=project), "no such summary")
    (project / "bin.md").write_bytes(b"\x00\x01garbage")
    assert_one_line_error(run_cli("retro", "check", "bin.md", cwd=project), "binary file")
    (project / "empty.md").write_text("")
    assert_one_line_error(run_cli("retro", "check", "empty.md", cwd=project), "empty file")


def test_a_table_in_the_summary_is_checked_row_by_row(project: Path) -> None:
    body = (
        "## R\n\n**Kernel results**\n\n| Config | time | note |\n|---|---|---|\n"
        "| BLOCK=4096 | 0.356 ms | best [3] |\n| BLOCK=1024 | 0.5 ms | worst [3] |\n" + SOURCES
    )
    code, problems = check(project, "table.md", body)
    assert (code, problems) == (1, {8: ["0.5 ms is not in [3]"]})


def test_none_recorded_stands_when_the_passages_hold_nothing_of_the_kind(project: Path) -> None:
    body = (
        "## R\n\n### What failed\n- nothing recorded as failed [1]\n"
        "- nothing recorded as failed [2]\n\n### Open questions\n- none recorded [1]\n" + SOURCES
    )
    code, problems = check(project, "honest.md", body)
    assert code == 1
    assert problems == {  # the loss spike of [1] and the divergence of [2]; no question in [1]
        4: [
            "says nothing was recorded, but source 1 has passages no rule structured "
            "(lines 6-8): read them"
        ],
        5: [
            "says nothing was recorded, but source 2 has passages no rule structured "
            "(lines 3-6): read them"
        ],
    }
