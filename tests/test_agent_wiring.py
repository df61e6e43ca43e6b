"""The agents wired to the pack (issue 16): the `<retrospective>` prompt hook, the approvals the
agent cannot give itself, result skills both agents find, and Codex's entry points."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, assert_one_line_error, run_cli
from trainwright import approvals
from trainwright.retro.prompt_hook import parse

TW = str(Path(sys.executable).parent / "trainwright")
DOMAINS = ["research", "unsloth", "cuda"]
SWEEP = (
    "# Softmax block sweep\n\nDate: 2026-03-02\n\n| Config | time (ms) | bandwidth |\n"
    "|---|---|---|\n| BLOCK=128 | 0.41 | 2.9 TB/s |\n| BLOCK=256 | 0.38 | 3.02 TB/s |\n"
)
OLDER = "# Matmul tiles\n\nDate: 2025-11-20\n\n- tile: 64\n- throughput: 512 TFLOPS\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    assert run_cli("init", str(root)).returncode == 0
    (root / "reports" / "cuda").mkdir(parents=True)
    (root / "reports" / "cuda" / "softmax-sweep.md").write_text(SWEEP)
    (root / "reports" / "cuda" / "matmul.md").write_text(OLDER)
    return root


def _event(prompt: str, cwd: Path) -> str:
    return json.dumps(
        {
            "session_id": "s1",
            "transcript_path": "/tmp/t.jsonl",
            "cwd": str(cwd),
            "permission_mode": "default",
            "hook_event_name": "UserPromptSubmit",
            "prompt": prompt,
        }
    )


def _hook(stdin: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("retro", "hook", cwd=cwd, input=stdin)


def _context(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)["hookSpecificOutput"]
    assert out["hookEventName"] == "UserPromptSubmit"
    return out["additionalContext"]


def test_known_domain_gets_skill_paths_and_what_collect_found(project: Path) -> None:
    text = _context(_hook(_event("<retrospective> cuda", project), project))
    assert ".codex/skills/domain-retrospective/SKILL.md" in text
    assert "Domain: cuda (asked for in the prompt" in text
    assert "reports=reports/cuda" in text and "troubleshooting=docs/troubleshooting.md" in text
    assert "found 2 source(s); newest: reports/cuda/softmax-sweep.md (2026-03-02" in text
    assert "registry use cuda' only if the person agrees" in text
    assert "confirm the inputs with the person" in text


def test_date_and_match_narrow_what_collect_finds(project: Path) -> None:
    prompt = '<retrospective> cuda since 2026-01-01 "block sweep"'
    text = _context(_hook(_event(prompt, project), project))
    assert '--since 2026-01-01 --match "block sweep"' in text
    assert "found 1 source(s); newest: reports/cuda/softmax-sweep.md" in text
    assert "1 left out by the date or match filter" in text


def test_unknown_domain_lists_the_domains_and_does_not_block(project: Path) -> None:
    for prompt in ("<retrospective> domain=quantum", "<retrospective> quantum"):
        text = _context(_hook(_event(prompt, project), project))
        assert "'quantum' is not a retrospective domain" in text
        assert "the domains are: research, unsloth, cuda" in text
        assert "Domain: research (active in the registry" in text


@pytest.mark.parametrize(
    "stdin",
    [
        _event("please train my lora", Path(".")),
        _event("tell me about <retrospective> later", Path(".")),
        "{ not json",
        "",
        "[1, 2]",
        json.dumps({"prompt": 42}),
        json.dumps({"hook_event_name": "UserPromptSubmit"}),
        "\udcff".encode("utf-8", "surrogateescape").decode("latin-1"),
    ],
    ids=["plain", "tag-not-first", "corrupt", "empty", "list", "prompt-int", "no-prompt", "binary"],
)
def test_other_prompts_and_bad_input_add_nothing_and_never_block(project: Path, stdin: str) -> None:
    proc = _hook(stdin, project)
    assert (proc.returncode, proc.stdout) == (0, "")
    assert "Traceback" not in proc.stderr


def test_without_a_registry_the_hook_says_so(tmp_path: Path) -> None:
    text = _context(_hook(_event("<retrospective>", tmp_path), tmp_path))
    assert "registry cannot be read" in text and "trainwright init" in text


def test_parse_reads_domain_range_and_match() -> None:
    req = parse("  <RETROSPECTIVE> unsloth 2026-01-01..2026-02-15 lora rank", DOMAINS)
    assert req is not None
    assert (req.domain, req.since, req.until, req.match) == (
        "unsloth",
        "2026-01-01",
        "2026-02-15",
        "lora rank",
    )
    assert parse("<retrospective></retrospective>", DOMAINS).domain is None
    assert parse("hello <retrospective>", DOMAINS) is None
    long = parse("<retrospective> what did we learn about the rank of the adapters", DOMAINS)
    assert long.match is None and "choose --match words" in long.notes[0]


def _run_configured(command: str, project: Path, cwd: Path, stdin: str) -> str:
    env = {**os.environ, "CLAUDE_PROJECT_DIR": str(project), "TRAINWRIGHT_BIN": TW}
    proc = subprocess.run(
        command, shell=True, cwd=cwd, env=env, input=stdin, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_installed_hooks_run_for_claude_and_codex(project: Path) -> None:
    claude = json.loads((project / ".claude/settings.json").read_text())
    codex = json.loads((project / ".codex/hooks.json").read_text())
    plugin = json.loads((REPO / ".claude-plugin/hooks.json").read_text())
    assert "retro-prompt.sh" in plugin["hooks"]["UserPromptSubmit"][0]["hooks"][0]["command"]
    sub = project / "reports"
    for settings, cwd in ((claude, project), (codex, sub)):
        (group,) = settings["hooks"]["UserPromptSubmit"]
        command = group["hooks"][0]["command"]
        out = _run_configured(command, project, cwd, _event("<retrospective> cuda", project))
        assert "found 2 source(s)" in json.loads(out)["hookSpecificOutput"]["additionalContext"]
        assert _run_configured(command, project, cwd, _event("hi", project)) == ""
        assert _run_configured(command, project, cwd, "{ not json") == ""


# -- approvals ---------------------------------------------------------------------------------
def test_shipped_rules_are_the_one_list() -> None:
    settings = json.loads((REPO / ".claude/settings.json").read_text())
    assert settings["permissions"]["ask"] == approvals.claude_ask_rules()
    rules = (REPO / ".codex/rules/trainwright.rules").read_text()
    assert rules == approvals.codex_rules()
    for cmd in ("retro apply", "ticket archive", "register"):
        assert f"Bash(trainwright {cmd}:*)" in settings["permissions"]["ask"]
        assert f"Bash(python -m trainwright {cmd}:*)" in settings["permissions"]["ask"]
        words = ", ".join(f'"{w}"' for w in cmd.split())
        assert f'"-m", "trainwright", {words}],' in rules
    assert rules.count('decision = "prompt"') == 2 * len(approvals.ASK_COMMANDS) + len(
        approvals.OTHER_ASK_COMMANDS
    )
    assert "Bash(sky launch:*)" in settings["permissions"]["ask"]
    assert 'pattern = ["sky", "launch"],' in rules


@pytest.mark.parametrize("cmd", [c for c, _ in approvals.ASK_COMMANDS])
def test_every_approval_names_a_real_command(cmd: str) -> None:
    assert run_cli(*cmd.split(), "--help").returncode == 0


def test_init_merges_the_ask_rules_and_keeps_the_users_own(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    settings = target / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    mine = {
        "model": "opus",
        "permissions": {
            "allow": ["Bash(trainwright:*)"],
            "ask": ["Bash(git push:*)", "Bash(trainwright register:*)"],
            "deny": ["Read(.env)"],
        },
    }
    settings.write_text(json.dumps(mine))
    report = json.loads(run_cli("init", str(target), "--json").stdout)
    assert ".claude/settings.json" in report["merged"]
    merged = json.loads(settings.read_text())
    perms = merged["permissions"]
    assert merged["model"] == "opus"
    assert perms["allow"] == mine["permissions"]["allow"]
    assert perms["deny"] == mine["permissions"]["deny"]
    assert perms["ask"][:2] == mine["permissions"]["ask"]
    assert sorted(set(perms["ask"])) == sorted(
        set(approvals.claude_ask_rules()) | {"Bash(git push:*)"}
    )
    assert len(perms["ask"]) == len(set(perms["ask"]))
    assert "UserPromptSubmit" in merged["hooks"]
    again = json.loads(run_cli("init", str(target), "--json").stdout)
    assert ".claude/settings.json" in again["unchanged"]


def test_settings_whose_permissions_are_not_a_map_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    settings = target / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text('{"permissions": {"ask": "everything"}}')
    report = json.loads(run_cli("init", str(target), "--json").stdout)
    assert ".claude/settings.json" in report["kept"]
    assert settings.read_text() == '{"permissions": {"ask": "everything"}}'


# -- result skills -----------------------------------------------------------------------------
def _apply_a_skill(project: Path) -> str:
    prop = run_cli(
        "retro",
        "propose",
        "--domain",
        "cuda",
        "--match",
        "softmax",
        "--name",
        "softmax-blocks",
        "--json",
        cwd=project,
    )
    assert prop.returncode == 0, prop.stderr
    skill = next(p for p in json.loads(prop.stdout)["proposals"] if p["kind"] == "skill")
    proc = run_cli("retro", "apply", skill["id"], "--approved", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["target"].rsplit("/", 1)[1]


def test_applied_skill_is_linked_listed_and_relinked_by_init(project: Path) -> None:
    name = _apply_a_skill(project)
    for base in (".claude/skills", ".agents/skills"):
        link = project / base / name
        assert link.is_symlink() and os.readlink(link) == f"../../.codex/skills/{name}"
        assert f"name: {name}" in (link / "SKILL.md").read_text().replace('"', "")
    shown = json.loads(run_cli("registry", "show", "--json", cwd=project).stdout)
    assert shown["result_skills"] == [
        {
            "name": name,
            "path": f".codex/skills/{name}",
            "agents": {".claude/skills": "linked", ".agents/skills": "linked"},
        }
    ]
    (project / ".agents/skills" / name).unlink()
    (project / ".claude/skills" / name).unlink()
    own = project / ".claude/skills" / name
    own.mkdir()
    (own / "SKILL.md").write_text("---\nname: x\ndescription: mine\n---\n")
    report = json.loads(run_cli("init", str(project), "--json").stdout)
    assert report["linked"] == [f".agents/skills/{name}"]
    assert (own / "SKILL.md").read_text().endswith("mine\n---\n")
    human = run_cli("registry", "show", cwd=project).stdout
    assert f".codex/skills/{name} (.claude/skills another skill, .agents/skills linked)" in human


def test_result_skill_named_like_a_pack_skill_is_refused(project: Path) -> None:
    assert run_cli("registry", "use", "cuda", cwd=project).returncode == 0
    before = (project / ".claude/skills/launch-runs/SKILL.md").read_bytes()
    proc = run_cli("retro", "propose", "--match", "softmax", "--name", "launch-runs", cwd=project)
    assert_one_line_error(proc, "is a trainwright pack skill")
    # A proposal edited by hand to target a pack skill is refused at apply, even with --update.
    prop = run_cli(
        "retro", "propose", "--match", "softmax", "--name", "softmax-blocks", "--json", cwd=project
    )
    skill = next(p for p in json.loads(prop.stdout)["proposals"] if p["kind"] == "skill")
    folder = project / ".trainwright/retro/proposals" / skill["id"]
    manifest = json.loads((folder / "proposal.json").read_text())
    manifest["target"] = ".claude/skills/launch-runs"
    (folder / "proposal.json").write_text(json.dumps(manifest))
    proc = run_cli("retro", "apply", skill["id"], "--approved", "--update", cwd=project)
    assert_one_line_error(proc, "'launch-runs' is a trainwright pack skill")
    assert (project / ".claude/skills/launch-runs/SKILL.md").read_bytes() == before


# -- Codex parity ------------------------------------------------------------------------------
def test_codex_finds_the_train_entry_point_and_the_table_names_it(project: Path) -> None:
    train = project / ".agents/skills/train/SKILL.md"
    assert train.is_file() and "\nname: train\n" in train.read_text()
    text = (REPO / "AGENTS.md").read_text()
    table = text.split("## Entry points: Claude Code and Codex", 1)[1].split("\n## ", 1)[0]
    for item in ("`/train", "`$train", "codex_hooks = true", ".codex/rules/trainwright.rules"):
        assert item in table, item
    assert (project / ".codex/rules/trainwright.rules").read_text() == approvals.codex_rules()


def test_hook_survives_without_trainwright_on_path(project: Path, tmp_path: Path) -> None:
    sh = shutil.which("sh")
    env = {"PATH": str(Path(sh).parent), "CLAUDE_PROJECT_DIR": str(project)}
    hook = str(project / ".claude/hooks/retro-prompt.sh")
    proc = subprocess.run(
        [sh, hook, "claude"],
        cwd=tmp_path,
        env=env,
        input=_event("<retrospective> cuda", project),
        capture_output=True,
        text=True,
    )
    assert (proc.returncode, proc.stdout) == (0, "")
