"""All-pairs Hamming distance of 64-bit hashes as a Triton kernel (`dedup --device cuda`).

Each program compares a BLOCK_I x BLOCK_J tile of the upper triangle: xor, a SWAR popcount
(shift-and-mask, so it also runs under TRITON_INTERPRET=1 on CPU), compare with the threshold,
and appends the hits to an output buffer through an atomic counter. Hits are rare, so the atomics
cost nothing next to the n^2/2 comparisons. If the buffer overflows the kernel runs again with
the exact size it reported.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from trainwright.errors import TrainwrightError


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.cache
def _kernel(interpret: bool) -> Any:
    import triton
    import triton.language as tl

    @triton.jit
    def hamming_pairs(
        h_ptr,
        n,
        threshold,
        out_ptr,
        count_ptr,
        capacity,
        BLOCK_I: tl.constexpr,
        BLOCK_J: tl.constexpr,
    ):
        pid_i = tl.program_id(0)
        pid_j = tl.program_id(1)
        # Tiles entirely below the diagonal hold no pair i < j.
        if (pid_j + 1) * BLOCK_J > pid_i * BLOCK_I:
            ri = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
            rj = pid_j * BLOCK_J + tl.arange(0, BLOCK_J)
            a = tl.load(h_ptr + ri, mask=ri < n, other=0).to(tl.uint64, bitcast=True)
            b = tl.load(h_ptr + rj, mask=rj < n, other=0).to(tl.uint64, bitcast=True)
            x = a[:, None] ^ b[None, :]
            x = x - ((x >> 1) & 0x5555555555555555)
            x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333)
            x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F
            d = ((x * 0x0101010101010101) >> 56).to(tl.int64)
            ii = ri[:, None] + tl.zeros((BLOCK_I, BLOCK_J), dtype=tl.int64)
            jj = rj[None, :] + tl.zeros((BLOCK_I, BLOCK_J), dtype=tl.int64)
            hit = (d <= threshold) & (ii < jj) & (jj < n)
            ones = tl.full((BLOCK_I, BLOCK_J), 1, dtype=tl.int64)
            slot = tl.atomic_add(
                count_ptr + tl.zeros((BLOCK_I, BLOCK_J), dtype=tl.int64), ones, mask=hit
            )
            ok = hit & (slot < capacity)
            tl.store(out_ptr + slot * 3, ii, mask=ok)
            tl.store(out_ptr + slot * 3 + 1, jj, mask=ok)
            tl.store(out_ptr + slot * 3 + 2, d, mask=ok)

    return hamming_pairs


def _device() -> str:
    try:
        import torch
    except ImportError:
        raise TrainwrightError(
            "--device cuda needs torch and triton: pip install 'trainwright[torch,gpu]'"
        ) from None
    try:
        import triton  # noqa: F401
    except ImportError:
        raise TrainwrightError(
            "--device cuda needs triton: pip install 'trainwright[gpu]'"
        ) from None
    if interpreting():
        return "cpu"
    if not torch.cuda.is_available():
        raise TrainwrightError("--device cuda: no CUDA GPU is visible to torch; use --device cpu")
    return "cuda"


def triton_pairs(
    hashes: np.ndarray, threshold: int, block_i: int = 64, block_j: int = 64, capacity: int = 0
) -> np.ndarray:
    """Every pair (i, j, d), i < j, d <= threshold: (k, 3) int64, sorted; same as search.brute."""
    import torch
    import triton

    device = _device()
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(h)
    if n < 2:
        return np.zeros((0, 3), dtype=np.int64)
    hd = torch.from_numpy(h.view(np.int64).copy()).to(device)
    kernel = _kernel(interpreting())
    grid = (triton.cdiv(n, block_i), triton.cdiv(n, block_j))
    capacity = capacity or max(1024, 4 * n)
    while True:
        out = torch.empty((capacity, 3), dtype=torch.int64, device=device)
        count = torch.zeros(1, dtype=torch.int64, device=device)
        kernel[grid](hd, n, threshold, out, count, capacity, BLOCK_I=block_i, BLOCK_J=block_j)
        found = int(count.item())
        if found <= capacity:
            break
        capacity = found
    rows = out[:found].cpu().numpy()
    if found == 0:
        return np.zeros((0, 3), dtype=np.int64)
    order = np.lexsort((rows[:, 1], rows[:, 0]))
    return rows[order]
