"""Search time for 64-bit hashes with 1% planted near copies at threshold 10, and the peer.

    .venv/bin/python bench/dedup_search.py --n 10000 --n 100000 --n 1000000
    /tmp/peer/venv/bin/python bench/dedup_search.py --peer --n 10000   # imagededup, own venv

trainwright's exact search (trainwright.dataset.search) against imagededup's own search
(`brute_force_cython`, its default on Unix, and `bktree`) on the same hashes: same seed, same
planted pairs. Reports seconds, pairs found, whether every planted pair was found, and the
pairs found as a digest so the two sides can be compared for identical results. imagededup
imports torchvision at import time; its hashing-only path runs here with the CNN modules stubbed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

import numpy as np


def make_hashes(n: int, seed: int = 0, threshold: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """n random hashes, 1% of them replaced by copies of others with <= threshold bits flipped."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64, n, dtype=np.uint64)
    k = max(1, n // 100)
    src = rng.choice(n - k, k, replace=False)
    for i, s in enumerate(src):
        flips = rng.choice(64, rng.integers(0, threshold + 1), replace=False)
        v = int(h[s])
        for b in flips:
            v ^= 1 << int(b)
        h[n - k + i] = v
    planted = np.stack([src, np.arange(n - k, n)], axis=1)
    return h, planted


def digest(pairs: set[tuple[int, int]]) -> str:
    return hashlib.sha256(json.dumps(sorted(pairs)).encode()).hexdigest()[:16]


def ours(n: int, threshold: int, engine: str) -> dict:
    from trainwright.dataset import search

    h, planted = make_hashes(n, threshold=threshold)
    t0 = time.perf_counter()
    plan = search.plan(h, threshold) if engine == "auto" else None
    rows = search.near_pairs(h, threshold, engine=engine)
    secs = time.perf_counter() - t0
    found = {(int(i), int(j)) for i, j, _ in rows}
    return {
        "side": f"trainwright {engine}" + (f" ({plan.engine})" if plan else ""),
        "n": n,
        "seconds": round(secs, 2),
        "pairs": len(found),
        "all_planted_found": all((int(a), int(b)) in found for a, b in planted),
        "digest": digest(found),
    }


def peer(n: int, threshold: int, search_method: str) -> dict:
    import types

    for name, attr in (
        ("imagededup.methods.cnn", "CNN"),
        ("imagededup.utils.plotter", "plot_duplicates"),
        ("imagededup.utils.models", "CustomModel"),
    ):
        mod = types.ModuleType(name)
        setattr(mod, attr, None)
        sys.modules[name] = mod
    from imagededup.handlers.search.retrieval import HashEval
    from imagededup.methods.hashing import Hashing

    h, planted = make_hashes(n, threshold=threshold)
    hexes = {str(i): f"{int(v):016x}" for i, v in enumerate(h)}
    t0 = time.perf_counter()
    res = HashEval(
        test=hexes,
        queries=hexes,
        distance_function=Hashing.hamming_distance,
        threshold=threshold,
        search_method=search_method,
        verbose=False,
    ).retrieve_results(scores=True)
    secs = time.perf_counter() - t0
    found = {(min(int(q), int(d)), max(int(q), int(d))) for q, hits in res.items() for d, _ in hits}
    return {
        "side": f"imagededup {search_method}",
        "n": n,
        "seconds": round(secs, 2),
        "pairs": len(found),
        "all_planted_found": all((int(a), int(b)) in found for a, b in planted),
        "digest": digest(found),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, action="append", required=True)
    ap.add_argument("--threshold", type=int, default=10)
    ap.add_argument("--peer", action="store_true", help="run imagededup (in its own venv)")
    ap.add_argument("--peer-method", default="brute_force_cython")
    ap.add_argument("--engine", default="auto", choices=["auto", "brute", "mih"])
    args = ap.parse_args()
    for n in args.n:
        r = (
            peer(n, args.threshold, args.peer_method)
            if args.peer
            else ours(n, args.threshold, args.engine)
        )
        print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
