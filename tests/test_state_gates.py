"""The gate framework: decisions recorded with their hash, stale once the inputs change."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from trainwright.cli import main
from trainwright.errors import TrainwrightError
from trainwright.state import gates
from trainwright.state.content_hash import content_hash
from trainwright.state.grimoire import Grimoire


def _fake_gate_module(min_files: int) -> types.ModuleType:
    """A gate 1 that is GO when the intent's dataset folder has at least `min_files` files."""
    mod = types.ModuleType("fake_gate")

    def folder(g: Grimoire, project: str) -> Path:
        _, data = g.read("intent", project)
        path = data["sections"][""]["Dataset folder"]
        if not path or not Path(path).is_dir():
            raise TrainwrightError(f"dataset folder {path!r} is missing")
        return Path(path)

    def binding(g: Grimoire, project: str) -> str:
        return content_hash(folder(g, project)).digest

    def check(g: Grimoire, project: str) -> gates.GateResult:
        h = content_hash(folder(g, project))
        ok = h.files >= min_files
        return gates.GateResult(
            gates.GO if ok else gates.NO_GO,
            [f"{h.files} files"],
            h.digest,
            fixes=[] if ok else [f"add at least {min_files - h.files} more"],
            updates={"Summary": {"Images": h.files}},
        )

    mod.check, mod.binding = check, binding
    return mod


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Grimoire, Path]:
    g = Grimoire(tmp_path / "grimoire")
    g.new_project("p")
    ds = tmp_path / "ds"
    ds.mkdir()
    for i in range(3):
        (ds / f"{i}.png").write_bytes(bytes([i]) * 10)
    g.update("intent", {"": {"Dataset folder": str(ds)}}, "p")
    monkeypatch.setitem(
        gates.GATES,
        1,
        gates.GateSpec(1, "dataset", "dataset-report", "Gate 1 Decision", "fake_gate"),
    )
    monkeypatch.setitem(sys.modules, "fake_gate", _fake_gate_module(3))
    return g, ds


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_go_is_recorded_and_goes_stale_when_the_dataset_changes(
    project: tuple[Grimoire, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    g, ds = project
    code, out, _ = _cli(
        capsys, "--grimoire", str(g.root), "gate", "check", "p", "--gate", "1", "--json"
    )
    assert code == 0 and json.loads(out)["decision"] == "GO"
    _, report = g.read("dataset-report", "p")
    sec = report["sections"]["Gate 1 Decision"]
    assert sec["Decision"] == "GO" and sec["Bound to"] == content_hash(ds).digest
    assert report["sections"]["Summary"]["Images"] == 3
    _, st = g.read("status", "p")
    assert st["sections"]["Gates"]["Gate 1 dataset"] == "GO"
    assert gates.state(g, "p", 1)["ok"] is True

    (ds / "0.png").write_bytes(b"edited")
    s = gates.state(g, "p", 1)
    assert s["decision"] == "GO" and s["stale"] is True and s["ok"] is False
    code, out, _ = _cli(capsys, "--grimoire", str(g.root), "gate", "status", "p", "--require-all")
    assert code == 1 and "STALE" in out


def test_no_go_exits_1_with_fixes(
    project: tuple[Grimoire, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    g, ds = project
    (ds / "2.png").unlink()
    code, out, _ = _cli(capsys, "--grimoire", str(g.root), "gate", "check", "p", "--gate", "1")
    assert code == 1 and "NO-GO" in out and "add at least 1 more" in out
    assert gates.state(g, "p", 1)["decision"] == "NO-GO"


def test_missing_inputs_make_a_go_stale_with_the_reason(project: tuple[Grimoire, Path]) -> None:
    g, ds = project
    gates.check(g, "p", 1)
    ds.rename(ds.with_name("moved"))
    s = gates.state(g, "p", 1)
    assert s["stale"] and "missing" in s["reason"]


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["gate", "check", "p", "--gate", "5"], "no gate 5"),
        (["gate", "check", "nope", "--gate", "1"], "has no dataset-report.md"),
        (["gate", "check", "../x", "--gate", "1"], "looks like a path"),
        (["gate", "check", "p", "--gate", "2"], "Gate 2 (config) has no check"),
    ],
)
def test_bad_gate_requests(
    project: tuple[Grimoire, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    fragment: str,
) -> None:
    g, _ = project
    monkeypatch.setitem(
        gates.GATES, 2, gates.GateSpec(2, "config", "config", "Gate 2 Decision", "no_such_mod_x")
    )
    code, _, err = _cli(capsys, "--grimoire", str(g.root), *args)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_fresh_project_is_not_ready(project: tuple[Grimoire, Path]) -> None:
    g, _ = project
    st = gates.status(g, "p")
    assert st["ready"] is False
    assert [x["decision"] for x in st["gates"]] == ["PENDING"] * 4
