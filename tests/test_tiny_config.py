"""The embedded tiny backend as a first-class model: catalog entry, traced activation constants,
`trainwright config --backend tiny`, and Gate 2 against system RAM when no GPU is found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO, assert_one_line_error, run_cli
from support.fake_smi import fake_smi
from support.tiny_project import make_project
from trainwright.backends import config_gate
from trainwright.hardware import catalog, vram
from trainwright.hardware.vram import Setup, constants, estimate
from trainwright.state.content_hash import content_hash
from trainwright.state.grimoire import Grimoire

torch = pytest.importorskip("torch")

PEAK_OWN = """
import sys
from trainwright.backends.tiny_model.train import main
from trainwright.hardware.process_memory import own_peak_bytes
code = main([sys.argv[1], "--max-steps", "2", "--no-save"])
print(code, own_peak_bytes())
"""
# The estimate for a CPU run must be within this share of the trainer's measured peak of own
# (anonymous) memory; peak RSS also counts torch's library pages, which move with the page cache.
TOLERANCE = 0.20


def no_gpu(tmp_path: Path) -> dict[str, str]:
    """An nvidia-smi that cannot run: what a machine without the driver looks like."""
    return {"TRAINWRIGHT_NVIDIA_SMI": str(tmp_path / "no-driver" / "nvidia-smi")}


def _config(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "--grimoire", str(root / "grimoire"), "config", "--project", "demo",
        "--backend", "tiny", "--model", "tiny", *args, "--json", env=env,
    )  # fmt: skip


def _gate2(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "--grimoire", str(root / "grimoire"), "gate", "check", "demo", "--gate", "2", "--json",
        env=env,
    )  # fmt: skip


def test_catalog_entry_is_the_bundled_model() -> None:
    from safetensors.torch import load_file

    from trainwright.backends.tiny_model.train import bundled_weights

    model = catalog.load().get("tiny")
    assert model.is_image and model.resolution == 64 and model.resolution_multiple == 4
    assert model.roles("vae") == [] and model.roles("text_encoder") == []
    weights = load_file(str(bundled_weights()))
    assert model.main.params == sum(t.numel() for t in weights.values())


def test_activation_constants_match_a_fresh_trace() -> None:
    """The shipped fit reproduces what autograd keeps for the real model at a new size."""
    from trainwright.backends.tiny_model import lora
    from trainwright.backends.tiny_model.model import TinyDenoiser, diffusion_loss, encode_captions
    from trainwright.hardware import trace

    prof = constants()["image_models"]["tiny-unet"]
    model = TinyDenoiser()
    lora.inject(model, prof["traced_rank"], prof["traced_rank"])
    x = torch.zeros(1, 3, 40, 40)
    gen = torch.Generator().manual_seed(3)
    traced = trace.saved_bytes(model, lambda: diffusion_loss(model, x, encode_captions(["a"]), gen))
    fit = prof["fits"]["fp32/none/lora-all"]
    assert traced == pytest.approx(fit["per_latent_pixel"] * 1600 + fit["fixed"], rel=1e-6)
    per_rank = sum(p.numel() for p in model.parameters() if p.requires_grad) / prof["traced_rank"]
    assert per_rank == prof["lora_params_per_rank"]["all"]


def _measured_peak(tmp_path: Path, side: int, batch: int, rank: int) -> int:
    from trainwright.backends import tiny
    from trainwright.backends.tiny_model.data import write_example_dataset

    folder = tmp_path / f"m{side}-{batch}-{rank}"
    write_example_dataset(folder / "ds", 6, size=side)
    files = tiny.files_from_settings(
        dataset=str(folder / "ds"), trigger_word="probe", output_name="probe",
        resolution=side, batch_size=batch, rank=rank, alpha=rank,
    )  # fmt: skip
    (folder / "tiny.yaml").write_text(files["tiny.yaml"])
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts")}
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_OWN, str(folder / "tiny.yaml")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    code, peak = proc.stdout.split()[-2:]
    assert code == "0", proc.stderr
    return int(peak)


@pytest.mark.slow  # real training runs, and a peak measured under other load moves
@pytest.mark.parametrize("side,batch,rank", [(48, 6, 8), (64, 12, 4)])
def test_cpu_estimate_is_near_the_trainers_measured_peak(
    tmp_path: Path, side: int, batch: int, rank: int
) -> None:
    """Sizes unlike the calibration point (64 px, rank 16, batch 1 and 8)."""
    measured = _measured_peak(tmp_path, side, batch, rank)
    s = Setup(
        precision="fp32", rank=rank, targets="all", batch=batch, resolution=(side, side),
        gradient_checkpointing=False, device="cpu",
    )  # fmt: skip
    est = estimate(catalog.load().get("tiny"), s).total
    assert abs(est - measured) / measured <= TOLERANCE, (est / 2**20, measured / 2**20)


def test_vram_command_gives_a_traced_estimate_and_a_ram_check() -> None:
    args = ("vram", "--model", "tiny", "--method", "lora", "--resolution", "64", "--batch", "4")
    gpu = run_cli(*args, "--json")
    assert gpu.returncode == 0, gpu.stderr
    data = json.loads(gpu.stdout)
    assert data["breakdown"]["activations_gib"] > 0 and data["breakdown"]["cuda_context_gib"] == 1
    notes = " ".join(data["assumptions"])
    assert "fp32" in notes and "no gradient checkpointing" in notes
    cpu = run_cli(*args, "--device", "cpu", "--json")
    assert cpu.returncode == 0, cpu.stderr
    ram = json.loads(cpu.stdout)
    assert ram["gpu"] == "system RAM" and ram["available_gib"] > 0 and ram["fits"] is True
    assert ram["breakdown"]["cuda_context_gib"] == 0 and ram["details"]["device"] == "cpu"
    assert "Python + torch process" in " ".join(ram["assumptions"])
    assert "system RAM" in run_cli(*args, "--device", "cpu").stdout


def test_config_then_gate_2_go_on_the_cpu_then_stale_after_an_edit(tmp_path: Path) -> None:
    g = make_project(tmp_path)
    folder = g.project_dir("demo")
    env = no_gpu(tmp_path)
    proc = _config(tmp_path, env, "--preset", "quick")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["device"] == "cpu" and out["fits"] is True and out["warnings"] == []
    assert "system RAM" in out["estimated_vram"]
    cfg = yaml.safe_load((folder / "tiny.yaml").read_text())
    assert cfg["epochs"] == 5 and cfg["rank"] == 8 and cfg["resolution"] == 64
    assert cfg["learning_rate"] == 5e-4 and cfg["repeats"] == 10
    assert out["backups"]  # make_project's fallback tiny.yaml was kept
    _, doc = Grimoire(tmp_path / "grimoire").read("config", "demo")
    top = doc["sections"][""]
    assert top["Backend"] == "tiny" and top["Preset"] == "quick"
    assert "SET-ME" not in top["Base model"] and "system RAM" in top["Estimated VRAM"]

    gate = _gate2(tmp_path, env)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    result = json.loads(gate.stdout)
    assert result["decision"] == "GO"
    reasons = " ".join(result["reasons"])
    assert "runs on the CPU" in reasons and "20% margin" in reasons
    _, doc = Grimoire(tmp_path / "grimoire").read("config", "demo")
    digest = content_hash(folder / "tiny.yaml", folder / "trainwright-plan.json").digest
    assert doc["sections"]["Gate 2 Decision"]["Bound to"] == digest

    path = folder / "tiny.yaml"
    path.write_text(path.read_text().replace("batch_size: 2", "batch_size: 3"))
    status = run_cli("--grimoire", str(tmp_path / "grimoire"), "gate", "status", "demo", "--json")
    gate2 = next(x for x in json.loads(status.stdout)["gates"] if x["gate"] == 2)
    assert gate2["stale"] is True


def test_gate_2_keeps_the_20_percent_margin_on_ram(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(tmp_path)
    assert _config(tmp_path, no_gpu(tmp_path)).returncode == 0
    g = Grimoire(tmp_path / "grimoire")
    need = config_gate.check(g, "demo").details["total_gib"]
    # Enough for the estimate itself, not for the estimate plus a fifth of the RAM kept free.
    monkeypatch.setattr(vram, "host_memory", lambda: (need / 0.85, "test figure"))
    tight = config_gate.check(g, "demo")
    assert tight.decision == "NO-GO"
    assert any("does not fit" in r and "test figure" in r for r in tight.reasons)
    monkeypatch.setattr(vram, "host_memory", lambda: (need / 0.75, "test figure"))
    assert config_gate.check(g, "demo").decision == "GO"


def test_with_a_gpu_the_card_is_what_counts(tmp_path: Path) -> None:
    make_project(tmp_path)
    env = {"TRAINWRIGHT_NVIDIA_SMI": str(fake_smi(tmp_path, "rtx4090"))}
    proc = _config(tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["device"] == "cuda" and "RTX 4090" in out["estimated_vram"]
    gate = json.loads(_gate2(tmp_path, env).stdout)
    assert gate["decision"] == "GO" and "RTX 4090" in " ".join(gate["reasons"])
    explicit = _config(tmp_path, no_gpu(tmp_path), "--vram", "8")
    assert json.loads(explicit.stdout)["device"] == "cuda"
    assert "8.0 GiB on 8 GB card" in json.loads(explicit.stdout)["estimated_vram"]


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--optimizer", "prodigy"], "not available in tiny"),
        (["resolution=66"], "not a multiple of 4"),
        (["rank=0"], "rank=0 is outside"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    g = make_project(tmp_path)
    folder = g.project_dir("demo")
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    proc = run_cli(
        "--grimoire", str(tmp_path / "grimoire"), "config", "--project", "demo",
        "--backend", "tiny", "--model", "tiny", *args, env=no_gpu(tmp_path),
    )  # fmt: skip
    assert_one_line_error(proc, fragment)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
