"""Gate 4 measures, Gate 2 learns: the peak line, the comparison with the estimate, the per-GPU
ratio in studio.md and `trainwright vram` showing it. The CUDA figures are fed in as numbers
through the same functions the GPU path uses (the GPU run itself is bench/gpu_check.sh)."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import run_cli
from support.fake_smi import fake_smi
from support.tiny_project import make_project
from trainwright.cloud import records
from trainwright.hardware import catalog, measured
from trainwright.hardware.gpu_poll import Poller, parse_apps
from trainwright.hardware.measured import Peak, parse_peak
from trainwright.hardware.vram import GIB, Setup, estimate
from trainwright.run import dry_run_memory
from trainwright.state.grimoire import Grimoire

QWEN = catalog.load().get("qwen2.5-0.5b")
LORA = Setup(method="lora", seq_len=2048, batch=8, gradient_checkpointing=False)


def cuda_peak(reserved_gib: float, total_gib: float = 80.0, free_gib: float | None = None) -> Peak:
    return Peak(
        "cuda",
        allocated_mib=reserved_gib * 1024 * 0.9,
        reserved_mib=reserved_gib * 1024,
        gpu="NVIDIA H100 80GB HBM3",
        total_mib=total_gib * 1024,
        free_mib=None if free_gib is None else free_gib * 1024,
    )


def test_the_peak_line_round_trips_and_the_last_good_one_wins() -> None:
    peak = cuda_peak(12.5, free_gib=79.0)
    text = "\n".join(
        [
            "step 1",
            peak.line(),
            "trainwright-peak device=cuda reserved_mib=oops",  # garbled: ignored
            "trainwright-peak device=tpu reserved_mib=3",  # not a device the pack knows
        ]
    )
    got = parse_peak(text)
    assert got is not None and got.gpu == "NVIDIA H100 80GB HBM3"
    assert got.reserved_mib == pytest.approx(12.5 * 1024, abs=0.1)
    assert got.free_mib == pytest.approx(79 * 1024, abs=0.1)
    later = cuda_peak(20.0).line()
    assert parse_peak(text + "\n" + later).reserved_mib == pytest.approx(20 * 1024, abs=0.1)
    assert parse_peak("no peak here") is None


def test_a_cpu_peak_is_never_vram() -> None:
    peak = parse_peak("tiny: trainwright-peak device=cpu process_mib=512.0")
    assert peak is not None and not peak.on_gpu and peak.card_mib is None
    assert "not VRAM" in peak.describe()
    est = estimate(QWEN, LORA)
    assert measured.compare(peak, est) is None


def test_measured_against_estimated_like_for_like() -> None:
    est = estimate(QWEN, LORA)
    reserved = est.reserved / GIB
    close = measured.compare(cuda_peak(reserved * 1.04), est)
    assert close is not None and close.ratio == pytest.approx(1.04, rel=1e-3)
    assert not close.over_estimate and not close.over_budget and close.busy_note is None
    low = measured.compare(cuda_peak(reserved * 1.2), est)
    assert low is not None and low.over_estimate and low.ratio == pytest.approx(1.2, rel=1e-3)
    # a polled figure includes the CUDA context: it is compared with the estimate's total
    polled = Peak("nvml", process_mib=est.total / GIB * 1024 * 1.1, total_mib=80 * 1024)
    comp = measured.compare(polled, est)
    assert comp is not None and comp.ratio == pytest.approx(1.1, rel=1e-3)


def test_over_the_card_names_the_batch_that_fits_by_the_measured_figure() -> None:
    est = estimate(QWEN, LORA)
    ratio = 1.3
    card = 24.0
    comp = measured.compare(cuda_peak(est.reserved / GIB * ratio, total_gib=card), est, QWEN, LORA)
    assert comp is not None and comp.over_budget
    budget = card * 0.8
    b = comp.fitting_batch
    assert b is not None and 0 < b < LORA.batch

    def need(batch: int) -> float:
        e = estimate(QWEN, replace(LORA, batch=batch))
        return (e.reserved * ratio + e.total - e.reserved) / GIB

    assert need(b) <= budget < need(b + 1)
    reasons, fixes = measured.verdict_lines(comp, LORA.batch)
    assert any("margin" in r for r in reasons) and f"set batch {b}" in fixes[0]


def test_a_busy_gpu_is_measured_against_its_free_memory() -> None:
    est = estimate(QWEN, LORA)
    need = est.reserved / GIB
    idle = measured.compare(cuda_peak(need, total_gib=80), est)
    assert idle is not None and not idle.over_budget and idle.busy_note is None
    busy = measured.compare(cuda_peak(need, total_gib=80, free_gib=need * 1.05), est, QWEN, LORA)
    assert busy is not None and busy.over_budget
    assert busy.busy_note and "busy" in busy.busy_note and "free" in busy.busy_note
    assert busy.budget_gib is not None and busy.budget_gib < need * 1.05


def _studio_with_an_instance(g: Grimoire) -> str:
    g.ensure_base()
    records.add(g, "Instance: lambda-abc", {"Project": "demo", "Provider": "lambda", "ID": "abc"})
    text = g.path_for("studio").read_text()
    return text[text.index("## Cloud instances") :].split("\n## ")[0]


def test_the_ratio_is_kept_under_the_gpu_and_shown_by_vram(tmp_path: Path) -> None:
    g = Grimoire(tmp_path / "grimoire")
    cloud = _studio_with_an_instance(g)
    day = dt.date(2026, 12, 6)
    title = measured.record_ratio(g, "NVIDIA GeForce RTX 4090", 23.99, 1.18, day)
    assert title == "GPU: NVIDIA GeForce RTX 4090"
    assert measured.ratio_for(g, "RTX 4090") == (1.18, "2026-12-06")
    # a second measurement updates the same entry; the cloud part is left as it was
    measured.record_ratio(g, "RTX 4090", None, 1.07, day)
    text = g.path_for("studio").read_text()
    assert text.count("### GPU: NVIDIA GeForce RTX 4090") == 1
    assert "Measured/estimated**: 1.07" in text and "1.18" not in text
    assert cloud in text
    proc = run_cli(
        "--grimoire", str(g.root), "vram", "--model", "qwen2.5-0.5b", "--gpu", "RTX 4090", "--json"
    )  # fmt: skip
    data = json.loads(proc.stdout)
    kept = data["measured_ratio"]
    assert kept["ratio"] == 1.07 and kept["date"] == "2026-12-06"
    assert kept["corrected_total_gib"] > data["total_gib"]
    human = run_cli(
        "--grimoire", str(g.root), "vram", "--model", "qwen2.5-0.5b", "--gpu", "RTX 4090"
    ).stdout  # fmt: skip
    assert "measured on this GPU (2026-12-06): x1.07" in human
    other = run_cli("--grimoire", str(g.root), "vram", "--model", "qwen2.5-0.5b", "--vram", "40")
    assert "measured on this GPU" not in other.stdout


def _configured(tmp_path: Path) -> tuple[Grimoire, dict[str, str]]:
    make_project(tmp_path)
    env = {"TRAINWRIGHT_NVIDIA_SMI": str(fake_smi(tmp_path, "rtx4090"))}
    proc = run_cli(
        "--grimoire", str(tmp_path / "grimoire"), "config", "--project", "demo",
        "--backend", "tiny", "--model", "tiny", "--json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return Grimoire(tmp_path / "grimoire"), env


def test_gate_4_records_the_measured_peak_in_progress_config_and_studio(tmp_path: Path) -> None:
    g, _ = _configured(tmp_path)
    model, setup, est = dry_run_memory.project_estimate(g, "demo")
    peak = replace(cuda_peak(est.reserved / GIB * 1.5, total_gib=24), gpu="NVIDIA GeForce RTX 4090")
    memory = dry_run_memory.assess(g, "demo", peak, setup.batch)
    assert memory.progress["Measured/estimated"] == pytest.approx(1.5, rel=1e-3)
    assert "reserved" in str(memory.progress["Measured peak"])
    assert "Gate 2's estimate" in str(memory.progress["Estimated peak"])
    assert any("estimate was low by 50%" in r for r in memory.reasons)
    g.update("progress", {"Dry Run (Gate 4)": memory.progress}, "demo")  # valid against the schema
    _, config = g.read("config", "demo")
    assert "x1.50 the estimate" in config["sections"][""]["Measured VRAM"]
    assert measured.ratio_for(g, "RTX 4090")[0] == pytest.approx(1.5, rel=1e-3)  # type: ignore[index]


def test_a_polled_peak_gets_the_cards_size_and_free_memory(tmp_path: Path) -> None:
    smi = fake_smi(tmp_path, "rtx4090")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAINWRIGHT_NVIDIA_SMI", str(smi))
        watch = dry_run_memory.start()
    assert watch.gpus and watch.gpus[0].memory_used_mib == 1024
    peak = dry_run_memory.peak_of("no line", watch, 9000.0)
    assert peak is not None and peak.device == "nvml" and peak.gpu == "NVIDIA GeForce RTX 4090"
    assert peak.total_mib == 24564 and peak.free_mib == 24564 - 1024
    own = dry_run_memory.peak_of(cuda_peak(3.0).line(), watch, 9000.0)
    assert own is not None and own.device == "cuda"  # the trainer's own line wins over the poll


def test_the_poller_follows_the_trainers_process_tree(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f"  --query-compute-apps=*) echo \"$(cat '{pid_file}'), 4321\"; echo '1, 99999' ;;\n"
        "  *) exit 1 ;;\n"
        "esac\n"
    )
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess,sys,time; "
         "c=subprocess.Popen(['sleep','5']); print(c.pid, flush=True); c.wait()"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        pid_file.write_text(parent.stdout.readline().strip())  # the grandchild holds the GPU
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TRAINWRIGHT_NVIDIA_SMI", str(smi))
            poller = Poller(parent.pid, every=0.1)
            time.sleep(0.5)
            peak = poller.stop()
    finally:
        parent.kill()
        parent.wait()
    assert peak == 4321.0  # pid 1's memory is another process's, not the trainer's


def test_parse_apps_skips_what_is_not_a_process_line() -> None:
    text = "123, 500\n123, 20\nNo running processes found\n-5, 3\n77, [N/A]\n"
    assert parse_apps(text) == {123: 520.0}


@pytest.mark.slow
def test_a_cpu_dry_run_records_process_memory_not_vram(tmp_path: Path) -> None:
    g = make_project(tmp_path)
    env = {"TRAINWRIGHT_NVIDIA_SMI": str(tmp_path / "no-driver" / "nvidia-smi")}
    proc = run_cli("--grimoire", str(g.root), "dry-run", "demo", "--steps", "2", "--json", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _, progress = g.read("progress", "demo")
    sec = progress["sections"]["Dry Run (Gate 4)"]
    assert "CPU run, not VRAM" in sec["Measured peak"]
    assert sec.get("Measured/estimated") is None
    assert "trainwright-peak device=cpu" in (g.project_dir("demo") / "dry-run.log").read_text()
    assert not g.path_for("studio").exists() or "Measured/estimated" not in (
        g.path_for("studio").read_text()
    )


FAKE_TORCH = """
class _Props:
    name = "NVIDIA H100 80GB HBM3"
    total_memory = 80 * 2**30

class cuda:
    is_initialized = staticmethod(lambda: True)
    current_device = staticmethod(lambda: 0)
    get_device_properties = staticmethod(lambda i: _Props())
    max_memory_allocated = staticmethod(lambda: 3 * 2**30)
    max_memory_reserved = staticmethod(lambda: 4 * 2**30)
"""


def test_a_python_trainer_reports_its_peak_through_the_dry_runs_pythonpath(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text(FAKE_TORCH)
    own = tmp_path / "own"
    own.mkdir()
    (own / "sitecustomize.py").write_text("import os\nos.environ['OWN_SITE'] = 'ran'\n")
    env = dry_run_memory.child_env()
    env["PYTHONPATH"] += os.pathsep + os.pathsep.join([str(own), str(fake)])
    code = "import os, torch; print('own site', os.environ.get('OWN_SITE'))"
    proc = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "own site ran" in proc.stdout  # the environment's own sitecustomize still runs
    peak = parse_peak(proc.stdout)
    assert peak is not None and peak.device == "cuda" and peak.gpu == "NVIDIA H100 80GB HBM3"
    assert peak.reserved_mib == 4096 and peak.allocated_mib == 3072 and peak.total_mib == 81920
    quiet = subprocess.run(
        [sys.executable, "-c", "print('no torch here')"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert "trainwright-peak" not in quiet.stdout


def test_an_out_of_memory_is_the_measurement_with_the_batch_that_last_fitted() -> None:
    from trainwright.hardware.measure import halve_until_fits
    from trainwright.hardware.vram_measure import lines, summary

    class OOM(Exception):
        pass

    est = estimate(QWEN, LORA)
    per_sample = est.reserved / GIB / LORA.batch

    def attempt(batch: int) -> dict[str, float]:
        if batch > 2:
            raise OOM
        mib = per_sample * batch * 1024
        return {"batch": batch, "allocated_mib": mib * 0.9, "reserved_mib": mib, "params": 1}

    result, tried, last = halve_until_fits(8, attempt, OOM)
    assert tried == [8, 4] and last == 2 and result is not None and result["batch"] == 2
    raw = {"gpu": "NVIDIA GeForce RTX 4090", "steps": 3, "batch": 8, "total_mib": 24564.0,
           "free_mib": 23540.0, "fits": False, "oom_batches": tried, "last_fitted_batch": last,
           "fitted": result}  # fmt: skip
    m = summary(raw, est)
    assert m["fits"] is False and m["last_fitted_batch"] == 2 and m["busy"] is None
    text = "\n".join(lines(m))
    assert "DOES NOT FIT: out of memory at batch 8, 4; batch 2 last fitted" in text
    none_fit = summary({**raw, "oom_batches": [8, 4, 2, 1], "last_fitted_batch": 0,
                        "fitted": None}, est)  # fmt: skip
    assert "not even batch 1 fitted" in "\n".join(lines(none_fit))


def test_vram_measure_says_plainly_why_it_cannot_measure(tmp_path: Path) -> None:
    no_driver = {"TRAINWRIGHT_NVIDIA_SMI": str(tmp_path / "no-driver" / "nvidia-smi")}
    proc = run_cli("vram", "--model", "qwen2.5-0.5b", "--measure", "--json", env=no_driver)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "needs an NVIDIA GPU" in proc.stderr and "estimate above is printed alone" in proc.stderr
    data = json.loads(proc.stdout)
    assert data["measured"] is None and data["total_gib"] > 0
    rtx = {"TRAINWRIGHT_NVIDIA_SMI": str(fake_smi(tmp_path, "rtx4090"))}
    gpu_here = run_cli("vram", "--model", "qwen2.5-0.5b", "--measure", env=rtx)
    assert gpu_here.returncode == 2 and "Traceback" not in gpu_here.stderr
    assert "CPU-only build" in gpu_here.stderr and "RTX 4090" in gpu_here.stderr
    assert "VRAM estimate for qwen2.5-0.5b" in gpu_here.stdout
    flux = run_cli("vram", "--model", "flux-1-dev", "--measure", env=rtx)
    assert flux.returncode == 2 and "no config the pack can build" in flux.stderr
