"""`trainwright register`: the studio.md entry /art reads, idempotent; status; archived images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data.comfyui.fake_server import FakeComfyUI, write_lora
from helpers import assert_one_line_error, run_cli
from trainwright.evaluate.studio_loras import find_lora, read_loras
from trainwright.state.grimoire import Grimoire

MODEL = "ponyDiffusionV6XL.safetensors"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose LoRA went through eval-grid (2 cells) and got a recommended weight."""
    tmp = tmp_path_factory.mktemp("registered")
    g = Grimoire(tmp / "grimoire")
    g.ensure_base()
    g.new_project("inkwash")
    g.update(
        "intent",
        {
            "": {
                "Type": "style",
                "Trigger word": "inkwash",
                "Base model": MODEL,
                "Description": "loose ink-wash landscapes",
            }
        },
        "inkwash",
    )
    g.update(
        "config",
        {"": {"Backend": "kohya", "Base model": MODEL, "Preset": "Standard",
              "Key parameters": "lr=1e-4, epochs=15, batch=2, rank=16"}},
        "inkwash",
    )  # fmt: skip
    lora = write_lora(tmp / "out" / "inkwash.safetensors")
    with FakeComfyUI(loras=["inkwash.safetensors"], checkpoints=[MODEL], delay=0) as srv:
        proc = run_cli("--grimoire", str(g.root), "eval-grid", "inkwash", "--lora", str(lora),
                       "--comfyui", srv.url, "--weights", "0.5,1", "--no-standard",
                       "--prompt", "a harbour at dawn")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    g.update("eval", {"": {"Recommended weight": 0.6, "Sweet spot": "0.5-0.7"}}, "inkwash")
    finish(g, "inkwash")
    return g.root


def finish(g: Grimoire, name: str) -> None:
    """What a finished training leaves: four GO gates and a COMPLETE run record."""
    for kind, section in (
        ("dataset-report", "Gate 1 Decision"),
        ("config", "Gate 2 Decision"),
        ("environment", "Gate 3 Decision"),
        ("progress", "Dry Run (Gate 4)"),
    ):
        g.update(kind, {section: {"Decision": "GO"}}, name)
    (g.project_dir(name) / "run.json").write_text(json.dumps({"status": "COMPLETE"}))


@pytest.fixture()
def project(evaluated: Path, tmp_path: Path) -> Grimoire:
    import shutil

    root = tmp_path / "grimoire"
    shutil.copytree(evaluated, root)
    return Grimoire(root)


def register(g: Grimoire, *args: str) -> dict:
    proc = run_cli("--grimoire", str(g.root), "register", "inkwash", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_register_writes_the_entry_in_the_specified_format(project: Grimoire) -> None:
    out = register(project, "--date", "2025-06-01")
    assert out["action"] == "added"
    text = project.path_for("studio").read_text()
    _, evaluation = project.read("eval", "inkwash")
    lora_file = evaluation["sections"][""]["LoRA file"]
    assert lora_file.endswith("/out/inkwash.safetensors") and Path(lora_file).is_absolute()
    entry = (
        "### LoRA: inkwash\n"
        f"- **File**: {lora_file}\n"
        "- **Type**: style\n"
        "- **Trigger word**: inkwash\n"
        "- **Recommended weight**: 0.6\n"
        f"- **Base model**: {MODEL}\n"
        "- **Good for**: loose ink-wash landscapes\n"
        "- **Training date**: 2025-06-01\n"
        "- **Training params**: Standard, 15 epochs, rank 16\n"
    )
    assert entry in text
    assert text.index("## LoRAs") < text.index("### LoRA: inkwash")
    assert "Registered LoRAs appear here" in text  # the template's prose is kept
    _, status = project.read("status", "inkwash")
    assert status["sections"][""]["Status"] == "COMPLETE"
    assert status["sections"][""]["Phase"] == "registered"


def test_register_twice_gives_one_entry_and_changes_nothing(project: Grimoire) -> None:
    register(project)
    studio = project.path_for("studio")
    before = studio.read_bytes()
    status_before = project.path_for("status", "inkwash").read_bytes()
    again = register(project)
    assert again["action"] == "unchanged" and again["changed"] == []
    assert again["status"] == "unchanged" and again["archive"]["copied"] == []
    assert studio.read_bytes() == before
    assert project.path_for("status", "inkwash").read_bytes() == status_before
    assert studio.read_text().count("### LoRA: inkwash") == 1


def test_a_changed_result_updates_only_what_changed_and_keeps_notes(project: Grimoire) -> None:
    register(project)
    studio = project.path_for("studio")
    studio.write_text(
        studio.read_text().replace(
            "- **Training params**:", "Mara: lovely on seascapes, keep it under 0.8.\n"
            "- **Training params**:"
        )
    )  # fmt: skip
    project.update("eval", {"": {"Recommended weight": 0.7}}, "inkwash")
    out = register(project)
    assert out["action"] == "updated" and out["changed"] == ["Recommended weight"]
    text = studio.read_text()
    assert "- **Recommended weight**: 0.7" in text and "0.6" not in text
    assert "Mara: lovely on seascapes" in text
    assert text.count("### LoRA: inkwash") == 1


def test_register_archives_the_eval_images_and_never_overwrites(project: Grimoire) -> None:
    out = register(project)
    arch = out["archive"]
    folder = Path(arch["folder"])
    assert folder.parent == project.project_dir("inkwash") / "eval"
    assert (folder / "grid.png").is_file() and (folder / "manifest.json").is_file()
    assert len(list(folder.glob("cells/*/*.png"))) == 2
    mine = folder / "grid.png"
    mine.write_bytes(b"my annotated copy")
    again = register(project)
    assert again["archive"]["kept"] == ["grid.png"]
    assert mine.read_bytes() == b"my annotated copy"
    run = project.project_dir("inkwash") / "eval-runs" / folder.name
    assert (run / "grid.png").is_file()  # the source is copied, not moved


def test_a_second_lora_goes_after_the_first_and_before_later_sections(project: Grimoire) -> None:
    studio = project.path_for("studio")
    studio.write_text(studio.read_text() + "\n## Notes\nMy own notes about the studio.\n")
    register(project)
    project.new_project("inkmono")
    project.update("intent", {"": {"Type": "style", "Trigger word": "inkmono"}}, "inkmono")
    finish(project, "inkmono")
    lora = write_lora(project.root.parent / "out" / "inkmono.safetensors")
    proc = run_cli("--grimoire", str(project.root), "register", "inkmono", "--weight", "0.8",
                   "--file", str(lora))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = studio.read_text()
    a, b, notes = (text.index(s) for s in ("LoRA: inkwash", "LoRA: inkmono", "## Notes"))
    assert a < b < notes
    assert [lo.name for lo in read_loras(studio)] == ["inkwash", "inkmono"]
    assert "no eval run" in proc.stdout


def test_dry_run_writes_nothing(project: Grimoire) -> None:
    tree = {p: p.read_bytes() for p in project.root.rglob("*") if p.is_file()}
    out = register(project, "--dry-run")
    assert out["action"] == "would be added" and out["archive"]["copied"]
    assert {p: p.read_bytes() for p in project.root.rglob("*") if p.is_file()} == tree


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_register_refuses_bad_input_and_writes_nothing(project: Grimoire, tmp_path: Path) -> None:
    root = str(project.root)
    before = _tree(project.root)
    cut = write_lora(tmp_path / "cut.safetensors")
    cut.write_bytes(cut.read_bytes()[:-10])
    cases = [
        (["register", "inkwash", "--weight", "2.5"], "outside 0-2"),
        (["register", "inkwash", "--file", str(cut)], "truncated"),
        (["register", "inkwash", "--date", "June"], "not a date"),
        (["register", "nobody"], "no training project 'nobody'"),
        (["register", "inkwash", "--run", "../../etc"], "looks like a path"),
    ]
    for args, fragment in cases:
        assert_one_line_error(run_cli("--grimoire", root, *args), fragment)
        assert _tree(project.root) == before
    project.update("eval", {"": {"Recommended weight": None}}, "inkwash")
    before = _tree(project.root)
    assert_one_line_error(run_cli("--grimoire", root, "register", "inkwash"), "Recommended weight")
    assert _tree(project.root) == before
    project.update("intent", {"": {"Trigger word": None}}, "inkwash")
    before = _tree(project.root)
    proc = run_cli("--grimoire", root, "register", "inkwash", "--weight", "0.6")
    assert_one_line_error(proc, "no Trigger word")
    assert _tree(project.root) == before


def test_a_broken_studio_md_is_reported_not_rewritten(project: Grimoire) -> None:
    studio = project.path_for("studio")
    studio.write_text(studio.read_text() + "\n## LoRAs\nagain\n")
    before = studio.read_bytes()
    proc = run_cli("--grimoire", str(project.root), "register", "inkwash")
    assert_one_line_error(proc, "studio.md", "appears twice")
    assert studio.read_bytes() == before


# --- what /art does with studio.md ---

SEED_FORMAT = """# Studio

## GPUs

## Models

## LoRAs
Example, not an entry:
```
### LoRA: example
- **File**: /nowhere.safetensors
- **Trigger word**: nope
```

### LoRA: mystyle
- **File**: /loras/mystyle-v1.safetensors
- **Type**: style
- **Trigger word**: mystyle
- **Recommended weight**: 0.6
- **Base model**: ponyDiffusionV6XL
- **Good for**: painterly portraits and landscapes
- **Training date**: 2025-06-01
- **Training params**: Standard, 15 epochs, rank 16

Notes the artist wrote about it.

### LoRA: redmug
- **File:** /loras/redmug.safetensors
- **Type:** object
- **Trigger word:** redmug
- **Recommended weight:** 0.85
"""


def test_art_consumers_read_registered_loras(tmp_path: Path) -> None:
    studio = tmp_path / "studio.md"
    studio.write_text(SEED_FORMAT)
    loras = read_loras(studio)
    assert [lo.name for lo in loras] == ["mystyle", "redmug"]
    mystyle = loras[0]
    assert mystyle.file == "/loras/mystyle-v1.safetensors" and mystyle.type == "style"
    assert mystyle.weight == 0.6 and mystyle.base_model == "ponyDiffusionV6XL"
    assert mystyle.training_params == "Standard, 15 epochs, rank 16"
    assert mystyle.apply("a lighthouse at dusk") == ("mystyle, a lighthouse at dusk", 0.6)
    assert mystyle.apply("mystyle, a lighthouse") == ("mystyle, a lighthouse", 0.6)
    redmug = find_lora(studio, "redmug")
    assert redmug is not None and redmug.weight == 0.85 and redmug.good_for is None
    assert find_lora(studio, "example") is None


def test_art_consumers_get_a_clear_error_for_a_bad_weight(tmp_path: Path) -> None:
    from trainwright.errors import StateFileError

    studio = tmp_path / "studio.md"
    studio.write_text(SEED_FORMAT.replace("0.85", "lots"))
    with pytest.raises(StateFileError) as err:
        read_loras(studio)
    assert err.value.line == SEED_FORMAT.splitlines().index("- **Recommended weight:** 0.85") + 1
