"""`retro propose` stages, `retro apply --approved` moves into place, nothing is overwritten or
deleted without being asked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_cli
from support.retro_project import TEMPLATES, make_project, snapshot

STAGING = Path(".trainwright/retro/proposals")


def _propose(registry: Path, *args: str) -> dict:
    proc = run_cli("retro", "propose", "--json", "--registry", str(registry), *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _agentskills(folder: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "agentskills"
    return subprocess.run([str(exe), "validate", str(folder)], capture_output=True, text=True)


@pytest.mark.parametrize(
    "domain,match,name",
    [
        ("research", "heads", "gpt2-findings"),
        ("unsloth", "llama-3", "llama3-lora-recipe"),
        ("cuda", "softmax", "softmax-tuning"),
    ],
)
def test_proposals_are_staged_validate_and_follow_the_naming_convention(
    tmp_path: Path, domain: str, match: str, name: str
) -> None:
    registry = make_project(tmp_path, domain)
    untouched = {p: b for p, b in snapshot(tmp_path).items() if not p.startswith(".trainwright")}
    data = _propose(registry, "--match", match, "--date", "2025-03-31")
    skill = data["proposals"][0]
    assert (skill["kind"], skill["title"], skill["target"]) == (
        "skill",
        name,
        f".codex/skills/{name}",
    )
    folder = tmp_path / STAGING / skill["id"] / name
    proc = _agentskills(folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (folder / "SKILL.md").read_text()
    front = text.split("---")[1]
    assert f'name: "{name}"' in front and f'domain: "{domain}"' in front
    assert 'tags: "' in front and 'created: "2025-03-31"' in front
    for heading in ("General Description", "When to Apply", "Results Summary", "Failure Modes"):
        assert f"## {heading}" in text
    assert "## Sources" in text and "[1]" in text
    assert (
        (tmp_path / STAGING / skill["id"] / "retrospective.md")
        .read_text()
        .startswith("## Retrospective:")
    )
    # Staged only: the skills folder and the troubleshooting guide are as they were.
    after = {p: b for p, b in snapshot(tmp_path).items() if not p.startswith(".trainwright")}
    assert after == untouched
    assert not (tmp_path / ".codex/skills" / name).exists()
    assert not (tmp_path / "docs/troubleshooting.md").exists()


def test_cuda_skill_carries_the_measured_numbers(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    data = _propose(registry, "--match", "softmax", "--name", "softmax-online")
    text = (tmp_path / STAGING / "skill-softmax-online/softmax-online/SKILL.md").read_text()
    assert "| bandwidth | 2,899 GB/s | best (highest): BLOCK_SIZE=8192 (num_warps=16) [1] |" in text
    assert "| BLOCK_M=128 | register spilling (184 spills), 30% slowdown | — [2] |" in text
    assert "block_size: 8192\nnum_warps: 16" in text
    entries = [p for p in data["proposals"] if p["kind"] == "troubleshooting"]
    titles = [p["title"] for p in entries]
    assert "BLOCK_M=128: register spilling (184 spills), 30% slowdown" in titles
    assert all(p["target"] == "docs/troubleshooting.md" for p in entries)
    # Slow but error-free configurations are failures of the sweep, not error patterns.
    assert not any(t.startswith("BLOCK_SIZE=1024") for t in titles)


def test_entry_without_a_recorded_fix_says_so(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "unsloth")
    data = _propose(registry, "--no-skill", "--match", "mistral")
    (entry,) = data["proposals"]
    text = (tmp_path / entry["path"] / "entry.md").read_text()
    assert text.startswith("## max_seq_length 8192 with batch 8: OOM at step 12\n")
    assert "- **Fix or workaround**: not recorded in the reports" in text
    assert "`reports/unsloth/mistral/mistral-7b-4bit.md` [1] line 22" in text


def test_apply_needs_approval_then_moves_the_skill(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    _propose(registry, "--match", "softmax", "--no-skill", "--max-entries", "0")
    data = _propose(registry, "--match", "softmax")
    pid = data["proposals"][0]["id"]
    before = snapshot(tmp_path)
    preview = run_cli("retro", "apply", pid, "--registry", str(registry))
    assert preview.returncode == 1 and "would create .codex/skills/softmax-tuning" in preview.stdout
    assert '+name: "softmax-tuning"' in preview.stdout
    assert snapshot(tmp_path) == before
    proc = run_cli("retro", "apply", pid, "--approved", "--json", "--registry", str(registry))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["applied"] is True
    assert _agentskills(tmp_path / ".codex/skills/softmax-tuning").returncode == 0
    manifest = json.loads((tmp_path / STAGING / pid / "proposal.json").read_text())
    assert manifest["status"] == "applied" and manifest["applied_at"]
    again = run_cli("retro", "apply", pid, "--approved", "--registry", str(registry))
    assert_one_line_error(again, "already applied")


def test_refuses_to_overwrite_an_existing_skill_and_shows_the_diff(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    existing = tmp_path / ".codex/skills/softmax-tuning"
    existing.mkdir(parents=True)
    mine = "---\nname: softmax-tuning\ndescription: my own notes\n---\n\n# Mine\nkeep me\n"
    (existing / "SKILL.md").write_text(mine)
    (existing / "extra.md").write_text("my extra file")
    data = _propose(registry, "--match", "softmax")
    skill = data["proposals"][0]
    assert skill["existing"] is True and "General Description" in skill["update_sections"]
    pid = skill["id"]
    for extra in ((), ("--approved",)):
        proc = run_cli("retro", "apply", pid, *extra, "--json", "--registry", str(registry))
        assert proc.returncode == 1
        out = json.loads(proc.stdout)
        assert out["refused"] and not out["applied"] and "--update" in out["message"]
        assert "-keep me" in out["diff"] and "+## Results Summary" in out["diff"]
        assert (existing / "SKILL.md").read_text() == mine
    proc = run_cli(
        "retro", "apply", pid, "--approved", "--update", "--json", "--registry", str(registry)
    )
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["applied"], out
    kept = tmp_path / out["replaced_to"]
    assert (kept / "SKILL.md").read_text() == mine and (kept / "extra.md").exists()
    assert "## Results Summary" in (existing / "SKILL.md").read_text()


def test_troubleshooting_entry_is_appended_and_never_duplicated(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    guide = tmp_path / "docs" / "troubleshooting.md"
    guide.write_text("# Troubleshooting\n\nOur own intro, kept.\n\n## Old entry\n- **Fix**: x\n")
    data = _propose(registry, "--no-skill", "--match", "layernorm")
    ids = [p["id"] for p in data["proposals"]]
    assert len(ids) == 2
    for pid in ids:
        proc = run_cli("retro", "apply", pid, "--approved", "--registry", str(registry))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    text = guide.read_text()
    assert text.startswith("# Troubleshooting\n\nOur own intro, kept.\n\n## Old entry\n")
    assert "## Welford in fp16: variance underflow, NaNs on long rows" in text
    assert "- **Fix or workaround**: accumulate in fp32" in text
    # The same failures are not proposed again once they are in the guide.
    again = _propose(registry, "--no-skill", "--match", "layernorm")
    assert again["proposals"] == [] and len(again["already_in_guide"]) == 2


def test_same_heading_in_the_guide_needs_update(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    data = _propose(registry, "--no-skill", "--match", "layernorm", "--max-entries", "1")
    (prop,) = data["proposals"]
    guide = tmp_path / "docs" / "troubleshooting.md"
    guide.write_text(f"# T\n\n## {prop['title'].upper()}\n- **Fix**: mine\n\n## Other\nkept\n")
    before = guide.read_text()
    proc = run_cli(
        "retro", "apply", prop["id"], "--approved", "--json", "--registry", str(registry)
    )
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and out["refused"] and "-- **Fix**: mine" in out["diff"]
    assert guide.read_text() == before
    proc = run_cli(
        "retro",
        "apply",
        prop["id"],
        "--approved",
        "--update",
        "--json",
        "--registry",
        str(registry),
    )
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["applied"]
    text = guide.read_text()
    assert "- **Fix or workaround**: accumulate in fp32" in text and "## Other\nkept\n" in text
    assert (tmp_path / out["replaced_to"]).read_text() == before


def test_rerunning_propose_reuses_staged_entries_and_keeps_edits(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "unsloth")
    first = _propose(registry, "--no-skill", "--match", "mistral", "--date", "2025-02-01")
    entry = tmp_path / first["proposals"][0]["path"] / "entry.md"
    entry.write_text(entry.read_text().replace("not recorded in the reports", "use batch 4"))
    second = _propose(registry, "--no-skill", "--match", "mistral", "--date", "2025-02-02")
    assert [p["id"] for p in second["proposals"]] == [p["id"] for p in first["proposals"]]
    assert "use batch 4" in entry.read_text()


def test_missing_template_is_an_error_and_nothing_is_staged(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    shutil.move(tmp_path / TEMPLATES / "skills", tmp_path / "aside")
    before = snapshot(tmp_path)
    assert_one_line_error(
        run_cli("retro", "propose", "--registry", str(registry)), "result-skill-template.md"
    )
    assert snapshot(tmp_path) == before and not (tmp_path / STAGING).exists()


def test_template_without_its_name_placeholder_is_refused(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    tpl = tmp_path / TEMPLATES / "skills" / "result-skill-template.md"
    tpl.write_text(tpl.read_text().replace("name: {name}", "name: fixed"))
    assert_one_line_error(run_cli("retro", "propose", "--registry", str(registry)), "{name}")
    assert not (tmp_path / STAGING).exists()


def test_edited_template_that_breaks_the_skill_format_is_refused(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    tpl = tmp_path / TEMPLATES / "skills" / "result-skill-template.md"
    tpl.write_text(tpl.read_text().replace("license: Apache-2.0", "tags:\n  - a\n  - b"))
    assert_one_line_error(
        run_cli("retro", "propose", "--registry", str(registry)), "would not validate"
    )
    assert not (tmp_path / STAGING).exists()


@pytest.mark.parametrize("bad", ["Softmax", "softmax", "softmax--online", "-softmax-x", "a" * 70])
def test_bad_skill_names_are_refused(tmp_path: Path, bad: str) -> None:
    registry = make_project(tmp_path, "cuda")
    assert_one_line_error(
        run_cli("retro", "propose", "--name", bad, "--registry", str(registry)),
        "{operation}-{optimization}",
    )
    assert not (tmp_path / STAGING).exists()


def test_no_subject_and_no_name_asks_for_one(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    log = tmp_path / "docs" / "cuda-log.md"
    assert_one_line_error(
        run_cli("retro", "propose", str(log), "--registry", str(registry)), "--name"
    )


def test_tampered_manifest_cannot_escape_the_project(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    data = _propose(registry, "--match", "softmax", "--max-entries", "0")
    manifest = tmp_path / STAGING / data["proposals"][0]["id"] / "proposal.json"
    doc = json.loads(manifest.read_text())
    doc["target"] = "../outside/skill"
    manifest.write_text(json.dumps(doc))
    proc = run_cli("retro", "apply", doc["id"], "--approved", "--registry", str(registry))
    assert_one_line_error(proc, "outside the project")
    assert not (tmp_path.parent / "outside").exists()
    assert_one_line_error(
        run_cli("retro", "apply", "no-such-id", "--approved", "--registry", str(registry)),
        "no proposal",
    )
