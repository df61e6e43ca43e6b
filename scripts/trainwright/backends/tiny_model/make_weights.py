"""Make the tiny backend's base model: train the denoiser from scratch on generated pictures.

    python -m trainwright.backends.tiny_model.make_weights [--steps 2400] [--batch 8] [--out PATH]

The pictures (coloured circles, squares, triangles and stripes on plain backgrounds, captioned
with what they show; see data.synthetic_picture) are drawn from a fixed seed, so the run is
reproducible; PyTorch's CPU kernels are deterministic for these layers, so the same torch version
on the same CPU type gives the same file. The first 80% of the steps train at 32 px (four times
cheaper; the network is fully convolutional), the rest at 64 px, the resolution the backend
trains LoRAs at. The weights are stored in float16 (about 2 MB).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

SEED = 20240601


def batch_of(rng: random.Random, n: int, size: int) -> tuple[object, object]:
    import numpy as np
    import torch

    from trainwright.backends.tiny_model.data import synthetic_picture
    from trainwright.backends.tiny_model.model import encode_captions

    pics = [synthetic_picture(rng, size) for _ in range(n)]
    arr = np.stack([np.asarray(img, dtype=np.float32) for img, _ in pics])
    images = torch.from_numpy(arr).permute(0, 3, 1, 2) / 127.5 - 1.0
    return images, encode_captions([c for _, c in pics])


def make(out: Path, steps: int, batch: int, size: int = 64) -> dict[str, object]:
    """Train from scratch and save; `size` is the final resolution (the early steps use half)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see train.py: small convolutions gain nothing from threads
    try:
        return _train(out, steps, batch, size)
    finally:
        torch.set_num_threads(threads)


def _train(out: Path, steps: int, batch: int, size: int) -> dict[str, object]:
    import torch
    from safetensors.torch import save_file

    from trainwright.backends.tiny_model.model import TinyDenoiser, diffusion_loss

    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = TinyDenoiser()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    t0, losses = time.monotonic(), []
    for step in range(1, steps + 1):
        res = size if step > int(steps * 0.8) else size // 2
        images, tokens = batch_of(rng, batch * (2 if res < size else 1), res)
        loss = diffusion_loss(model, images, tokens, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == steps:
            recent = sum(losses[-50:]) / len(losses[-50:])
            print(
                f"step {step}/{steps} {res}px loss {recent:.4f} ({time.monotonic() - t0:.0f} s)",
                flush=True,
            )
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    info = {
        "steps": str(steps),
        "batch": str(batch),
        "resolution": str(size),
        "seed": str(SEED),
        "final_loss": f"{sum(losses[-50:]) / len(losses[-50:]):.4f}",
        "torch": torch.__version__,
        "made_by": "python -m trainwright.backends.tiny_model.make_weights",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata=info)
    return info


def main(argv: list[str] | None = None) -> None:
    from trainwright.backends.tiny_model.train import bundled_weights

    ap = argparse.ArgumentParser(prog="trainwright.backends.tiny_model.make_weights")
    ap.add_argument("--steps", type=int, default=2400)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", type=Path, default=bundled_weights())
    args = ap.parse_args(argv)
    info = make(args.out, args.steps, args.batch)
    print(json.dumps({"out": str(args.out), **info}, indent=2))


if __name__ == "__main__":
    main()
