"""All pairs of 64-bit hashes within a Hamming radius, exactly, without an O(n^2) Python loop.

Two exact engines on CPU, both numpy, chosen per call by an estimate of their work:

- `brute`: blocked all-pairs (xor, popcount, compare) on preallocated buffers, one thread per
  core. numpy releases the GIL inside these ufuncs, so threads use every core.
- `mih`: multi-index hashing. The 64 bits are split into m disjoint parts with radii r_i such
  that sum(r_i + 1) > t; if two hashes differ in at most t bits, some part differs in at most r_i
  bits (pigeonhole), so every pair within t shares a bucket pair (k, k ^ mask) in some part with
  popcount(mask) <= r_i. Only those bucket pairs are expanded and verified on the full 64 bits.
  The candidate count of every layout is computed from the bucket counts before anything runs,
  so skewed real hashes fall back to `brute` instead of blowing up.

On CUDA, `trainwright.dataset.triton_hamming` runs the all-pairs comparison as a Triton kernel.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import combinations

import numpy as np

# Rough costs on one core, measured here (bench/dedup_search.py): seconds per pair compared.
BRUTE_COST = 2.9e-9
MIH_COST = 1.6e-8  # per candidate pair verified
MIH_ROUND_PER_ITEM = 2.5e-8  # per item, per (part, mask) round
BRUTE_ONLY_BELOW = 2000
_EMPTY = np.zeros((0, 3), dtype=np.int64)


def as_hashes(values: np.ndarray | list[int]) -> np.ndarray:
    """Any integer array of 64-bit hashes as a contiguous uint64 array."""
    arr = np.asarray(values)
    if arr.dtype == np.int64:
        arr = arr.view(np.uint64)
    elif arr.dtype == object or arr.dtype.kind not in "ui":
        arr = np.array([int(v) & 0xFFFFFFFFFFFFFFFF for v in np.ravel(arr)], dtype=np.uint64)
    return np.ascontiguousarray(arr.astype(np.uint64, copy=False).ravel())


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def _finish(i: np.ndarray, j: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(k, 3) int64 rows (i, j, distance), i < j, unique, sorted."""
    if len(i) == 0:
        return _EMPTY.copy()
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    out = np.stack([lo, hi, d], axis=1).astype(np.int64)
    out = np.unique(out, axis=0)
    return out


# ---------------------------------------------------------------- brute force (blocked numpy)


def _brute_rows(h: np.ndarray, t: int, rows: range, block: int, cols: int) -> list[np.ndarray]:
    n = len(h)
    buf = np.empty((block, cols), dtype=np.uint64)
    cnt = np.empty((block, cols), dtype=np.uint8)
    hit = np.empty((block, cols), dtype=bool)
    found = []
    for r0 in rows:
        r1 = min(r0 + block, n)
        a = h[r0:r1, None]
        for c0 in range(r0, n, cols):
            c1 = min(c0 + cols, n)
            rb, cb = r1 - r0, c1 - c0
            x, c, m = buf[:rb, :cb], cnt[:rb, :cb], hit[:rb, :cb]
            np.bitwise_xor(a, h[None, c0:c1], out=x)
            np.bitwise_count(x, out=c)
            np.less_equal(c, t, out=m)
            ii, jj = np.nonzero(m)
            if len(ii):
                gi, gj = ii + r0, jj + c0
                keep = gj > gi
                found.append(np.stack([gi[keep], gj[keep], c[ii, jj][keep]], axis=1))
    return found


def brute_pairs(hashes: np.ndarray, threshold: int, workers: int | None = None) -> np.ndarray:
    """Every pair (i, j, d) with i < j and Hamming distance d <= threshold, by blocked all-pairs."""
    h = as_hashes(hashes)
    n = len(h)
    if n < 2:
        return _EMPTY.copy()
    block, cols = 256, 8192
    starts = list(range(0, n, block))
    workers = max(1, min(workers or default_workers(), len(starts)))
    # Interleave row blocks so early (long) rows are shared evenly between threads.
    shares = [starts[w::workers] for w in range(workers)]
    if workers == 1:
        parts = _brute_rows(h, threshold, shares[0], block, cols)
    else:
        with ThreadPoolExecutor(workers) as pool:
            parts = [
                p
                for res in pool.map(lambda s: _brute_rows(h, threshold, s, block, cols), shares)
                for p in res
            ]
    if not parts:
        return _EMPTY.copy()
    allp = np.concatenate(parts).astype(np.int64)
    return _finish(allp[:, 0], allp[:, 1], allp[:, 2])


# ---------------------------------------------------------------- multi-index hashing


@dataclass(frozen=True)
class Part:
    shift: int
    bits: int
    radius: int  # -1: not searched


@dataclass(frozen=True)
class Plan:
    engine: str  # "brute" or "mih"
    parts: tuple[Part, ...]
    est_seconds: float
    candidates: int


@functools.lru_cache(maxsize=64)
def _masks(bits: int, radius: int) -> np.ndarray:
    out = [0]
    for r in range(1, radius + 1):
        for combo in combinations(range(bits), r):
            out.append(sum(1 << b for b in combo))
    return np.array(out, dtype=np.int64)


def _layout(t: int, m: int) -> tuple[Part, ...]:
    """m parts covering 64 bits; radii with sum(r_i + 1) >= t + 1, as even as possible."""
    sizes = [64 // m + (1 if i < 64 % m else 0) for i in range(m)]
    need = t + 1
    radii = [-1] * m
    for i in range(m):  # base: as many parts at radius floor(need/m) - 1 ...
        radii[i] = need // m - 1
    for i in range(need % m):
        radii[i] += 1
    parts, shift = [], 0
    for s, r in zip(sizes, radii, strict=True):
        parts.append(Part(shift, s, r))
        shift += s
    return tuple(parts)


def _keys(h: np.ndarray, part: Part) -> np.ndarray:
    return ((h >> np.uint64(part.shift)) & np.uint64((1 << part.bits) - 1)).astype(np.int64)


def _estimate(h: np.ndarray, parts: tuple[Part, ...], rng: np.random.Generator) -> int:
    """Candidate pairs a layout would verify, from its bucket counts and a sample of queries."""
    sample = h if len(h) <= 512 else h[rng.choice(len(h), 512, replace=False)]
    scale = len(h) / len(sample)
    total = 0.0
    for p in parts:
        if p.radius < 0:
            continue
        counts = np.bincount(_keys(h, p), minlength=1 << p.bits).astype(np.float64)
        sk = _keys(sample, p)
        masks = _masks(p.bits, p.radius)
        per_query = counts[sk[:, None] ^ masks[None, :]].sum()
        total += per_query * scale / 2
    return int(total)


def plan(hashes: np.ndarray, threshold: int, workers: int | None = None) -> Plan:
    """Pick the cheaper exact engine for these hashes (estimated from bucket counts)."""
    h = as_hashes(hashes)
    n = len(h)
    w = workers or default_workers()
    brute_pairs_n = n * (n - 1) // 2
    best = Plan("brute", (), brute_pairs_n * BRUTE_COST / w, brute_pairs_n)
    if n < BRUTE_ONLY_BELOW or threshold >= 32:
        return best
    rng = np.random.default_rng(0)
    for m in (3, 4, 5, 6, 8):
        parts = _layout(threshold, m)
        if max(p.bits for p in parts) > 22:
            continue
        rounds = sum(len(_masks(p.bits, p.radius)) for p in parts if p.radius >= 0)
        if rounds > 20000 or rounds * n * MIH_ROUND_PER_ITEM / w >= best.est_seconds:
            continue
        cand = _estimate(h, parts, rng)
        secs = (cand * MIH_COST + rounds * (n * MIH_ROUND_PER_ITEM + 1e-4)) / w
        if secs < best.est_seconds:
            best = Plan("mih", parts, secs, cand)
    return best


def _chunks(sizes: np.ndarray, limit: int) -> Iterator[tuple[int, int]]:
    """Split bucket pairs into runs whose expanded sizes sum to about `limit`."""
    csum = np.cumsum(sizes)
    start, n, base = 0, len(sizes), 0
    while start < n:
        end = int(np.searchsorted(csum, base + limit, side="right"))
        end = max(end, start + 1)
        end = min(end, n)
        yield start, end
        base = int(csum[end - 1])
        start = end


def _mih_mask(
    hs: np.ndarray,
    keys: np.ndarray,
    order: np.ndarray,
    starts: np.ndarray,
    counts: np.ndarray,
    mask: int,
    t: int,
    limit: int,
) -> list[np.ndarray]:
    """Pairs between items in bucket k and bucket k ^ mask (items sorted by bucket key).

    Each item's partners are one contiguous run of the sorted array, so a candidate costs one
    repeat, one contiguous gather, xor, popcount and compare.
    """
    pos = np.arange(len(keys), dtype=np.int64)
    if mask == 0:
        base = pos + 1
        cnt = starts[keys] + counts[keys] - base
    else:
        partner = keys ^ mask
        cnt = np.where(partner > keys, counts[partner], 0)
        base = starts[partner]
    sel = np.flatnonzero(cnt > 0)
    if len(sel) == 0:
        return []
    cnt, base, ha = cnt[sel], base[sel], hs[sel]
    found = []
    for a0, a1 in _chunks(cnt, limit):
        cc = cnt[a0:a1]
        total = int(cc.sum())
        off = np.cumsum(cc) - cc
        ib = np.repeat(base[a0:a1] - off, cc)
        ib += np.arange(total, dtype=np.int64)
        x = np.repeat(ha[a0:a1], cc)
        np.bitwise_xor(x, hs[ib], out=x)
        d = np.bitwise_count(x)
        hit = np.flatnonzero(d <= t)
        if len(hit):
            ia = sel[a0 + np.searchsorted(off, hit, side="right") - 1]
            found.append(np.stack([order[ia], order[ib[hit]], d[hit].astype(np.int64)], axis=1))
    return found


def mih_pairs(
    hashes: np.ndarray,
    threshold: int,
    parts: tuple[Part, ...] | None = None,
    workers: int | None = None,
    chunk: int = 1 << 21,
) -> np.ndarray:
    """Every pair (i, j, d) with i < j and d <= threshold, by multi-index hashing (exact)."""
    h = as_hashes(hashes)
    n = len(h)
    if n < 2:
        return _EMPTY.copy()
    parts = parts or _layout(threshold, 4)
    covered = sum(p.bits for p in parts)
    if covered != 64 or sum(p.radius + 1 for p in parts) < threshold + 1:
        raise ValueError("parts must cover 64 bits with sum(radius + 1) > threshold")
    workers = workers or default_workers()
    jobs = []
    tables = []
    for p in parts:
        if p.radius < 0:
            continue
        keys = _keys(h, p)
        order = np.argsort(keys, kind="stable")
        counts = np.bincount(keys, minlength=1 << p.bits).astype(np.int64)
        starts = np.cumsum(counts) - counts
        tables.append((h[order], keys[order], order, starts, counts))
        ti = len(tables) - 1
        jobs += [(ti, int(m)) for m in _masks(p.bits, p.radius)]

    def run(job: tuple[int, int]) -> list[np.ndarray]:
        hs, skeys, order, starts, counts = tables[job[0]]
        return _mih_mask(hs, skeys, order, starts, counts, job[1], threshold, chunk)

    if workers == 1:
        res = [run(j) for j in jobs]
    else:
        with ThreadPoolExecutor(workers) as pool:
            res = list(pool.map(run, jobs))
    found = [f for r in res for f in r]
    if not found:
        return _EMPTY.copy()
    allp = np.concatenate(found)
    return _finish(allp[:, 0], allp[:, 1], allp[:, 2])


# ---------------------------------------------------------------- entry point


def near_pairs(
    hashes: np.ndarray,
    threshold: int,
    *,
    device: str = "cpu",
    engine: str = "auto",
    workers: int | None = None,
) -> np.ndarray:
    """All pairs within `threshold` bits: (k, 3) int64 rows (i, j, distance), i < j, sorted.

    device "cuda" runs the Triton kernel; on CPU, engine "auto" picks brute force or
    multi-index hashing from an estimate of their work (both exact, same result).
    """
    if not 0 <= threshold <= 64:
        raise ValueError("threshold must be between 0 and 64 bits")
    h = as_hashes(hashes)
    if device == "cuda":
        from trainwright.dataset.triton_hamming import triton_pairs

        return triton_pairs(h, threshold)
    if engine == "brute":
        return brute_pairs(h, threshold, workers)
    if engine == "mih":
        return mih_pairs(h, threshold, workers=workers)
    p = plan(h, threshold, workers)
    if p.engine == "mih":
        return mih_pairs(h, threshold, p.parts, workers)
    return brute_pairs(h, threshold, workers)


def expected_random_pairs(n: int, threshold: int) -> float:
    """How many pairs of n uniform random 64-bit hashes fall within `threshold` by chance."""
    p = sum(math.comb(64, k) for k in range(threshold + 1)) / 2.0**64
    return n * (n - 1) / 2 * p
