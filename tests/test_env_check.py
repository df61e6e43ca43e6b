"""Gate 3: the environment check on recorded nvidia-smi output, a fake NVML, and this machine
(no GPU, a CPU build of PyTorch): plain problems with fixes, GO/NO-GO per backend, idempotent,
stale when the driver or GPU changes."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
import yaml

from helpers import REPO, assert_one_line_error, run_cli
from support.fake_smi import SMI, fake_smi
from support.tiny_project import make_project
from trainwright.hardware import env_check
from trainwright.hardware.env_check import EnvFacts, Needs, TorchFacts, evaluate
from trainwright.hardware.gpu import parse_query_csv
from trainwright.state import gates


def facts(
    name: str = "h200",
    torch: TorchFacts | None = None,
    backend: str | None = "kohya",
    backend_ok: bool = True,
    free_gb: float = 500,
) -> EnvFacts:
    gpus = parse_query_csv((SMI / f"{name}-query.csv").read_text()) if name else []
    header = (SMI / f"{name}.txt").read_text() if name else ""
    cuda = header.split("CUDA Version:")[1].split()[0] if name else None
    return EnvFacts(
        gpus=gpus,
        gpu_error=None if gpus else "nvidia-smi not found",
        gpu_source="nvidia-smi" if gpus else None,
        driver=gpus[0].driver_version if gpus else None,
        driver_cuda=cuda,
        torch=torch or TorchFacts("2.8.0+cu126", "12.6", True, None, sys.executable),
        python="3.11.7",
        backend=backend,
        backend_ok=backend_ok,
        backend_detail="kohya sd-scripts at /opt/sd-scripts" if backend_ok else "not found: clone",
        backend_fingerprint="kohya:/opt/sd-scripts",
        disk_path="/data",
        disk_free_bytes=int(free_gb * 2**30),
    )


def by_check(report: env_check.EnvReport) -> dict[str, env_check.Finding]:
    return {f.check: f for f in report.findings}


def test_matrix_data_is_valid_and_sourced() -> None:
    data = yaml.safe_load((REPO / env_check.MATRIX).read_text())
    schema = json.loads((REPO / env_check.MATRIX_SCHEMA).read_text())
    jsonschema.validate(data, schema)
    assert "RELEASE.md" in data["source"]["pytorch"] and data["read"]
    assert env_check.driver_supports("535.104.05", data) == "12.2"
    assert env_check.driver_supports("560.35.03", data) == "12.6"
    assert env_check.wheel_for("2.8.0", "12.6", data).endswith("/whl/cu126")
    assert env_check.wheel_for("2.7.1", "12.2", data).startswith("pip install torch==2.7.1")


def test_h200_with_a_matching_build_is_go() -> None:
    r = evaluate(facts(), Needs("kohya", model_gb=6.5, dataset_images=30, vram_gb=18))
    assert r.decision == "GO"
    f = by_check(r)
    assert "NVIDIA H200 (140.4 GB)" in f["gpu"].text and "CUDA 12.6" in f["gpu"].text
    assert "enough for this config (about 18 GB)" in f["vram"].text
    assert "need" in f["disk"].text and f["disk"].severity == "ok"


def test_build_newer_than_the_driver_same_major_is_a_warning_with_the_fix() -> None:
    t = TorchFacts("2.8.0+cu128", "12.8", True, None, sys.executable)
    r = evaluate(facts("rtx4090", t), Needs("kohya", model_gb=6.5, vram_gb=12))
    f = by_check(r)["driver"]
    assert r.decision == "GO" and f.severity == "warning"
    assert "built for CUDA 12.8 but the driver 535.104.05 supports CUDA 12.2" in f.text
    assert "570.26" in f.fix and "cu121" in f.fix


def test_build_newer_than_the_driver_that_fails_to_start_is_no_go() -> None:
    t = TorchFacts("2.8.0+cu128", "12.8", False, "RuntimeError: driver too old", sys.executable)
    r = evaluate(facts("rtx4090", t), Needs("kohya"))
    assert r.decision == "NO-GO" and by_check(r)["driver"].severity == "error"


def test_major_version_mismatch_is_no_go() -> None:
    t = TorchFacts("2.9.0+cu130", "13.0", None, None, sys.executable)
    r = evaluate(facts("rtx4090", t), Needs("kohya"))
    f = by_check(r)["driver"]
    assert r.decision == "NO-GO" and "580.65.06" in f.fix


def test_cpu_build_with_a_gpu_backend_names_the_cuda_wheel() -> None:
    t = TorchFacts("2.8.0+cpu", None, None, None, sys.executable)
    r = evaluate(facts("rtx4090", t), Needs("kohya"))
    f = by_check(r)["torch"]
    assert r.decision == "NO-GO" and "CPU-only build" in f.text
    # the 2.8 builds all need a newer driver than 535 (CUDA 12.2): the newest release with a
    # CUDA 12 build this driver runs is 2.5 (cu121)
    assert f.fix == "pip install torch==2.5.* --index-url https://download.pytorch.org/whl/cu121"
    r = evaluate(facts("rtx4090", t, backend="tiny"), Needs("tiny"))
    assert r.decision == "GO" and by_check(r)["torch"].severity == "warning"


def test_no_gpu_is_no_go_for_gpu_backends_and_go_for_tiny() -> None:
    cpu = TorchFacts("2.13.0+cpu", None, None, None, sys.executable)
    r = evaluate(facts("", cpu), Needs("kohya", model_gb=6.5))
    assert r.decision == "NO-GO" and "No NVIDIA GPU found" in by_check(r)["gpu"].text
    assert "trains on the CPU (tiny" in by_check(r)["gpu"].fix
    r = evaluate(facts("", cpu, backend="tiny"), Needs("tiny"))
    assert r.decision == "GO" and "trains on the CPU" in by_check(r)["gpu"].text


def test_vram_too_small_or_taken() -> None:
    r = evaluate(facts("rtx4090"), Needs("kohya", vram_gb=30))
    assert r.decision == "NO-GO" and "24 GB VRAM" in by_check(r)["vram"].text
    r = evaluate(facts("rtx4090"), Needs("kohya", vram_gb=23.5))
    v = by_check(r)["vram"]
    assert r.decision == "NO-GO" and "programs hold 1.0 GB" in v.text and "nvidia-smi" in v.fix


def test_disk_short() -> None:
    r = evaluate(facts(free_gb=8), Needs("kohya", model_gb=6.5, dataset_images=40, epochs=20))
    d = by_check(r)["disk"]
    assert r.decision == "NO-GO" and "8.0 GB free" in d.text and "model 6.5" in d.text


def test_backend_missing_and_python_outside_the_torch_range() -> None:
    r = evaluate(facts(backend_ok=False), Needs("kohya"))
    assert r.decision == "NO-GO" and by_check(r)["backend"].fix == "not found: clone"
    f = replace(facts(), python="3.14.0")
    r = evaluate(f, Needs("kohya"))
    assert "supports Python 3.9 to 3.13" in by_check(r)["python"].text


def fake_nvml() -> types.SimpleNamespace:
    """An object with pynvml's calls, answering like an RTX 4090 on driver 550."""
    mem = types.SimpleNamespace(total=24564 * 2**20, used=2048 * 2**20)
    return types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlSystemGetDriverVersion=lambda: b"550.54.14",
        nvmlSystemGetCudaDriverVersion=lambda: 12040,
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: "NVIDIA GeForce RTX 4090",
        nvmlDeviceGetMemoryInfo=lambda h: mem,
        nvmlDeviceGetCudaComputeCapability=lambda h: (8, 9),
    )


def test_fake_nvml_probe() -> None:
    probe, cuda = env_check.probe_nvml(fake_nvml())
    assert probe.found and cuda == "12.4" and probe.gpus[0].memory_used_mib == 2048
    broken = types.SimpleNamespace(nvmlInit=lambda: (_ for _ in ()).throw(RuntimeError("NVML")))
    probe, cuda = env_check.probe_nvml(broken)
    assert not probe.found and "NVML failed" in probe.error and cuda is None


def test_nvml_answers_when_nvidia_smi_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINWRIGHT_NVIDIA_SMI", "")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    f = env_check.gather("tiny", tmp_path, nvml=fake_nvml(), deep=False)
    assert f.gpu_source == "nvml" and f.driver_cuda == "12.4" and f.driver == "550.54.14"
    assert f.gpus[0].name == "NVIDIA GeForce RTX 4090"


def test_this_machine_cli_standalone(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TRAINWRIGHT_NVIDIA_SMI": ""}
    proc = run_cli("env", "check", "--backend", "tiny", "--json", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["decision"] == "GO" and out["facts"]["gpus"] == []
    assert out["facts"]["torch"]["version"].startswith("2.")
    proc = run_cli("env", "check", "--backend", "kohya", env=env, cwd=tmp_path)
    assert proc.returncode == 1 and "No NVIDIA GPU found" in proc.stdout and "fix:" in proc.stdout


def test_recorded_gpu_through_the_cli(tmp_path: Path) -> None:
    env = {"TRAINWRIGHT_NVIDIA_SMI": str(fake_smi(tmp_path, "h200"))}
    proc = run_cli("env", "check", "--backend", "kohya", "--json", env=env, cwd=tmp_path)
    out = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert out["facts"]["gpus"][0]["name"] == "NVIDIA H200"
    assert out["facts"]["driver_cuda"] == "12.6"
    texts = " ".join(p["text"] for p in out["problems"])
    assert "CPU-only build" in texts and "backend is not ready" in texts


def test_kohya_found_through_its_folder(tmp_path: Path) -> None:
    sd = tmp_path / "sd-scripts"
    (sd / "library").mkdir(parents=True)
    (sd / "train_network.py").write_text("")
    (sd / "library" / "__init__.py").write_text("")
    (sd / "library" / "train_util.py").write_text("X = 1\n")
    # kohya runs through `accelerate launch`: a stand-in on PATH is all discovery looks for
    # (accelerate itself is not a test dependency).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "accelerate").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "accelerate").chmod(0o755)
    path = f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin"
    env = {"TRAINWRIGHT_KOHYA_DIR": str(sd), "TRAINWRIGHT_NVIDIA_SMI": "", "PATH": path}
    proc = run_cli("env", "check", "--backend", "kohya", "--json", env=env, cwd=tmp_path)
    found = {f["check"]: f for f in json.loads(proc.stdout)["findings"]}
    assert found["backend"]["severity"] == "ok" and str(sd) in found["backend"]["text"]
    (sd / "library" / "train_util.py").write_text("import no_such_dependency_xyz\n")
    proc = run_cli("env", "check", "--backend", "kohya", "--json", env=env, cwd=tmp_path)
    found = {f["check"]: f for f in json.loads(proc.stdout)["findings"]}
    assert "No module named 'no_such_dependency_xyz'" in found["backend"]["fix"]


def test_gate_3_on_a_project_records_and_goes_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = make_project(tmp_path)
    smi = fake_smi(tmp_path, "h200")
    env = {"TRAINWRIGHT_NVIDIA_SMI": str(smi)}
    root = str(g.root)
    first = run_cli("--grimoire", root, "env", "check", "demo", "--dataset-size", "4", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Environment for demo: GO" in first.stdout
    _, doc = g.read("environment", "demo")
    top = doc["sections"][""]
    assert top["GPU"] == "NVIDIA H200 (140.4 GB)" and top["Backend"].startswith("tiny: installed")
    assert doc["sections"]["Requirements"]["Dataset images"] == 4
    assert doc["sections"]["Gate 3 Decision"]["Decision"] == "GO"
    _, status = g.read("status", "demo")
    assert status["sections"]["Gates"]["Gate 3 environment"] == "GO"
    again = run_cli("--grimoire", root, "env", "check", "demo", "--json", env=env)
    bound = json.loads(again.stdout)["bound_to"]
    assert bound == doc["sections"]["Gate 3 Decision"]["Bound to"]  # rerun: same facts, same hash
    monkeypatch.setenv("TRAINWRIGHT_NVIDIA_SMI", str(fake_smi(tmp_path, "rtx4090")))
    state = gates.state(g, "demo", 3)
    assert state["decision"] == "GO" and state["stale"]
    monkeypatch.setenv("TRAINWRIGHT_NVIDIA_SMI", str(smi))
    assert gates.state(g, "demo", 3)["ok"]


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["env", "check", "nope"], "has no environment.md"),
        (["env", "check", "../x"], "looks like a path"),
        (["env", "check", "demo", "--backend", "kohya"], "uses backend tiny, not kohya"),
        (["env", "check", "--model-size", "-1"], "-1"),
        (["env", "check", "--backend", "dreambooth"], "dreambooth"),
    ],
)
def test_bad_env_requests(tmp_path: Path, args: list[str], fragment: str) -> None:
    g = make_project(tmp_path)
    before = (g.project_dir("demo") / "environment.md").read_bytes()
    proc = run_cli("--grimoire", str(g.root), *args)
    assert_one_line_error(proc, fragment)
    assert (g.project_dir("demo") / "environment.md").read_bytes() == before


def test_gate3_reads_the_config_a_gpu_only_method_needs_a_gpu(tmp_path: Path) -> None:
    """The same trl backend trains a LoRA on the CPU but not a 4-bit QLoRA (bitsandbytes) or
    the Unsloth flavour: Gate 3 asks the backend about the project's own config."""
    pytest.importorskip("trl")
    from trainwright import backends

    trl = backends.get("trl")
    cpu = TorchFacts("2.13.0+cpu", None, None, None, sys.executable)
    verdicts = {}
    for label, overrides in (("lora", {}), ("qlora", {"method": "qlora"})):
        files = backends.render_settings(trl, model="tiny-qwen2", project="p", **overrides)
        folder = tmp_path / label
        folder.mkdir()
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
        config = folder / trl.CONFIG_FILE
        r = evaluate(facts("", cpu, backend="trl"), Needs("trl", config=config))
        verdicts[label] = (r.decision, by_check(r)["gpu"].text)
    assert verdicts["lora"][0] == "GO"
    assert verdicts["qlora"][0] == "NO-GO" and "trl trains on a GPU" in verdicts["qlora"][1]
