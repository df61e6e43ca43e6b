"""Gate 1 end to end: NO-GO with fixes, GO after the fixes, prose kept, stale after an edit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from helpers import assert_one_line_error, run_cli
from trainwright.state.content_hash import content_hash
from trainwright.state.document import get_block, parse_document, set_block

PHOTOS = (
    "astronaut",
    "camera",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "moon",
    "clock",
)


@pytest.fixture()
def project(tmp_path: Path) -> tuple[Path, Path]:
    data = pytest.importorskip("skimage.data")
    ds = tmp_path / "ds"
    ds.mkdir()
    for name in PHOTOS:
        im = Image.fromarray(getattr(data, name)()).convert("RGB")
        if min(im.size) < 512:
            f = 512 / min(im.size)
            im = im.resize((round(im.width * f), round(im.height * f)), Image.LANCZOS)
        im.save(ds / f"{name}.jpg", quality=92)
        if name != "moon":
            (ds / f"{name}.txt").write_text(f"mystyle, photo of {name.replace('_', ' ')}")
    shutil.copy(ds / "coffee.jpg", ds / "coffee_copy.jpg")
    (ds / "coffee_copy.txt").write_text("mystyle, photo of coffee")
    g = tmp_path / "grimoire"
    assert run_cli("--grimoire", str(g), "grimoire", "new", "p").returncode == 0
    proc = run_cli(
        "--grimoire", str(g), "grimoire", "set", "intent", "--project", "p",
        "Type=object", "Base model=sd15", "Trigger word=mystyle", f"Dataset folder={ds}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return g, ds


def _gate(g: Path, *extra: str):
    return run_cli("--grimoire", str(g), "gate", "check", "p", "--gate", "1", *extra)


def test_no_go_then_go_then_stale(project: tuple[Path, Path], tmp_path: Path) -> None:
    g, ds = project
    report = g / "training" / "p" / "dataset-report.md"
    proc = _gate(g, "--json")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["decision"] == "NO-GO"
    joined = " | ".join(out["reasons"])
    assert "1 images have no caption" in joined
    assert "1 groups of duplicates" in joined
    assert any("--quarantine" in f for f in out["fixes"])
    text = report.read_text()
    assert "- **Images**: 11" in text and "- **Captioned**: 10" in text
    assert "- **Duplicates found**: 1" in text
    assert "### If NO-GO" in text and "- **Decision**: NO-GO" in text

    # the person writes their own notes; the next run must keep them
    text = text.replace(
        "How varied the subjects, angles, lighting and compositions are.",
        "How varied the subjects, angles, lighting and compositions are.\n\nMY NOTE: keep moon.",
    )
    report.write_text(text)

    (ds / "moon.txt").write_text("mystyle, photo of the moon")
    q = tmp_path / "q"
    assert run_cli("dedup", str(ds), "--quarantine", str(q)).returncode == 0
    proc = _gate(g)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "GO" in proc.stdout
    text = report.read_text()
    assert "MY NOTE: keep moon." in text
    assert "### If GO" in text and "### If NO-GO" not in text
    assert "- **Images**: 10" in text and "- **Decision**: GO" in text
    assert f"- **Bound to**: {content_hash(ds).digest}" in text
    st = json.loads(run_cli("--grimoire", str(g), "gate", "status", "p", "--json").stdout)
    assert st["gates"][0]["ok"] is True

    (ds / "rocket.txt").write_text("mystyle, photo of a rocket, edited")
    st = json.loads(run_cli("--grimoire", str(g), "gate", "status", "p", "--json").stdout)
    assert st["gates"][0]["stale"] is True


def test_too_few_images_and_no_trigger(project: tuple[Path, Path]) -> None:
    g, ds = project
    for p in list(ds.glob("c*.*")):  # camera, chelsea, coffee, copy, clock
        p.unlink()
    run_cli("--grimoire", str(g), "grimoire", "set", "intent", "--project", "p", "Trigger word=")
    proc = _gate(g, "--json")
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and out["decision"] == "NO-GO"
    joined = " | ".join(out["reasons"])
    assert "needs at least 10" in joined and "no trigger word" in joined


def test_missing_dataset_folder_is_a_one_line_error(project: tuple[Path, Path]) -> None:
    g, ds = project
    run_cli(
        "--grimoire", str(g), "grimoire", "set", "intent", "--project", "p", "Dataset folder="
    )  # fmt: skip
    assert_one_line_error(_gate(g), "names no dataset folder")
    run_cli(
        "--grimoire", str(g), "grimoire", "set", "intent", "--project", "p",
        f"Dataset folder={ds}/nope",
    )  # fmt: skip
    assert_one_line_error(_gate(g), "no such folder")


def test_set_block_keeps_prose_and_replaces_only_its_text() -> None:
    doc = parse_document("# T\n\n## A\nperson text\n\n## B\n- **K**: 1\n")
    doc = set_block(doc, "A", "x", "first")
    doc = set_block(doc, "C", "y", "new section")
    assert get_block(doc, "x") == "first"
    doc = set_block(doc, "A", "x", "second\nline")
    text = doc.text()
    assert "person text" in text and "first" not in text and "second\nline" in text
    assert text.index("second") < text.index("## B") and "## C" in text
    assert doc.get("B", "K") == "1"
    broken = parse_document(text.replace("<!-- /trainwright:x -->", ""))
    from trainwright.errors import StateFileError

    with pytest.raises(StateFileError, match="damaged"):
        set_block(broken, "A", "x", "again")
