"""Exact and near duplicates: hashes, search, clusters (union-find), a suggested keeper each.

Methods: one perceptual hash (`phash`, `dhash`, `whash`, `ahash`, `colorhash`) within a Hamming
threshold, or `combined`, which takes candidates from the phash of six variants of every image
(the border-trimmed whole, its centre and four corner crops) within a loose threshold and keeps
a pair only when the verification stage (trainwright.dataset.verify) says the two show the same
picture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainwright.dataset import search, verify
from trainwright.dataset.hashing import METHODS, ImageHashes, hash_images

ALL_METHODS = (*METHODS, "combined")
DEFAULT_THRESHOLD = {"phash": 10, "dhash": 10, "whash": 10, "ahash": 10, "colorhash": 4}
COMBINED_CANDIDATE_THRESHOLD = 22  # bits, whole image against whole image
COMBINED_CROP_MARGIN = 6  # whole against a crop, or crop against the same crop: 6 bits tighter
# A candidate is kept when its verification score (share of textured cells that agree, see
# verify.py) reaches MIN_SIMILARITY, plus SLOPE for every bit of hash distance beyond EASY_BITS:
# the further apart the hashes, the more agreement it takes. A pair this close on the whole-image
# phash (SURE_DISTANCE) needs no verification. Tuned on bench/dedup_quality.py (both sets).
COMBINED_MIN_SIMILARITY = 0.36
COMBINED_SLOPE = 0.05
COMBINED_EASY_BITS = 10
COMBINED_SURE_DISTANCE = 4


@dataclass
class NearPair:
    a: int
    b: int
    distance: int  # Hamming bits on the method's hash (combined: the closest variant pair)
    similarity: float | None = None  # combined: the verification score


@dataclass
class DedupResult:
    method: str
    threshold: int
    items: list[ImageHashes]
    exact: list[list[int]] = field(default_factory=list)
    near: list[NearPair] = field(default_factory=list)
    clusters: list[list[int]] = field(default_factory=list)
    errors: list[ImageHashes] = field(default_factory=list)


class UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        out: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            out.setdefault(self.find(i), []).append(i)
        return [g for g in out.values() if len(g) > 1]


def _exact_groups(items: list[ImageHashes]) -> list[list[int]]:
    by: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by.setdefault(it.sha256, []).append(i)
    return [g for g in by.values() if len(g) > 1]


def _near_single(
    items: list[ImageHashes], method: str, threshold: int, device: str, workers: int
) -> list[NearPair]:
    h = np.array([it.hashes[method] for it in items], dtype=np.uint64)
    rows = search.near_pairs(h, threshold, device=device, workers=workers)
    return [NearPair(int(i), int(j), int(d)) for i, j, d in rows]


def _near_combined(
    items: list[ImageHashes], threshold: int, device: str, workers: int
) -> list[NearPair]:
    k = len(items[0].variants) if items else 0
    flat = np.array([v for it in items for v in it.variants], dtype=np.uint64)
    owner = np.repeat(np.arange(len(items)), k)
    kind = np.tile(np.arange(k), len(items))
    crop_limit = threshold - COMBINED_CROP_MARGIN
    rows = search.near_pairs(flat, threshold, device=device, workers=workers)
    best: dict[tuple[int, int], int] = {}
    for i, j, d in rows:
        a, b = int(owner[i]), int(owner[j])
        ki, kj = int(kind[i]), int(kind[j])
        if a == b:
            continue
        if ki == 0 and kj == 0:
            pass  # whole against whole: the full threshold
        elif (ki == 0 or kj == 0 or ki == kj) and d <= crop_limit:
            pass  # whole against a crop (one is cut from the other), or the same crop of both
        else:
            continue
        key = (min(a, b), max(a, b))
        if d < best.get(key, 65):
            best[key] = int(d)
    cache: dict[int, np.ndarray] = {}

    def view(i: int) -> np.ndarray:
        if i not in cache:
            thumb = items[i].thumb
            assert thumb is not None
            cache[i] = verify.coarse_views(thumb)
        return cache[i]

    out = []
    for (a, b), d in sorted(best.items()):
        whole = int(np.bitwise_count(np.uint64(items[a].variants[0] ^ items[b].variants[0])))
        if whole <= COMBINED_SURE_DISTANCE:
            out.append(NearPair(a, b, d, None))
            continue
        ta, tb = items[a].thumb, items[b].thumb
        assert ta is not None and tb is not None
        s = verify.similarity(ta, tb, view(a), view(b))
        if s >= COMBINED_MIN_SIMILARITY + COMBINED_SLOPE * max(d - COMBINED_EASY_BITS, 0):
            out.append(NearPair(a, b, d, round(s, 3)))
    return out


def find_duplicates(
    paths: list[Path],
    method: str = "combined",
    threshold: int | None = None,
    device: str = "cpu",
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> DedupResult:
    if method not in ALL_METHODS:
        raise ValueError(f"unknown method {method!r}")
    if threshold is None:
        threshold = (
            COMBINED_CANDIDATE_THRESHOLD if method == "combined" else DEFAULT_THRESHOLD[method]
        )
    combined = method == "combined"
    hashed = hash_images(paths, () if combined else (method,), combined, workers, progress)
    items = [h for h in hashed if h.error is None]
    res = DedupResult(method, threshold, items, errors=[h for h in hashed if h.error])
    res.exact = _exact_groups(items)
    if combined:
        res.near = _near_combined(items, threshold, device, workers)
    else:
        res.near = _near_single(items, method, threshold, device, workers)
    res.clusters = star_clusters(items, res.exact, res.near)
    return res


def star_clusters(
    items: list[ImageHashes], exact: list[list[int]], near: list[NearPair]
) -> list[list[int]]:
    """Union-find groups, split so that every suggested drop is a direct match of its keeper.

    A chain a~b~c does not prove a~c; one false match would otherwise merge two different
    pictures' groups. Within each union-find group the best copy (see keeper) takes its direct
    matches; whatever is left and still matched forms further clusters the same way.
    """
    n = len(items)
    adj: list[set[int]] = [set() for _ in range(n)]
    uf = UnionFind(n)
    for g in exact:
        for a in g:
            adj[a].update(x for x in g if x != a)
            uf.union(g[0], a)
    for p in near:
        adj[p.a].add(p.b)
        adj[p.b].add(p.a)
        uf.union(p.a, p.b)
    out = []
    for comp in uf.groups():
        remaining = set(comp)
        while len(remaining) > 1:
            k, _ = keeper(items, sorted(remaining))
            members = {k} | (adj[k] & remaining)
            out.append(sorted(members))
            remaining -= members
            remaining = {r for r in remaining if adj[r] & remaining}
    return sorted(out, key=lambda g: g[0])


def keeper(items: list[ImageHashes], group: list[int]) -> tuple[int, str]:
    """The copy to keep: the largest resolution (not counting padding; within 2% counts as
    equal); among those, a lossless file over any lossy one; among lossy ones, the higher
    estimated quality, then the most bytes per pixel."""

    def pixels(i: int) -> float:
        return items[i].width * items[i].height * items[i].content

    def rank(i: int) -> tuple[bool, float, float, int]:
        it = items[i]
        quality = 101.0 if it.lossless else (it.quality if it.quality is not None else -1.0)
        return (it.lossless, quality, it.file_size / max(pixels(i), 1), -i)

    top = max(pixels(i) for i in group)
    tied = [i for i in group if pixels(i) >= 0.98 * top]
    best = max(tied, key=rank)
    it = items[best]
    others = [i for i in group if i != best]
    size = f"largest resolution ({it.width}x{it.height})"
    if all(items[i].sha256 == it.sha256 for i in others):
        reason = "identical files; kept the first by name"
    elif len(tied) == 1:
        reason = size
    elif it.lossless and not all(items[i].lossless for i in tied):
        reason = f"{size}, lossless (the others of the same size are lossy copies)"
    elif it.quality is not None and any(
        items[i].quality is not None and items[i].quality != it.quality for i in tied
    ):
        reason = f"{size}, highest quality of the same size (about {it.quality:.0f})"
    else:
        reason = f"{size}, least compressed of the same size"
    return best, reason


def as_json(res: DedupResult, rel: Callable[[str], str]) -> dict[str, Any]:
    items = res.items
    clusters = []
    for g in res.clusters:
        k, why = keeper(items, g)
        clusters.append(
            {
                "keep": rel(items[k].path),
                "drop": [rel(items[i].path) for i in sorted(g) if i != k],
                "reason": why,
            }
        )
    return {
        "method": res.method,
        "threshold": res.threshold,
        "images": len(items),
        "exact": [[rel(items[i].path) for i in g] for g in res.exact],
        "near": [
            {
                "a": rel(items[p.a].path),
                "b": rel(items[p.b].path),
                "distance": p.distance,
                **({"similarity": p.similarity} if p.similarity is not None else {}),
            }
            for p in res.near
        ],
        "clusters": clusters,
        "errors": [{"path": rel(e.path), "error": e.error} for e in res.errors],
    }
