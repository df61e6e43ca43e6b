"""`trainwright registry show|validate|use`: one registry for both agents, switched atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from helpers import REPO, assert_one_line_error, run_cli
from support.retro_project import make_project
from trainwright.retro import registry as regmod
from trainwright.retro.domains import domain_names


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_the_shipped_registry_is_valid_and_names_existing_templates() -> None:
    proc = run_cli("registry", "validate", "--json", "--registry", str(REPO / regmod.REGISTRY_REL))
    data = json.loads(proc.stdout)
    assert proc.returncode == 0 and data["ok"], data
    reg = regmod.load(REPO / regmod.REGISTRY_REL)
    assert reg.root == REPO
    assert (reg.resolve("templates") / "skills" / "result-skill-template.md").is_file()


def test_schema_domains_match_the_domain_focus_data() -> None:
    assert regmod.domains_in_schema() == domain_names() == ["research", "unsloth", "cuda"]


def test_claude_code_uses_the_same_registry_through_a_pointer_skill() -> None:
    pointer = (REPO / ".claude/skills/domain-retrospective/SKILL.md").read_text()
    assert ".codex/skills/domain-retrospective/SKILL.md" in pointer
    assert ".codex/skills/registry.json" in pointer
    assert not list((REPO / ".claude").rglob("registry.json")), "a second registry would drift"


def test_show_finds_the_registry_from_a_subfolder(tmp_path: Path) -> None:
    make_project(tmp_path, "unsloth")
    sub = tmp_path / "reports" / "unsloth"
    env = {k: v for k, v in os.environ.items() if k != regmod.ENV}
    proc = run_cli("registry", "show", "--json", cwd=sub, env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["domain"] == "unsloth"
    assert data["paths"]["reports"] == "reports/unsloth"
    assert data["exists"]["reports"] is True
    assert data["naming"] == "{model}-{config}"
    assert Path(data["root"]) == tmp_path.resolve()


def test_switching_between_domains_keeps_unknown_keys_and_is_atomic(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "research")
    data = _read(registry)
    data["owner"] = {"team": "kernels", "note": "kept"}
    data["paths"]["notebooks"] = "notebooks"
    registry.write_text(json.dumps(data, indent=2))
    original = registry.open("rb")  # an open handle keeps seeing the file it opened

    for domain, reports in (("cuda", "reports/cuda"), ("unsloth", "reports/unsloth")):
        proc = run_cli("registry", "use", domain, "--json", "--registry", str(registry))
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["domain"] == domain
        after = _read(registry)
        assert after["domain"] == domain
        assert after["paths"]["reports"] == reports
        assert after["paths"]["experiment_log"] == f"docs/{domain}-log.md"
        assert after["owner"] == {"team": "kernels", "note": "kept"}
        assert after["paths"]["notebooks"] == "notebooks"
        assert list(after) == list(data)  # key order kept
    # Replaced by a rename, never rewritten in place: the old file is intact behind the handle.
    assert json.loads(original.read()) == data
    original.close()
    assert not list(registry.parent.glob(".registry.json.*"))  # no temp file left behind
    back = run_cli("registry", "use", "research", "--json", "--registry", str(registry))
    assert json.loads(back.stdout)["previous"] == "unsloth"
    assert _read(registry)["paths"]["reports"] == "reports/research"


def _broken(tmp_path: Path, edit) -> Path:  # noqa: ANN001
    registry = make_project(tmp_path, "research")
    if callable(edit):
        data = _read(registry)
        edit(data)
        registry.write_text(json.dumps(data))
    else:
        registry.write_text(edit)
    return registry


BAD = {
    "wrong-domain": (lambda d: d.update(domain="vision"), "'vision'"),
    "missing-paths": (lambda d: d.pop("paths"), "'paths' is a required property"),
    "missing-reports": (lambda d: d["paths"].pop("reports"), "'reports' is a required"),
    "escaping-dotdot": (lambda d: d["paths"].update(reports="../../etc"), "outside the project"),
    "escaping-absolute": (lambda d: d["paths"].update(experiment_log="/etc/passwd"), "relative"),
    "escaping-home": (lambda d: d["paths"].update(troubleshooting="~/notes.md"), "relative"),
    "escaping-override": (
        lambda d: d["domains"]["cuda"]["paths"].update(reports="../elsewhere"),
        "outside the project",
    ),
    "empty-path": (lambda d: d["paths"].update(templates=""), "paths.templates"),
    "invalid-json": ('{"domain": "research", "paths": {', "invalid JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_registry_is_one_line_error_and_nothing_is_written(tmp_path: Path, case: str) -> None:
    edit, fragment = BAD[case]
    registry = _broken(tmp_path, edit)
    before = registry.read_bytes()
    for args in (("registry", "show"), ("registry", "use", "cuda"), ("retro", "collect")):
        proc = run_cli(*args, "--registry", str(registry))
        assert_one_line_error(proc, fragment)
    assert registry.read_bytes() == before
    assert not (tmp_path / ".trainwright" / "retro").exists()
    proc = run_cli("registry", "validate", "--json", "--registry", str(registry))
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["ok"] is False and any(fragment in p for p in data["problems"]), data


def test_symlink_out_of_the_project_is_refused(tmp_path: Path) -> None:
    registry = make_project(tmp_path / "proj", "research")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "proj" / "reports" / "escape").symlink_to(outside)
    data = _read(registry)
    data["paths"]["reports"] = "reports/escape"
    registry.write_text(json.dumps(data))
    assert_one_line_error(
        run_cli("retro", "collect", "--registry", str(registry)), "outside the project"
    )


def test_use_refuses_an_unknown_domain_without_writing(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "research")
    before = registry.read_bytes()
    assert_one_line_error(run_cli("registry", "use", "vision", "--registry", str(registry)))
    assert registry.read_bytes() == before


def test_missing_registry_says_how_to_get_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != regmod.ENV}
    assert_one_line_error(run_cli("registry", "show", cwd=tmp_path, env=env), "trainwright init")


def test_validate_reports_a_missing_template(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    (tmp_path / regmod.REGISTRY_REL.parent / "domain-retrospective/templates/skills").joinpath(
        "result-skill-template.md"
    ).rename(tmp_path / "moved-away.md")
    proc = run_cli("registry", "validate", "--json", "--registry", str(registry))
    assert proc.returncode == 1
    assert any(
        "result-skill-template.md is missing" in p for p in json.loads(proc.stdout)["problems"]
    )


def test_schema_is_data_beside_the_code() -> None:
    schema = regmod.schema()
    assert schema["required"] == ["domain", "paths"]
    assert set(schema["properties"]["paths"]["required"]) == set(regmod.REQUIRED_PATHS)
    data = yaml.safe_load((REPO / ".codex/skills/registry.json").read_text())
    assert set(data["domains"]) == set(domain_names())


def test_an_initialised_project_has_a_working_registry(tmp_path: Path) -> None:
    assert run_cli("init", str(tmp_path)).returncode == 0
    env = {k: v for k, v in os.environ.items() if k != regmod.ENV}
    proc = run_cli("registry", "validate", "--json", cwd=tmp_path, env=env)
    data = json.loads(proc.stdout)
    assert proc.returncode == 0 and data["ok"], data
    assert Path(data["registry"]).resolve() == (tmp_path / regmod.REGISTRY_REL).resolve()
    assert run_cli("registry", "use", "cuda", cwd=tmp_path, env=env).returncode == 0
    assert _read(tmp_path / regmod.REGISTRY_REL)["paths"]["reports"] == "reports/cuda"
