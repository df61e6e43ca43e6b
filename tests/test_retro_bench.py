"""`trainwright bench kernel`: the Triton softmax sweep. Here (no GPU) the sweep's correctness
check runs under TRITON_INTERPRET=1; the GPU report format is checked from a recorded sweep."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_cli
from support.retro_project import DATA, make_project
from trainwright.bench.device import peak_bandwidth, theoretical_occupancy
from trainwright.bench.kernel_report import render
from trainwright.retro.collect import read_report
from trainwright.retro.domains import focus

pytest.importorskip("triton", reason="triton is in the gpu extra: pip install -e '.[gpu]'")
RECORDED = DATA / "cuda" / "recorded" / "sweep-softmax-h100.json"
REPORT = DATA / "cuda" / "reports" / "2025-03-10-softmax-nvidia-h100-80gb-hbm3.md"
NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}


def test_without_a_gpu_it_checks_correctness_under_the_interpreter(tmp_path: Path) -> None:
    registry = make_project(tmp_path, "cuda")
    env = {**NO_GPU, "TRAINWRIGHT_REGISTRY": str(registry)}
    before = sorted(p.name for p in (tmp_path / "reports" / "cuda").iterdir())
    proc = run_cli("bench", "kernel", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("no GPU found: checked 3 configurations of softmax")
    assert "3 correct" in proc.stdout and "no report written" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "reports" / "cuda").iterdir()) == before
    data = json.loads(run_cli("bench", "kernel", "--json", "--dtype", "float16", env=env).stdout)
    assert data["gpu"] is False and data["mode"] == "interpreter" and data["report"] is None
    assert data["all_correct"] is True
    results = data["results"]
    # Both code paths of the kernel ran: tiles smaller than a row (two passes) and one pass.
    assert [r["one_pass"] for r in results] == [False, False, True]
    assert all(r["correct"] and r["max_error"] < 2e-3 for r in results)
    assert all(r["time_ms"] is None for r in results)  # no timing is invented without a GPU


def test_a_wrong_kernel_is_caught_by_the_check(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys
        os.environ["TRITON_INTERPRET"] = "1"
        from trainwright.bench import softmax
        from trainwright.bench.sweep import run_sweep
        import torch
        softmax.reference = lambda inputs: torch.softmax(inputs["x"] * 1.01, dim=-1)
        out = run_sweep("softmax", softmax, gpu=False, shape=(2, 100), dtype=torch.float32,
                        configs=[{"BLOCK_SIZE": 64, "num_warps": 4}, {"BLOCK_SIZE": 7}],
                        device={"name": "cpu"})
        r = out["results"]
        print(r[0]["correct"], r[1]["error"] is not None)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--block-sizes", "100"], "power of two"),
        (["--block-sizes", "abc"], "--block-sizes"),
        (["--warps", "0"], "--warps"),
        (["--rows", "0"], "--rows"),
        (["--kernel", "matmul"], "matmul"),
        (["--dtype", "int8"], "int8"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path: Path, args: list[str], fragment: str) -> None:
    proc = run_cli("bench", "kernel", *args, cwd=tmp_path, env=NO_GPU)
    assert_one_line_error(proc, fragment)
    assert list(tmp_path.iterdir()) == []


def test_report_renders_the_recorded_sweep_exactly() -> None:
    sweep = json.loads(RECORDED.read_text())
    command = (
        "trainwright bench kernel --kernel softmax --rows 4096 --cols 8192 --dtype float32 "
        "--block-sizes 1024,2048,4096,8192,16384 --warps 4,8,16"
    )
    assert render(sweep, command) == REPORT.read_text()


def test_collect_reads_the_kernel_report_it_writes(tmp_path: Path) -> None:
    sweep = json.loads(RECORDED.read_text())
    sweep["date"] = "2025-04-01"
    path = tmp_path / "r.md"
    path.write_text(render(sweep, "trainwright bench kernel"))
    rep = read_report(path, "r.md", focus("cuda"))
    assert rep.format == "kernel-benchmark" and rep.date == "2025-04-01"
    assert rep.parameters["operation"] == "softmax" and rep.parameters["grid"] == "(4096,)"
    assert rep.parameters["peak_bandwidth"].startswith("3,350 GB/s")
    assert len(rep.runs) == len(sweep["results"]) + 1  # the sweep, then the peer
    assert rep.runs[-1].label == "torch.softmax"
    assert rep.runs[-1].metrics["bandwidth"] == "2,566 GB/s"
    best = rep.runs[sweep["best"]]
    assert best.parameters == {"block_size": "8192", "num_warps": "16"}
    assert best.metrics["time"] == "0.0926 ms" and best.metrics["occupancy"] == "25%"
    assert rep.worked[0].startswith("BLOCK_SIZE=8192, num_warps=16: 0.0926 ms, 2,899 GB/s")
    whys = {f.what: f.why for f in rep.failed}
    assert whys["BLOCK_SIZE=16384, num_warps=4"].startswith("OutOfResources")
    assert "96 register spills" in whys["BLOCK_SIZE=8192, num_warps=4"]
    assert rep.focus_missing == []


def test_peak_bandwidth_table_and_fallback() -> None:
    assert peak_bandwidth("NVIDIA H100 80GB HBM3")[0] == 3350
    assert peak_bandwidth("NVIDIA H100 PCIe")[0] == 2000
    assert peak_bandwidth("NVIDIA H200")[0] == 4800
    assert peak_bandwidth("NVIDIA A100-SXM4-80GB")[0] == 2039
    assert peak_bandwidth("NVIDIA A100-SXM4-40GB")[0] == 1555
    assert peak_bandwidth("NVIDIA GeForce RTX 4090")[0] == 1008
    gbs, source = peak_bandwidth("Some Future GPU", memory_clock_khz=2_619_000, bus_width_bits=5120)
    assert gbs == pytest.approx(3352.3, abs=0.1) and "computed" in source
    assert peak_bandwidth("Mystery")[0] is None


def test_theoretical_occupancy() -> None:
    # H100: 64K registers, 2048 threads, 228 KiB shared memory per SM.
    h100 = {"regs_per_sm": 65536, "max_threads_per_sm": 2048, "shared_per_sm": 233472}
    assert theoretical_occupancy(4, 32, 0, **h100) == 1.0
    assert theoretical_occupancy(4, 64, 0, **h100) == 0.5
    assert theoretical_occupancy(16, 128, 0, **h100) == 0.25
    assert theoretical_occupancy(16, 136, 0, **h100) == 0.0  # cannot launch at all
    assert theoretical_occupancy(4, 32, 100_000, **h100) == 0.125  # 2 blocks of 4 warps of 64
    assert theoretical_occupancy(4, None, 0, **h100) is None


def test_each_registered_kernel_module_has_the_documented_interface() -> None:
    script = textwrap.dedent(
        """
        import os
        os.environ["TRITON_INTERPRET"] = "1"
        from trainwright.bench.kernels import KERNELS, load_kernel
        names = ("OPERATION", "MEMORY_PATTERN", "GPU_SHAPE", "CHECK_SHAPE", "gpu_configs",
                 "check_configs", "make_inputs", "launch", "reference", "peer", "bytes_moved",
                 "flops", "grid", "one_pass", "check")
        for kernel in KERNELS:
            mod = load_kernel(kernel)
            print(kernel, [n for n in names if not hasattr(mod, n)])
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["softmax []"]
