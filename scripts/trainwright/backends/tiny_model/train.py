"""The tiny backend's trainer: LoRA on the bundled denoiser, one YAML config, one line per event.

    python -m trainwright.backends.tiny_model.train CONFIG.yaml [--max-steps N] [--batch-size B]
        [--accumulation A] [--resume PATH|latest] [--no-save] [--memory-limit-mb M]

Log lines (stdout, one per event, `key=value` fields; read by tiny_model/log.py):
    tiny: start backend=tiny device=cpu images=8 batch=4 accumulation=1 epochs=10 steps=20 ...
    tiny: epoch 3/10
    tiny: step=7/20 epoch=3/10 loss=0.123456 lr=0.001 batch=4 mem_mib=312.4 elapsed_s=4.2
    tiny: checkpoint epoch=5 step=10 loss=0.1181 path=/.../name-epoch-0005.safetensors
    tiny: done steps=20 epochs=10 loss=0.1012 elapsed_s=12.9
Under torchrun (WORLD_SIZE > 1) it trains data-parallel (DDP; gloo on the CPU, NCCL on GPUs):
`--batch-size` is per rank, the global batch is that times the world size, each rank takes its
slice of the same sample order, only rank 0 logs steps and writes checkpoints, and every rank
says `tiny: rank R/W host=NAME` once.
Errors go to stderr as `tiny: error <kind>: <message>` (kind: config, model, dataset) with exit
codes 2, 3 and 4; an allocator failure propagates as PyTorch's own error (exit 1), which is what
the launch supervisor's OOM detection reads for every backend. Under a memory cap the failure
can instead be a thread the kernel would not start or a C++ `std::bad_alloc`, so there any
allocation failure is reported as `tiny: error oom: ...` (exit 1).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trainwright.clock import now_iso
from trainwright.hardware.measured import torch_peak
from trainwright.hardware.process_memory import own_peak_bytes
from trainwright.state.content_hash import file_sha256

BUNDLED = "bundled"
DEFAULTS: dict[str, Any] = {
    "base_model": BUNDLED,
    "caption_extension": ".txt",
    "resolution": 64,
    "epochs": 10,
    "batch_size": 4,
    "gradient_accumulation_steps": 1,
    "learning_rate": 1e-3,
    "rank": 4,
    "alpha": 4,
    "repeats": 1,
    "save_every_n_epochs": 5,
    "output_dir": "checkpoints",
    "seed": 42,
    "device": "auto",
    "flip": True,
    "memory_limit_mb": None,
    "threads": 1,
}
REQUIRED = ("dataset", "trigger_word", "output_name")
EXIT_OOM, EXIT_CONFIG, EXIT_MODEL, EXIT_DATASET = 1, 2, 3, 4
# What an allocation refused under RLIMIT_AS looks like when it is not a MemoryError.
ALLOCATION = re.compile(
    r"alloc|out of memory|Cannot allocate|pthread_create|Resource temporarily unavailable|"
    r"mmap|thread constructor failed",
    re.I,
)


class TinyError(Exception):
    def __init__(self, kind: str, message: str, code: int) -> None:
        super().__init__(message)
        self.kind, self.code = kind, code


def bundled_weights() -> Path:
    return Path(__file__).resolve().parent / "base.safetensors"


def load_config(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TinyError("config", f"config file {path} not found", EXIT_CONFIG) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TinyError("config", f"{path} is not valid YAML: {exc}", EXIT_CONFIG) from None
    cfg = validate(raw, path.name)
    base = path.parent
    cfg["dataset"] = (base / str(cfg["dataset"])).resolve()
    cfg["output_dir"] = (base / str(cfg["output_dir"])).resolve()
    if cfg["base_model"] != BUNDLED:
        cfg["base_model"] = (base / str(cfg["base_model"])).resolve()
    return cfg


def validate(raw: Any, name: str = "tiny.yaml") -> dict[str, Any]:
    """The config with defaults filled in; TinyError names the first problem."""
    if not isinstance(raw, dict):
        raise TinyError("config", f"{name} should hold key: value pairs", EXIT_CONFIG)
    unknown = sorted(set(raw) - set(DEFAULTS) - set(REQUIRED))
    if unknown:
        raise TinyError("config", f"unknown keys in {name}: {', '.join(unknown)}", EXIT_CONFIG)
    missing = [k for k in REQUIRED if not raw.get(k)]
    if missing:
        raise TinyError("config", f"{name} lacks {', '.join(missing)}", EXIT_CONFIG)
    cfg = {**DEFAULTS, **raw}
    for key in ("resolution", "epochs", "batch_size", "gradient_accumulation_steps", "rank"):
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < 1:
            raise TinyError("config", f"{key} should be a whole number >= 1", EXIT_CONFIG)
    if cfg["resolution"] % 4:
        raise TinyError("config", "resolution should be a multiple of 4", EXIT_CONFIG)
    for key in ("learning_rate", "alpha"):
        if isinstance(cfg[key], bool) or not isinstance(cfg[key], (int, float)) or cfg[key] <= 0:
            raise TinyError("config", f"{key} should be a number > 0", EXIT_CONFIG)
    return cfg


def load_base(path: Any) -> tuple[Any, str]:
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from trainwright.backends.tiny_model.model import TinyDenoiser

    file = bundled_weights() if path == BUNDLED else Path(path)
    if not file.is_file():
        raise TinyError("model", f"base model file {file} not found", EXIT_MODEL)
    try:
        tensors = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise TinyError(
            "model",
            f"{file} is not a readable safetensors file (corrupt or partial download?): {exc}",
            EXIT_MODEL,
        ) from None
    model = TinyDenoiser()
    try:
        model.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
    except RuntimeError as exc:
        detail = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()][:1]
        raise TinyError(
            "model",
            f"{file} does not fit this version's tiny network"
            + (f" ({detail[0].rstrip('.')})" if detail else ""),
            EXIT_MODEL,
        ) from None
    digest = file_sha256(file)[0][:16]
    return model, f"{file.name}@{digest}"


def find_latest(output_dir: Path, output_name: str) -> Path | None:
    found = sorted(output_dir.glob(f"{output_name}-epoch-*.safetensors"))
    return found[-1] if found else None


def vm_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


_RANK = 0  # this process's rank under torchrun; only rank 0 logs


def say(text: str, every_rank: bool = False) -> None:
    """One write per line, so ranks sharing a pipe (even unbuffered) never splice lines."""
    if _RANK == 0 or every_rank:
        sys.stdout.write(f"tiny: {text}\n")
        sys.stdout.flush()


@dataclass
class Dist:
    """Where this process stands in a data-parallel job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def on(self) -> bool:
        return self.world > 1


def init_distributed(cuda: bool) -> Dist:
    """Join torchrun's process group (its env: RANK, WORLD_SIZE, MASTER_ADDR/PORT)."""
    global _RANK
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Dist()
    import socket

    import torch.distributed as torch_dist

    torch_dist.init_process_group("nccl" if cuda else "gloo")
    dist = Dist(torch_dist.get_rank(), torch_dist.get_world_size(), int(os.environ["LOCAL_RANK"]))
    _RANK = dist.rank
    say(
        f"rank {dist.rank}/{dist.world} host={socket.gethostname()} local_rank={dist.local_rank} "
        f"backend={torch_dist.get_backend()}",
        every_rank=True,
    )
    return dist


@dataclass
class Run:
    cfg: dict[str, Any]
    batch: int
    accumulation: int
    max_steps: int | None
    resume: str | None
    save: bool
    memory_limit_mb: int | None


def train(run: Run) -> int:
    import torch

    cfg = run.cfg
    t0 = time.monotonic()
    # One thread by default: these convolutions are too small to gain from more, and on a busy
    # machine OpenMP workers that spin while waiting for a core make every step several times
    # slower (measured: 0.3 s a step with one thread, 4-9 s with two, on a loaded 2-core box).
    torch.set_num_threads(int(cfg["threads"] or 1))
    device = cfg["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dist = init_distributed(device.startswith("cuda"))
    try:
        return _train(run, cfg, device, dist, t0)
    except (MemoryError, RuntimeError, OSError) as exc:
        if not (run.memory_limit_mb and allocation_failure(exc)):
            raise
        text = str(exc).strip().splitlines()
        print(
            f"tiny: error oom: out of memory under the memory cap of {run.memory_limit_mb} MiB "
            f"({type(exc).__name__}{': ' + text[0] if text else ''})",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_OOM
    finally:
        if dist.on:
            import torch.distributed as torch_dist

            torch_dist.destroy_process_group()


def allocation_failure(exc: BaseException) -> bool:
    """Python's or PyTorch's allocator refused, or a thread or mapping the kernel would not give."""
    return isinstance(exc, MemoryError) or bool(ALLOCATION.search(str(exc)))


def _train(run: Run, cfg: dict[str, Any], device: str, dist: Dist, t0: float) -> int:
    import torch

    from trainwright.backends.tiny_model import lora
    from trainwright.backends.tiny_model.data import DatasetError, load_folder
    from trainwright.backends.tiny_model.model import diffusion_loss, encode_captions

    if dist.on and device.startswith("cuda"):
        device = f"cuda:{dist.local_rank}"
    torch.manual_seed(int(cfg["seed"]))  # the LoRA init: the same run gives the same losses
    model, base_id = load_base(cfg["base_model"])
    layers = lora.inject(model, cfg["rank"], cfg["alpha"])
    model.to(device)
    n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    say(f"model loaded base={base_id} lora_layers={len(layers)} lora_params={n_lora}")
    try:
        ds = load_folder(
            cfg["dataset"], cfg["trigger_word"], cfg["resolution"], cfg["caption_extension"]
        )
    except DatasetError as exc:
        raise TinyError("dataset", str(exc), EXIT_DATASET) from None
    for name in ds.uncaptioned:
        say(f"warning: {name} has no caption file; training it with the trigger word alone")
    import numpy as np

    pixels = np.stack([np.asarray(im, dtype=np.float32) for im in ds.images])
    images = (torch.from_numpy(pixels).permute(0, 3, 1, 2) / 127.5 - 1.0).to(device)
    tokens = encode_captions(ds.captions).to(device)
    say(f"dataset images={len(ds.files)} uncaptioned={len(ds.uncaptioned)} folder={cfg['dataset']}")

    per_step = run.batch * run.accumulation * dist.world
    samples = len(ds.files) * int(cfg["repeats"])
    steps_per_epoch = max(1, math.ceil(samples / per_step))
    epochs = int(cfg["epochs"])
    total = epochs * steps_per_epoch
    start_epoch = 0
    if run.resume:
        start_epoch = _resume(run, layers, cfg)
    step = start_epoch * steps_per_epoch
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=float(cfg["learning_rate"]), weight_decay=0.0)
    net = model
    if dist.on:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(
            model, device_ids=[dist.local_rank] if device != "cpu" else None
        )
    say(
        f"start backend=tiny device={device} images={len(ds.files)} batch={run.batch} "
        f"accumulation={run.accumulation} world_size={dist.world} "
        f"global_batch={run.batch * dist.world} epochs={epochs} steps={total} "
        f"start_epoch={start_epoch} resolution={cfg['resolution']} rank={cfg['rank']}"
    )
    if run.memory_limit_mb:
        _cap_memory(model, images, tokens, run.memory_limit_mb)
    done_now, last_loss = 0, float("nan")
    for epoch in range(start_epoch, epochs):
        say(f"epoch {epoch + 1}/{epochs}")
        gen = torch.Generator().manual_seed(int(cfg["seed"]) * 7919 + epoch)
        order = torch.cat(
            [torch.randperm(len(ds.files), generator=gen) for _ in range(int(cfg["repeats"]))]
        )
        need = steps_per_epoch * per_step
        order = order.repeat(math.ceil(need / len(order)))[:need]
        epoch_losses = []
        for s in range(steps_per_epoch):
            opt.zero_grad(set_to_none=True)
            step_loss = 0.0
            for a in range(run.accumulation):
                width = run.batch * dist.world
                at = (s * run.accumulation + a) * width
                idx = order[at : at + width].to(device)
                x = images[idx]
                if cfg["flip"] and torch.rand(1, generator=gen).item() < 0.5:
                    x = x.flip(3)
                mine = (
                    slice(dist.rank * run.batch, (dist.rank + 1) * run.batch) if dist.on else None
                )
                loss = diffusion_loss(net, x, tokens[idx], gen, mine) / run.accumulation
                loss.backward()
                step_loss += float(loss.detach())
            if dist.on:
                step_loss = _mean_over_ranks(step_loss, device, dist)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            done_now += 1
            last_loss = step_loss
            epoch_losses.append(step_loss)
            mem = (
                torch.cuda.max_memory_allocated() / 2**20
                if device.startswith("cuda")
                else own_peak_bytes() / 2**20
            )
            say(
                f"step={step}/{total} epoch={epoch + 1}/{epochs} loss={step_loss:.6f} "
                f"lr={cfg['learning_rate']} batch={run.batch} mem_mib={mem:.1f} "
                f"elapsed_s={time.monotonic() - t0:.1f}"
            )
            if run.max_steps and done_now >= run.max_steps:
                say(torch_peak(torch, device).line())
                say(
                    f"done steps={done_now} dry_run=yes loss={last_loss:.6f} "
                    f"elapsed_s={time.monotonic() - t0:.1f}"
                )
                return 0
        end = epoch + 1
        saves = end % int(cfg["save_every_n_epochs"]) == 0 or end == epochs
        if run.save and dist.rank == 0 and saves:
            _save(run, layers, cfg, end, step, sum(epoch_losses) / len(epoch_losses), base_id)
    say(torch_peak(torch, device).line())
    say(
        f"done steps={done_now} epochs={epochs} loss={last_loss:.6f} "
        f"elapsed_s={time.monotonic() - t0:.1f}"
    )
    return 0


def _mean_over_ranks(value: float, device: str, dist: Dist) -> float:
    import torch
    import torch.distributed as torch_dist

    total = torch.tensor([value], dtype=torch.float64, device=device)
    torch_dist.all_reduce(total)
    return float(total.item()) / dist.world


def _resume(run: Run, layers: Any, cfg: dict[str, Any]) -> int:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from trainwright.backends.tiny_model import lora

    path: Path | None
    if run.resume == "latest":
        path = find_latest(cfg["output_dir"], cfg["output_name"])
        if path is None:
            say("resume: no checkpoint yet, starting from the beginning")
            return 0
    else:
        path = Path(str(run.resume))
    try:
        with safe_open(str(path), "pt") as fh:
            meta = fh.metadata() or {}
        lora.load_lora_state(layers, load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as exc:
        raise TinyError("model", f"cannot resume from {path}: {exc}", EXIT_MODEL) from None
    epoch = int(meta.get("epoch", 0))
    say(f"resume from={path} epoch={epoch} step={meta.get('step', '?')}")
    return epoch


def _save(
    run: Run, layers: Any, cfg: dict[str, Any], epoch: int, step: int, loss: float, base: str
) -> None:
    from trainwright.backends.tiny_model import lora

    out: Path = cfg["output_dir"]
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{cfg['output_name']}-epoch-{epoch:04d}.safetensors"
    meta = {
        "trainwright_backend": "tiny",
        "epoch": str(epoch),
        "step": str(step),
        "loss": f"{loss:.6f}",
        "batch_size": str(run.batch),
        "gradient_accumulation_steps": str(run.accumulation),
        "rank": str(cfg["rank"]),
        "alpha": str(cfg["alpha"]),
        "trigger_word": str(cfg["trigger_word"]),
        "resolution": str(cfg["resolution"]),
        "base_model": base,
        "saved_at": now_iso(),
    }
    lora.save(path, layers, meta)
    say(f"checkpoint epoch={epoch} step={step} loss={loss:.6f} path={path}")


def _cap_memory(model: Any, images: Any, tokens: Any, limit_mb: int) -> None:
    """Cap the address space at what is mapped now plus `limit_mb` (Linux RLIMIT_AS).

    One sample goes through forward and backward first, so the thread pools and allocator
    arenas exist before the cap and the limit measures what training itself needs.
    """
    import torch

    from trainwright.backends.tiny_model.model import diffusion_loss

    gen = torch.Generator().manual_seed(0)
    diffusion_loss(model, images[:1], tokens[:1], gen).backward()
    model.zero_grad(set_to_none=True)
    cap = vm_bytes() + limit_mb * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    say(f"memory cap address_space_mib={cap / 2**20:.0f} budget_mib={limit_mb}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="trainwright.backends.tiny_model.train")
    ap.add_argument("config", type=Path)
    ap.add_argument("--max-steps", type=int, help="Stop after N optimizer steps (dry run).")
    ap.add_argument("--batch-size", type=int, help="Override the config's batch_size.")
    ap.add_argument("--accumulation", type=int, help="Override gradient_accumulation_steps.")
    ap.add_argument("--resume", help="A checkpoint to continue from, or 'latest'.")
    ap.add_argument("--no-save", action="store_true", help="Write no checkpoints.")
    ap.add_argument("--memory-limit-mb", type=int, help="Cap the memory training may add.")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config)
        for name, value in (
            ("--batch-size", args.batch_size),
            ("--accumulation", args.accumulation),
        ):
            if value is not None and value < 1:
                raise TinyError("config", f"{name} should be >= 1", EXIT_CONFIG)
        run = Run(
            cfg,
            args.batch_size or cfg["batch_size"],
            args.accumulation or cfg["gradient_accumulation_steps"],
            args.max_steps,
            args.resume,
            not args.no_save,
            args.memory_limit_mb or cfg["memory_limit_mb"],
        )
        return train(run)
    except TinyError as exc:
        print(f"tiny: error {exc.kind}: {exc}", file=sys.stderr, flush=True)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
