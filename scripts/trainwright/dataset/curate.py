"""Diversity from cheap features, too-similar clusters, and a subset that covers the most ground.

Features per image: its 64-bit phash (layout), colour statistics (mean and spread of lightness
and of two colour-opponent axes on a 64 px copy) and its aspect ratio. The distance between two
images is the mean of three parts, each scaled to 0..1: hash bits / 32, colour distance / 60 and
|log aspect ratio| / log 3. A subset of N is chosen by greedy k-center (each next image is the one
farthest from those already chosen), which spreads the picks over the whole collection.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
from PIL import Image

from trainwright.dataset.dedup import UnionFind
from trainwright.dataset.hashing import to_int
from trainwright.dataset.images import display, open_image, to_rgb, walk

SIMILAR_DISTANCE = 0.18  # below this two images count as "very alike" (same shot, same setup)


@dataclass
class Features:
    rel: str
    phash: int
    colour: np.ndarray  # 6 numbers: mean and std of L, a, b (0..255 scale)
    aspect: float  # width / height
    error: str | None = None


def features_one(path: Path, rel: str) -> Features:
    try:
        im = to_rgb(open_image(path, draft=128))
    except Exception as exc:
        return Features(rel, 0, np.zeros(6), 1.0, f"{type(exc).__name__}: {exc}")
    aspect = im.width / max(im.height, 1)
    small = im.resize((64, 64), Image.Resampling.BOX)
    arr = np.asarray(small, dtype=np.float32)
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    lab = np.stack([(r + g + b) / 3, r - g, (r + g) / 2 - b], axis=-1).reshape(-1, 3)
    colour = np.concatenate([lab.mean(0), lab.std(0)])
    return Features(rel, to_int(imagehash.phash(im)), colour, aspect)


def _job(args: tuple[Path, str]) -> Features:
    return features_one(*args)


def collect(
    folder: Path, workers: int = 1, progress: Callable[[int], None] | None = None
) -> list[Features]:
    jobs = [(e.path, display(e.rel)) for e in walk(folder) if e.kind == "image"]
    if workers > 1 and len(jobs) >= 8:
        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            out = []
            for f in pool.map(_job, jobs, chunksize=8):
                out.append(f)
                if progress:
                    progress(1)
            return out
    out = []
    for j in jobs:
        out.append(_job(j))
        if progress:
            progress(1)
    return out


def distance_matrix(feats: list[Features]) -> np.ndarray:
    h = np.array([f.phash for f in feats], dtype=np.uint64)
    bits = np.bitwise_count(h[:, None] ^ h[None, :]).astype(np.float32) / 32
    c = np.stack([f.colour for f in feats]).astype(np.float32)
    col = np.sqrt(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1)) / 60
    la = np.log([f.aspect for f in feats]).astype(np.float32)
    asp = np.abs(la[:, None] - la[None, :]) / math.log(3)
    return (np.minimum(bits, 1) + np.minimum(col, 1) + np.minimum(asp, 1)) / 3


def k_center(d: np.ndarray, k: int) -> list[int]:
    """Greedy k-center: start at the most typical image, then always add the farthest one."""
    n = len(d)
    if k >= n:
        return list(range(n))
    first = int(d.sum(1).argmin())
    chosen = [first]
    near = d[first].copy()
    for _ in range(k - 1):
        nxt = int(near.argmax())
        chosen.append(nxt)
        near = np.minimum(near, d[nxt])
    return chosen


def similar_clusters(d: np.ndarray, limit: float = SIMILAR_DISTANCE) -> list[list[int]]:
    uf = UnionFind(len(d))
    ii, jj = np.nonzero(np.triu(d < limit, 1))
    for i, j in zip(ii.tolist(), jj.tolist(), strict=True):
        uf.union(i, j)
    return sorted(uf.groups(), key=len, reverse=True)


def analyse(feats: list[Features], target: int | None) -> dict[str, Any]:
    good = [f for f in feats if f.error is None]
    out: dict[str, Any] = {
        "images": len(good),
        "unreadable": [f.rel for f in feats if f.error],
        "target": target,
        "clusters": [],
        "selected": [],
        "left_out": [],
        "coverage": None,
        "spread": None,
    }
    if len(good) < 2:
        out["selected"] = [f.rel for f in good]
        return out
    d = distance_matrix(good)
    iu = np.triu_indices(len(good), 1)
    out["spread"] = round(float(d[iu].mean()), 3)
    out["clusters"] = [[good[i].rel for i in g] for g in similar_clusters(d)]
    k = min(target or len(good), len(good))
    chosen = k_center(d, k)
    out["selected"] = sorted(good[i].rel for i in chosen)
    out["left_out"] = sorted(good[i].rel for i in range(len(good)) if i not in set(chosen))
    # coverage radius: how far the worst-served image is from its nearest pick (0 = all picked)
    out["coverage"] = round(float(d[:, chosen].min(1).max()), 3)
    aspects = [f.aspect for f in good]
    out["aspect_ratios"] = {
        "portrait": sum(a < 0.9 for a in aspects),
        "square": sum(0.9 <= a <= 1.1 for a in aspects),
        "landscape": sum(a > 1.1 for a in aspects),
    }
    return out


def plain_summary(
    res: dict[str, Any], size_range: tuple[int, int] | None, kind: str | None
) -> list[str]:
    n = res["images"]
    lines = [f"{n} readable images."]
    if size_range and kind:
        lo, hi = size_range
        if n < lo:
            lines.append(f"This {kind} LoRA wants {lo}-{hi} images: {lo - n} more would help.")
        elif n > hi:
            lines.append(
                f"This {kind} LoRA works best with {lo}-{hi} images; the {len(res['selected'])} "
                "picked below cover the collection with the least repetition."
            )
        else:
            lines.append(f"That is within the {lo}-{hi} images recommended for this {kind} LoRA.")
    if res["spread"] is not None:
        word = (
            "varied"
            if res["spread"] > 0.35
            else "fairly alike"
            if res["spread"] > 0.22
            else "very alike"
        )
        lines.append(
            f"Overall the images are {word} (mean difference {res['spread']} on a 0-1 scale)."
        )
    for g in res["clusters"][:5]:
        lines.append(f"{len(g)} images look very alike (same shot or setup): {', '.join(g[:6])}")
    if res.get("aspect_ratios"):
        a = res["aspect_ratios"]
        lines.append(
            f"Shapes: {a['portrait']} portrait, {a['square']} square, {a['landscape']} landscape."
        )
    if res["target"] and res["left_out"]:
        lines.append(
            f"Recommended subset of {len(res['selected'])}; {len(res['left_out'])} left out "
            f"(nothing is moved or deleted)."
        )
    return lines
