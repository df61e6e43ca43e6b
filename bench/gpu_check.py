"""Every CUDA path of the pack, proven on one GPU in one prepared run (issue 18): see
bench/gpu_check.sh for the exact device call.

    PYTHONPATH=scripts python3 bench/gpu_check.py [--cpu] [--only STEP ...]

Steps, in order, each in a child process under its own time limit (a hit limit is reported with
what finished before it), each skipped with the reason when CUDA or its package is missing:
  1 env     `trainwright doctor` and `env check`: nvidia-smi and NVML parsed, Gate 3's decision
  2 dedup   planted pairs: 100k and 1M hashes through Triton, numpy all-pairs and MIH (digests
            equal); 10M through Triton and MIH only
  3 kernel  `trainwright bench kernel` writes a real cuda report; `retro collect` reads it
  4 vram    the truth table: estimate against torch's measured peak (allocated and reserved) of
            real steps with random weights, all rows in one process, models built on the GPU
  5 loop    the training-loop mechanisms the per-framework estimate models (issue 14), each
            against its own estimate: fused AdamW, the step in backward, bitsandbytes' 8-bit and
            paged 8-bit AdamW (does paged state count in allocated memory?), torchtune's chunked
            loss against transformers' at a 128k vocabulary, QLoRA on a 4-bit base, accumulation
  6 tiny    `trainwright demo` on the GPU (dry-run and launch of the tiny trainer on CUDA, Gate
            4's measured peak) and `vram --measure` for one model
Without CUDA (or with --cpu) the GPU steps are skipped with reasons, the dedup engines run at a
small size on the CPU, and the exit is 0. Prints a table; writes gpu_check.json and
gpu_check.md under $OUT when it is set (else bench/out/).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "bench"))

# Seconds per step: 8 minutes in all on one H100, so a 15-minute lease can rerun once.
LIMITS = {"env": 25, "dedup": 130, "kernel": 45, "vram": 125, "loop": 60, "tiny": 80}
DEDUP_LIMITS = {"triton": 60, "brute": 45, "mih": 40}  # per engine run, inside the step's
THRESHOLD = 10

# (label, model, method, targets, seq, gradient checkpointing, batch)
VRAM_ROWS = [
    (f"{m} LoRA r16 {t} seq {s}{' gc' if gc else ''}", m, "lora", t, s, gc, 1)
    for m in ("llama-3.2-1b", "qwen2.5-1.5b")
    for t in ("q,v", "all-linear")
    for s in (512, 2048)
    for gc in (False, True)
] + [
    (f"qwen2.5-0.5b full seq {s}{' gc' if gc else ''}", "qwen2.5-0.5b", "full", "q,v", s, gc, 1)
    for s in (512, 2048)
    for gc in (False, True)
]
UNET_ROW = ("sdxl UNet LoRA r16 1024px gc", "sdxl", "lora", "attn", None, True, 1)
# (label, model, Setup fields): each row changes one thing the estimate models; the most telling
# first, since the step's time limit may cut the rest.
TT = {"method": "full", "seq_len": 2048, "framework": "torchtune", "foreach": False}
LOOP_ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("0.5b full tt fused", "qwen2.5-0.5b", TT),
    ("0.5b full tt fused +opt-in-bwd", "qwen2.5-0.5b", {**TT, "optimizer_in_backward": True}),
    ("0.5b full tt adamw8bit", "qwen2.5-0.5b", {**TT, "optimizer": "adamw8bit"}),
    (
        "0.5b full tt paged8bit +opt-in-bwd",
        "qwen2.5-0.5b",
        {**TT, "optimizer": "paged_adamw8bit", "optimizer_in_backward": True},
    ),
    (
        "0.5b full tt adamw8bit +opt-in-bwd",
        "qwen2.5-0.5b",
        {**TT, "optimizer": "adamw8bit", "optimizer_in_backward": True},
    ),
    (
        "1b LoRA all seq 4096 hf",
        "llama-3.2-1b",
        {"seq_len": 4096, "targets": "all-linear", "framework": "hf"},
    ),
    (
        "1b LoRA all seq 4096 torchtune",
        "llama-3.2-1b",
        {"seq_len": 4096, "targets": "all-linear", "framework": "torchtune"},
    ),
    (
        "1b QLoRA all seq 512 hf",
        "llama-3.2-1b",
        {"method": "qlora", "seq_len": 512, "targets": "all-linear", "framework": "hf"},
    ),
    (
        "1b QLoRA all seq 2048 hf",
        "llama-3.2-1b",
        {"method": "qlora", "seq_len": 2048, "targets": "all-linear", "framework": "hf"},
    ),
    (
        "0.5b full hf seq 512 accum 1",
        "qwen2.5-0.5b",
        {"method": "full", "seq_len": 512, "framework": "hf"},
    ),
    (
        "0.5b full hf seq 512 accum 4",
        "qwen2.5-0.5b",
        {"method": "full", "seq_len": 512, "framework": "hf", "gradient_accumulation": 4},
    ),
]


def emit(rows: Path, **fields: Any) -> None:
    with open(rows, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(fields) + "\n")


def cuda() -> tuple[bool, str]:
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if not torch.cuda.is_available():
        return False, f"no CUDA (torch {torch.__version__}, cuda build {torch.version.cuda})"
    return True, torch.cuda.get_device_name()


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def tw(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "scripts"), *_pp()])}
    return subprocess.run(
        [sys.executable, "-m", "trainwright", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _pp() -> list[str]:
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


# --- step 1 ----------------------------------------------------------------------------------


def step_env(rows: Path, gpu: bool) -> None:
    from trainwright.hardware import env_check
    from trainwright.hardware.gpu import probe_gpus

    probe = probe_gpus()
    if not gpu and not probe.found:
        emit(rows, part="nvidia-smi", skipped=f"no GPU here: {probe.error}")
    else:
        emit(
            rows,
            part="nvidia-smi",
            ok=probe.found,
            detail=", ".join(
                f"{g.name} {g.memory_total_mib} MiB used {g.memory_used_mib}" for g in probe.gpus
            )
            or probe.error,
        )
    nvml = env_check._pynvml()
    if nvml is None:
        emit(rows, part="nvml", skipped="pynvml (nvidia-ml-py) is not installed")
    else:
        found, driver_cuda = env_check.probe_nvml(nvml)
        same = [g.name for g in found.gpus] == [g.name for g in probe.gpus]
        emit(
            rows,
            part="nvml",
            ok=found.found == probe.found and same,
            detail=f"{len(found.gpus)} GPU(s), driver CUDA {driver_cuda}; same as nvidia-smi: "
            f"{same}",
        )
    doctor = tw("doctor", "--json", timeout=30)
    emit(rows, part="doctor", ok=doctor.returncode in (0, 1), detail=f"exit {doctor.returncode}")
    with tempfile.TemporaryDirectory() as tmp:
        tw("init", cwd=Path(tmp))
        check = tw("env", "check", "--json", cwd=Path(tmp), timeout=40)
    try:
        decision = json.loads(check.stdout).get("decision")
    except json.JSONDecodeError:
        decision = None
    emit(
        rows,
        part="env check (Gate 3)",
        ok=decision == "GO" or not gpu,
        detail=f"{decision} (exit {check.returncode})" + ("" if gpu else "; no GPU here"),
    )


# --- step 2 ----------------------------------------------------------------------------------


def _dedup_child(engine: str, n: int, out: Path) -> None:
    import numpy as np
    from dedup_search import make_hashes

    from trainwright.dataset import search

    h, planted = make_hashes(n, threshold=THRESHOLD)
    if engine == "triton":
        import torch

        search.near_pairs(h[:4096], THRESHOLD, device="cuda")  # compile outside the timing
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    if engine == "triton":
        rows = search.near_pairs(h, THRESHOLD, device="cuda")
    else:
        rows = search.near_pairs(h, THRESHOLD, engine=engine, workers=os.cpu_count())
    secs = time.perf_counter() - t0
    rows = np.asarray(rows)
    found = {(int(i), int(j)) for i, j in rows[:, :2]} if len(rows) else set()
    out.write_text(
        json.dumps(
            {
                "seconds": round(secs, 2),
                "pairs": len(found),
                "planted_found": all((int(a), int(b)) in found for a, b in planted),
                "digest": hashlib.sha256(json.dumps(sorted(found)).encode()).hexdigest()[:16],
            }
        )
    )


def step_dedup(rows: Path, gpu: bool) -> None:
    # 100k first: all three engines finish there, so their digests are compared even when numpy
    # all-pairs runs out of time at 1M (it is quadratic: minutes on 16 cores)
    every = ("triton", "brute", "mih")
    sizes = [(100_000, every), (1_000_000, every), (10_000_000, ("triton", "mih"))]
    if not gpu:
        sizes = [(20_000, ("triton", "brute", "mih"))]
    for n, engines in sizes:
        digests = {}
        for engine in engines:
            if engine == "triton" and not gpu:
                emit(rows, part=f"{engine} n={n}", skipped="no CUDA: the Triton kernel needs a GPU")
                continue
            if engine == "triton" and not have("triton"):
                emit(rows, part=f"{engine} n={n}", skipped="triton is not installed")
                continue
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
                out = Path(fh.name)
            limit = DEDUP_LIMITS[engine]
            try:
                subprocess.run(
                    [sys.executable, __file__, "--dedup-child", engine, str(n), str(out)],
                    timeout=limit,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                res = json.loads(out.read_text())
            except subprocess.TimeoutExpired:
                emit(rows, part=f"{engine} n={n}", ok=False, detail=f"time limit {limit} s hit")
                continue
            except subprocess.CalledProcessError as exc:
                last = (exc.stderr or "").strip().splitlines()[-1:]
                emit(rows, part=f"{engine} n={n}", ok=False, detail=f"failed: {last}")
                continue
            finally:
                out.unlink(missing_ok=True)
            digests[engine] = res["digest"]
            emit(
                rows,
                part=f"{engine} n={n}",
                ok=res["planted_found"],
                seconds=res["seconds"],
                detail=f"{res['pairs']} pairs, digest {res['digest']}",
            )
        if len(digests) > 1:
            same = len(set(digests.values())) == 1
            emit(rows, part=f"digests equal n={n}", ok=same, detail=json.dumps(digests))


# --- step 3 ----------------------------------------------------------------------------------


def step_kernel(rows: Path, gpu: bool) -> None:
    if not gpu:
        emit(
            rows,
            part="bench kernel",
            skipped="no CUDA: `bench kernel` would only run its "
            "interpreter check (tested in the suite)",
        )
        return
    with tempfile.TemporaryDirectory() as tmp:
        sweep = tw("bench", "kernel", "--out", tmp, "--json", timeout=38)
        try:
            data = json.loads(sweep.stdout)
        except json.JSONDecodeError:
            emit(rows, part="bench kernel", ok=False, detail=sweep.stderr.strip()[-300:])
            return
        best = max((r["bandwidth_gbs"] or 0 for r in data["results"]), default=0)
        correct = all(r["correct"] for r in data["results"])
        emit(
            rows,
            part="bench kernel",
            ok=correct and bool(data.get("report")),
            detail=f"{data.get('gpu')}: best {best:.0f} GB/s, report {data.get('report')}",
        )
        coll = tw("retro", "collect", "--json", str(data.get("report") or tmp), timeout=10)
        try:
            found = json.loads(coll.stdout)["reports"]
        except (json.JSONDecodeError, KeyError):
            found = []
        emit(
            rows,
            part="retro collect",
            ok=len(found) == 1 and found[0].get("domain") in (None, "cuda"),
            detail=f"{len(found)} report(s) read",
        )


# --- step 4 ----------------------------------------------------------------------------------


def step_vram(rows: Path, gpu: bool) -> None:
    if not gpu:
        emit(rows, part="vram truth table", skipped="no CUDA: the rows are real training steps")
        return
    from trainwright.hardware import catalog
    from trainwright.hardware.measure import measure_setup
    from trainwright.hardware.vram import Setup

    cat = catalog.load()
    table = list(VRAM_ROWS)
    if have("diffusers"):
        table.append(UNET_ROW)
    else:
        emit(rows, part=UNET_ROW[0], skipped="diffusers is not installed")
    for label, model_id, method, targets, seq, gc, batch in table:
        model = cat.get(model_id)
        setup = Setup(
            method=method,
            rank=16,
            targets=targets,
            seq_len=seq,
            batch=batch,
            gradient_checkpointing=gc,
            attention="sdpa",
            optimizer="adamw",
            resolution=(1024, 1024) if model.is_image else None,
        )
        want = model.main.params if model.is_image else None  # the UNet config is exact?
        measure_row(rows, label, model, measure_setup(model, setup), want)


def measure_row(rows: Path, label: str, model: Any, setup: Any, want: int | None = None) -> None:
    """One row: the estimate, then two real steps of the same setup on the GPU."""
    import torch

    from trainwright.hardware.measure import ran, run_steps, unmeasurable
    from trainwright.hardware.vram import GIB, estimate

    why = unmeasurable(model, setup)
    if why:
        emit(rows, part=label, skipped=why)
        return
    est = estimate(model, setup)
    try:
        got = run_steps(model, setup, setup.batch, steps=2)
    except torch.cuda.OutOfMemoryError:
        emit(rows, part=label, ok=False, detail="out of memory")
        return
    alloc, res = got["allocated_mib"] / 1024, got["reserved_mib"] / 1024
    err_a = alloc / (est.allocated / GIB) - 1
    err_r = res / (est.reserved / GIB) - 1
    emit(
        rows,
        part=label,
        ok=want is None or got["trainable"] < got["params"] and _unet_exact(got, want),
        seconds=got["seconds"],
        estimate_alloc_gib=round(est.allocated / GIB, 2),
        estimate_reserved_gib=round(est.reserved / GIB, 2),
        measured_alloc_gib=round(alloc, 2),
        measured_reserved_gib=round(res, 2),
        params=got["params"],
        ran=ran(model, setup),
        detail=f"est {est.allocated / GIB:.2f}/{est.reserved / GIB:.2f} GiB, measured "
        f"{alloc:.2f}/{res:.2f} GiB (alloc/reserved), error {err_a:+.1%}/{err_r:+.1%}",
    )


# --- step 5 ----------------------------------------------------------------------------------


def step_loop(rows: Path, gpu: bool) -> None:
    if not gpu:
        emit(rows, part="training-loop rows", skipped="no CUDA: the rows are real training steps")
        return
    from trainwright.hardware import catalog
    from trainwright.hardware.vram import Setup

    cat = catalog.load()
    for label, model_id, fields in LOOP_ROWS:
        base = {"rank": 16, "gradient_checkpointing": True, "attention": "sdpa"}
        measure_row(rows, label, cat.get(model_id), Setup(**{**base, **fields}))


def _unet_exact(got: dict[str, Any], want: int) -> bool:
    """The built UNet has the catalog's parameter count (LoRA adapters aside)."""
    return got["params"] - got["trainable"] == want


# --- step 6 ----------------------------------------------------------------------------------


def step_tiny(rows: Path, gpu: bool) -> None:
    if not gpu:
        emit(rows, part="demo on the GPU", skipped="no CUDA: the demo's CPU run is in the suite")
        emit(rows, part="vram --measure", skipped="no CUDA: --measure needs a GPU")
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "demo"
        t0 = time.monotonic()
        demo = tw("demo", "--keep", str(root), "--json", timeout=70)
        progress = next(root.glob("grimoire/training/*/progress.md"), None)
        text = progress.read_text() if progress else ""
        peak = next((ln for ln in text.splitlines() if "Measured peak" in ln), "no Measured peak")
        studio = root / "grimoire" / "studio.md"
        kept = studio.is_file() and "Measured/estimated" in studio.read_text()
        emit(
            rows,
            part="demo on the GPU",
            ok=demo.returncode == 0 and "reserved" in peak and kept,
            seconds=round(time.monotonic() - t0, 1),
            detail=f"exit {demo.returncode}; {peak.strip()}; ratio kept in studio.md: {kept}",
        )
    t0 = time.monotonic()
    meas = tw(
        "vram",
        "--model",
        "qwen2.5-0.5b",
        "--method",
        "lora",
        "--seq-len",
        "512",
        "--measure",
        "--json",
        timeout=22,
    )
    try:
        m = json.loads(meas.stdout)["measured"]
        detail = f"reserved {m['reserved_gib']} GiB; ratio {m['comparison']['ratio']}"
    except (json.JSONDecodeError, KeyError, TypeError):
        detail = (meas.stderr or meas.stdout).strip()[-200:]
    emit(
        rows,
        part="vram --measure",
        ok=meas.returncode == 0,
        detail=detail,
        seconds=round(time.monotonic() - t0, 1),
    )


STEPS = {
    "env": step_env,
    "dedup": step_dedup,
    "kernel": step_kernel,
    "vram": step_vram,
    "loop": step_loop,
    "tiny": step_tiny,
}


def run_step(name: str, gpu: bool) -> list[dict[str, Any]]:
    """The step in a child process under its limit; its rows so far when the limit is hit."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as fh:
        rows = Path(fh.name)
    cmd = [sys.executable, __file__, "--step-child", name, str(rows)] + ([] if gpu else ["--cpu"])
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, timeout=LIMITS[name], capture_output=True, text=True)
        note = None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]
    except subprocess.TimeoutExpired:
        note = f"time limit {LIMITS[name]} s hit; rows above finished before it"
    found = [json.loads(ln) for ln in rows.read_text().splitlines() if ln.strip()]
    rows.unlink(missing_ok=True)
    if note:
        found.append({"part": "(step)", "ok": False, "detail": note})
    for r in found:
        r["step"] = name
    found.append({"step": name, "part": "(step time)", "seconds": round(time.monotonic() - t0, 1)})
    return found


def outcome(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return "SKIP"
    if "ok" not in r:
        return ""
    return "ok" if r["ok"] else "FAIL"


def markdown(result: dict[str, Any]) -> str:
    out = [
        f"# gpu_check: {result['device']}",
        "",
        f"{result['when']}, mode {result['mode']}",
        "",
        "| step | part | result | s | detail |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        detail = r.get("skipped") or r.get("detail") or ""
        out.append(
            f"| {r['step']} | {r['part']} | {outcome(r)} | {r.get('seconds', '')} | "
            f"{str(detail).replace('|', '/')} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="Skip the GPU steps even with CUDA.")
    ap.add_argument("--only", nargs="*", choices=list(STEPS), help="Run these steps only.")
    ap.add_argument("--step-child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--dedup-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.dedup_child:
        engine, n, out = args.dedup_child
        _dedup_child(engine, int(n), Path(out))
        return 0
    if args.step_child:
        name, rows = args.step_child
        STEPS[name](Path(rows), not args.cpu and cuda()[0])
        return 0
    gpu, device = cuda()
    if args.cpu:
        gpu, device = False, f"CPU mode (--cpu; {device})"
    result: dict[str, Any] = {
        "device": device,
        "mode": "gpu" if gpu else "cpu",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": [],
    }
    for name in args.only or list(STEPS):
        print(f"== {name} (limit {LIMITS[name]} s)", flush=True)
        for r in run_step(name, gpu):
            result["rows"].append(r)
            detail = r.get("skipped") or r.get("detail") or ""
            print(
                f"  {r['part'][:44]:44s} {outcome(r):4s} {r.get('seconds', ''):>7} {detail}",
                flush=True,
            )
    out = Path(os.environ.get("OUT") or REPO / "bench" / "out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    (out / "gpu_check.md").write_text(markdown(result))
    failed = [r for r in result["rows"] if r.get("ok") is False]
    print(f"{len(failed)} failed; written to {out}/gpu_check.json and gpu_check.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
