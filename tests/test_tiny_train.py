"""The tiny trainer as a user runs it: a real LoRA run on a project's images, its log, its
checkpoints, resuming, its step limit and batch knob, and its errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from support.tiny_project import make_project, set_config
from trainwright import backends
from trainwright.backends import tiny
from trainwright.backends.tiny_model import lora
from trainwright.backends.tiny_model.model import TinyDenoiser
from trainwright.run.logs import parse_text
from trainwright.state.grimoire import Grimoire


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    g = make_project(tmp_path, images=4)
    return g.project_dir("demo") / tiny.CONFIG_FILE


@pytest.mark.slow
def test_a_run_writes_lora_checkpoints_a_parsable_log_and_resumes(project: Path) -> None:
    proc = run(tiny.command(project), project.parent)
    assert proc.returncode == 0, proc.stderr
    st = parse_text(proc.stdout, "tiny")
    assert (st.step, st.steps, st.epochs, st.finished) == (4, 4, 2, True)
    assert st.device == "cpu" and st.ram_used_gib and st.elapsed_s
    cks = sorted((project.parent / "checkpoints").glob("*.safetensors"))
    assert [c.name for c in cks] == ["demo-epoch-0001.safetensors", "demo-epoch-0002.safetensors"]
    assert [c["epoch"] for c in st.checkpoints] == [1, 2]
    info = tiny.checkpoint_info(cks[-1])
    assert info["epoch"] == 2 and info["step"] == 4 and info["loss"] > 0
    with safe_open(str(cks[-1]), "pt") as fh:
        meta = fh.metadata()
    assert meta["trigger_word"] == "exstyle" and meta["trainwright_backend"] == "tiny"
    layers = lora.inject(TinyDenoiser(), rank=4, alpha=4)
    tensors = load_file(str(cks[-1]))
    assert lora.load_lora_state(layers, tensors) == len(layers)
    ups = [t for k, t in tensors.items() if k.endswith("lora_up.weight")]
    assert any(t.abs().sum() > 0 for t in ups)  # it learned something

    set_config(_grimoire(project), "demo", epochs=3)
    proc = run(tiny.command(project, resume=True, batch_size=1, accumulation=2), project.parent)
    assert proc.returncode == 0, proc.stderr
    assert "resume from=" in proc.stdout and "batch=1 accumulation=2" in proc.stdout
    st = parse_text(proc.stdout, "tiny")
    assert min(st.points) == 5 and st.step == 6 and st.epochs == 3  # same steps per epoch
    assert (project.parent / "checkpoints" / "demo-epoch-0003.safetensors").is_file()
    assert cks[0].is_file()  # earlier checkpoints stay


def _grimoire(config: Path) -> Grimoire:
    return Grimoire(config.parent.parent.parent)


@pytest.mark.parametrize(
    "change,code,fragment",
    [
        ({"base_model": "missing.safetensors"}, 3, "error model: base model file"),
        ({"base_model": "junk.safetensors"}, 3, "not a readable safetensors file"),
        ({"dataset": "nowhere"}, 4, "error dataset: dataset folder"),
        ({"colour": "red"}, 2, "unknown keys in tiny.yaml: colour"),
        ({"batch_size": 0}, 2, "batch_size should be a whole number"),
    ],
)
def test_errors_are_one_line_with_their_kind(
    project: Path, change: dict[str, object], code: int, fragment: str
) -> None:
    (project.parent / "junk.safetensors").write_bytes(b"\x00" * 64)
    set_config(_grimoire(project), "demo", **change)
    proc = run(
        [sys.executable, "-m", "trainwright.backends.tiny_model.train", str(project)],
        project.parent,
    )
    assert proc.returncode == code and fragment in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_installed_reports_the_bundled_weights() -> None:
    ok, detail = backends.installed(tiny)
    assert ok and "base.safetensors" in detail
    assert torch.__version__


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("pthread_create failed: Resource temporarily unavailable"),
        RuntimeError("std::bad_alloc"),
        MemoryError(),
        OSError(12, "Cannot allocate memory"),
    ],
)
def test_under_a_memory_cap_any_allocation_failure_reads_as_out_of_memory(
    project: Path,
    exc: BaseException,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """The address-space cap does not always surface as PyTorch's allocator message: a thread
    the kernel would not start or a C++ bad_alloc must still be an OOM, so launch halves the
    batch instead of calling it a crash."""
    from trainwright.backends.tiny_model import train
    from trainwright.run.failures import classify

    def fail(*_: object) -> int:
        raise exc

    monkeypatch.setattr(train, "_train", fail)
    code = train.main([str(project), "--memory-limit-mb", "40", "--batch-size", "8"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("tiny: error oom: out of memory under the memory cap")
    failure = classify(err, code, batch=8)
    assert failure.kind == "oom" and "try batch 4" in failure.fix


def test_without_a_cap_other_errors_still_propagate(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainwright.backends.tiny_model import train

    def fail(*_: object) -> int:
        raise RuntimeError("pthread_create failed: Resource temporarily unavailable")

    monkeypatch.setattr(train, "_train", fail)
    with pytest.raises(RuntimeError):
        train.main([str(project)])
    monkeypatch.setattr(train, "_train", lambda *_: (_ for _ in ()).throw(ValueError("shape")))
    with pytest.raises(ValueError):
        train.main([str(project), "--memory-limit-mb", "40"])
