"""Hashing throughput (images/s) on a folder of 2,000 JPEGs of 1024 px or more, and the peer.

    .venv/bin/python bench/dedup_hashing.py --make /tmp/hash-bench          # build the folder once
    .venv/bin/python bench/dedup_hashing.py --dir /tmp/hash-bench           # trainwright
    /tmp/peer/venv/bin/python bench/dedup_hashing.py --dir /tmp/hash-bench --peer   # imagededup

The folder is made from scikit-image's photographs: each JPEG is a random crop of one, resized
so its short side is 1024-1400 px, with a random colour gain (so no two files are identical).
trainwright decodes each JPEG once in draft mode (1/2..1/8 scale) and hashes that copy;
imagededup opens the full image. Both use all cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make(folder: Path, n: int = 2000, seed: int = 0) -> None:
    from skimage import data

    names = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina")
    photos = [Image.fromarray(getattr(data, k)()).convert("RGB") for k in names]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        im = photos[i % len(photos)]
        w, h = im.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = im.crop((x, y, x + cw, y + ch))
        short = int(rng.integers(1024, 1401))
        f = short / min(crop.size)
        big = crop.resize((round(crop.width * f), round(crop.height * f)), Image.BILINEAR)
        gain = rng.uniform(0.85, 1.15, 3)
        big = Image.fromarray(np.clip(np.asarray(big) * gain, 0, 255).astype(np.uint8))
        big.save(folder / f"img_{i:05d}.jpg", quality=90)


def ours(folder: Path, workers: int) -> dict:
    from trainwright.dataset.hashing import hash_images

    paths = sorted(folder.glob("*.jpg"))
    t0 = time.perf_counter()
    res = hash_images(paths, ("phash",), False, workers)
    secs = time.perf_counter() - t0
    assert not any(r.error for r in res)
    return {"side": "trainwright phash", "images": len(paths), "seconds": round(secs, 2),
            "images_per_s": round(len(paths) / secs, 1)}  # fmt: skip


def ours_combined(folder: Path, workers: int) -> dict:
    from trainwright.dataset.hashing import hash_images

    paths = sorted(folder.glob("*.jpg"))
    t0 = time.perf_counter()
    hash_images(paths, (), True, workers)
    secs = time.perf_counter() - t0
    return {"side": "trainwright combined features", "images": len(paths),
            "seconds": round(secs, 2), "images_per_s": round(len(paths) / secs, 1)}  # fmt: skip


def peer(folder: Path) -> dict:
    import types

    for name, attr in (
        ("imagededup.methods.cnn", "CNN"),
        ("imagededup.utils.plotter", "plot_duplicates"),
        ("imagededup.utils.models", "CustomModel"),
    ):
        mod = types.ModuleType(name)
        setattr(mod, attr, None)
        sys.modules[name] = mod
    from imagededup.methods import PHash

    n = len(list(folder.glob("*.jpg")))
    t0 = time.perf_counter()
    enc = PHash(verbose=False).encode_images(image_dir=str(folder))
    secs = time.perf_counter() - t0
    return {"side": "imagededup PHash.encode_images", "images": n, "hashed": len(enc),
            "seconds": round(secs, 2), "images_per_s": round(n / secs, 1)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--make", type=Path)
    ap.add_argument("--dir", type=Path)
    ap.add_argument("--peer", action="store_true")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    if args.make:
        make(args.make)
        return 0
    if args.peer:
        print(json.dumps(peer(args.dir)), flush=True)
    else:
        print(json.dumps(ours(args.dir, args.workers)), flush=True)
        print(json.dumps(ours_combined(args.dir, args.workers)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
