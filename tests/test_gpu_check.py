"""bench/gpu_check.sh on a machine without CUDA: every GPU step is skipped with its reason, the
CPU engines still run and agree, the table and the files under $OUT are written, exit 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cpu_mode_skips_the_gpu_steps_with_reasons_and_exits_0(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["bash", "bench/gpu_check.sh", "--cpu"],
        cwd=REPO,
        env={**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["mode"] == "cpu"
    rows = {(r["step"], r["part"]): r for r in result["rows"]}
    timed = [s for (s, p) in rows if p == "(step time)"]
    assert timed == ["env", "dedup", "kernel", "vram", "loop", "tiny"]
    for key in [("kernel", "bench kernel"), ("vram", "vram truth table"),
                ("loop", "training-loop rows"), ("tiny", "demo on the GPU"),
                ("tiny", "vram --measure")]:  # fmt: skip
        assert "no CUDA" in rows[key]["skipped"]
    triton = next(r for (s, p), r in rows.items() if s == "dedup" and p.startswith("triton"))
    assert "no CUDA" in triton["skipped"]
    same = next(r for (s, p), r in rows.items() if p.startswith("digests equal"))
    assert same["ok"] is True and len(set(json.loads(same["detail"]).values())) == 1
    assert not [r for r in result["rows"] if r.get("ok") is False]
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| kernel | bench kernel | SKIP |" in table
    assert "gpu_check.json" in proc.stdout and (tmp_path / "gpu_check.log").is_file()


def test_every_row_is_a_setup_the_estimate_and_the_steps_both_take() -> None:
    """A row the GPU run would skip or fail to estimate is found here, not in a device lease:
    with bitsandbytes carried (bench/gpu_wheels.sh) every row is measurable."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(REPO / "bench"))
    from trainwright.hardware import catalog, measure
    from trainwright.hardware.vram import Setup, estimate

    cat = catalog.load()
    assert sum(gpu_check.LIMITS.values()) <= 470  # 8 minutes with the wheels' install
    for label, model_id, fields in gpu_check.LOOP_ROWS:
        model = cat.get(model_id)
        s = Setup(**{"rank": 16, "gradient_checkpointing": True, **fields})
        assert estimate(model, s).allocated > 0, label
        why = measure.unmeasurable(model, s)
        assert why is None or "pip install bitsandbytes" in why, (label, why)
    for label, model_id, method, targets, seq, gc, _ in gpu_check.VRAM_ROWS:
        s = Setup(method=method, targets=targets, seq_len=seq, gradient_checkpointing=gc)
        assert measure.unmeasurable(cat.get(model_id), s) is None, label
