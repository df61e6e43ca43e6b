"""`trainwright config` writes a project's trainer files; Gate 2 decides on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib

from helpers import assert_one_line_error, run_cli
from trainwright.state.content_hash import content_hash
from trainwright.state.grimoire import Grimoire


@pytest.fixture()
def project(tmp_path: Path) -> tuple[Path, Path]:
    g = tmp_path / "grimoire"
    ds = tmp_path / "dataset"
    ds.mkdir()
    for i in range(12):
        (ds / f"{i}.png").write_bytes(b"png")
        (ds / f"{i}.txt").write_text("marastyle, a painting")
    assert run_cli("--grimoire", str(g), "grimoire", "new", "mara").returncode == 0
    proc = run_cli(
        "--grimoire", str(g), "grimoire", "set", "intent", "--project", "mara",
        f"Dataset folder={ds}", "Trigger word=marastyle", "Base model=pony-v6",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return g, g / "training" / "mara"


def _config(g: Path, *args: str) -> tuple[int, dict, str]:
    proc = run_cli("--grimoire", str(g), "config", "--project", "mara", *args, "--json")
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


def test_kohya_config_gate_go_then_stale_after_an_edit(project: tuple[Path, Path]) -> None:
    g, folder = project
    code, out, err = _config(
        g, "--backend", "kohya", "--optimizer", "prodigy", "--gpu", "RTX 4090",
        "pretrained_model_name_or_path=/models/pony.safetensors",
    )  # fmt: skip
    assert code == 0, err
    assert out["fits"] is True and out["warnings"] == []
    toml = tomllib.loads((folder / "kohya-train.toml").read_text())
    assert toml["optimizer"]["optimizer_type"] == "Prodigy"
    assert toml["training"]["max_train_epochs"] == 15  # standard preset
    dataset = tomllib.loads((folder / "kohya-dataset.toml").read_text())
    assert dataset["datasets"][0]["subsets"][0]["image_dir"].endswith("dataset")
    assert "accelerate launch" in (folder / "kohya-command.sh").read_text()
    _, cfg = Grimoire(g).read("config", "mara")
    top = cfg["sections"][""]
    assert top["Backend"] == "kohya" and top["Preset"] == "standard"
    assert "lr=1" in top["Key parameters"] and "RTX 4090" in top["Estimated VRAM"]
    assert top["Config file"].startswith("kohya-train.toml")
    assert top["Config hash"].startswith("sha256:")
    assert "learning_rate" in cfg["sections"]["Why these settings"]

    gate = run_cli("--grimoire", str(g), "gate", "check", "mara", "--gate", "2", "--json")
    assert gate.returncode == 0, gate.stdout + gate.stderr
    _, cfg = Grimoire(g).read("config", "mara")
    files = [folder / n.strip() for n in top["Config file"].split(",")]
    digest = content_hash(*files, folder / "trainwright-plan.json").digest
    assert cfg["sections"]["Gate 2 Decision"]["Bound to"] == digest

    path = folder / "kohya-train.toml"
    path.write_text(path.read_text().replace("train_batch_size = 2", "train_batch_size = 3"))
    status = run_cli("--grimoire", str(g), "gate", "status", "mara", "--json")
    gate2 = next(x for x in json.loads(status.stdout)["gates"] if x["gate"] == 2)
    assert gate2["stale"] is True
    again = run_cli("--grimoire", str(g), "gate", "check", "mara", "--gate", "2", "--json")
    assert again.returncode == 0  # batch 3 still fits; the new decision binds the new hash
    _, cfg = Grimoire(g).read("config", "mara")
    assert "batch=3" in cfg["sections"][""]["Key parameters"]


def test_batch_is_lowered_to_fit_and_accumulation_keeps_the_effective_batch(
    project: tuple[Path, Path],
) -> None:
    g, folder = project
    code, out, err = _config(
        g, "--backend", "kohya", "--vram", "16", "batch_size=8", "gradient_accumulation=1",
        "pretrained_model_name_or_path=/m.safetensors",
    )  # fmt: skip
    assert code == 0, err
    assert out["fits"] is True and 1 <= out["batch_size"] < 8
    assert out["batch_size"] * out["gradient_accumulation"] >= 8
    toml = tomllib.loads((folder / "kohya-train.toml").read_text())
    assert toml["training"]["train_batch_size"] == out["batch_size"]


def test_no_go_when_it_cannot_fit(project: tuple[Path, Path]) -> None:
    g, _ = project
    code, out, _ = _config(g, "--backend", "simpletuner", "--model", "flux-1-dev", "--vram", "8")
    assert code == 1 and out["fits"] is False and out["batch_size"] == 1
    gate = run_cli("--grimoire", str(g), "gate", "check", "mara", "--gate", "2")
    assert gate.returncode == 1 and "NO-GO" in gate.stdout and "does not fit" in gate.stdout


def test_no_go_outside_the_safe_range_and_with_paths_to_fill(project: tuple[Path, Path]) -> None:
    g, _ = project
    code, out, _ = _config(g, "--backend", "kohya", "--model", "flux-1-dev", "--vram", "80",
                           "learning_rate=0.01", "fp8_base=true")  # fmt: skip
    assert code == 0
    assert any("learning_rate=0.01 is outside the safe range" in w for w in out["warnings"])
    assert any("SET-ME" in w for w in out["warnings"])
    gate = run_cli("--grimoire", str(g), "gate", "check", "mara", "--gate", "2", "--json")
    assert gate.returncode == 1
    reasons = " ".join(json.loads(gate.stdout)["reasons"])
    assert "learning_rate" in reasons and "SET-ME" in reasons


@pytest.mark.parametrize(
    "backend,model,extra",
    [
        ("ai-toolkit", "flux-1-dev", []),
        ("simpletuner", "sdxl", ["--optimizer", "lion"]),
        ("torchtune", "llama-3.2-1b", ["checkpoint_dir=/models/l1b"]),
    ],
)
def test_other_backends_write_their_files(
    project: tuple[Path, Path], backend: str, model: str, extra: list[str]
) -> None:
    g, folder = project
    code, out, err = _config(g, "--backend", backend, "--model", model, "--vram", "80", *extra)
    assert code == 0, err
    for path in out["files"].values():
        assert Path(path).is_file() and folder in Path(path).parents
    gate = run_cli("--grimoire", str(g), "gate", "check", "mara", "--gate", "2", "--json")
    assert json.loads(gate.stdout)["decision"] == "GO", gate.stdout


def test_dry_run_writes_nothing(project: tuple[Path, Path]) -> None:
    g, folder = project
    before = sorted(p.name for p in folder.iterdir())
    code, out, _ = _config(g, "--backend", "ai-toolkit", "--dry-run", "--vram", "24")
    assert code in (0, 1) and out["contents"]["ai-toolkit.yaml"].startswith("# ai-toolkit job")
    assert sorted(p.name for p in folder.iterdir()) == before


def test_a_changed_config_is_kept_before_rewriting(project: tuple[Path, Path]) -> None:
    g, folder = project
    _config(g, "--backend", "kohya", "--vram", "24")
    (folder / "kohya-train.toml").write_text("# my edit\n")
    code, out, _ = _config(g, "--backend", "kohya", "--vram", "24")
    assert code == 0 and out["backups"]
    assert Path(out["backups"][0]).read_text() == "# my edit\n"


@pytest.mark.parametrize(
    "args,fragment",
    [
        (
            ["--backend", "torchtune", "--optimizer", "lion", "--model", "llama-3.2-1b"],
            "optimizer 'lion' is not available in torchtune",
        ),
        (["--backend", "kohya", "--optimizer", "adamq"], "unknown optimizer"),
        (["--backend", "axolotl"], "unknown backend"),
        (["--backend", "torchtune"], "does not train image models"),
        (["--backend", "kohya", "--model", "llama-3-8b"], "does not train language models"),
        (["--backend", "kohya", "--model", "sdxl-bse"], "did you mean"),
        (["--backend", "kohya", "rank=0"], "rank=0 is outside"),
        (["--backend", "kohya", "batch_size=0"], "batch_size=0 is outside"),
        (["--backend", "kohya", "learning_rate=5"], "learning_rate=5 is outside"),
        (["--backend", "kohya", "resolution=1000"], "not a multiple of 64"),
        (["--backend", "kohya", "--gpu", "RTX 4091"], "not in the GPU table"),
        (["--backend", "kohya", "epochs=many"], "epochs must be a whole number"),
        (["--backend", "kohya", "notakeyvalue"], "is not KEY=VALUE"),
        (["--backend", "simpletuner", "lora_rnak=4"], "not a SimpleTuner option"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    project: tuple[Path, Path], args: list[str], fragment: str
) -> None:
    g, folder = project
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    proc = run_cli("--grimoire", str(g), "config", "--project", "mara", *args)
    assert_one_line_error(proc, fragment)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


def test_gate_2_before_any_config_is_bad_usage(project: tuple[Path, Path]) -> None:
    g, _ = project
    assert_one_line_error(
        run_cli("--grimoire", str(g), "gate", "check", "mara", "--gate", "2"), "no config written"
    )


def test_no_go_while_the_dataset_folder_is_empty(project: tuple[Path, Path]) -> None:
    g, _ = project
    for p in (g.parent / "dataset").iterdir():
        p.rename(g.parent / p.name)
    code, out, _ = _config(g, "--backend", "kohya", "--vram", "24")
    assert code == 0 and any("no images found" in w for w in out["warnings"])
    assert "unknown" in out["estimated_time"]
    gate = run_cli("--grimoire", str(g), "gate", "check", "mara", "--gate", "2", "--json")
    assert gate.returncode == 1 and "no images" in " ".join(json.loads(gate.stdout)["reasons"])
