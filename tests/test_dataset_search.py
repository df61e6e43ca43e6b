"""The exact Hamming search: brute force, multi-index hashing and the Triton kernel agree."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainwright.dataset import search


def naive(h: np.ndarray, t: int) -> np.ndarray:
    rows = [
        (i, j, bin(int(h[i]) ^ int(h[j])).count("1"))
        for i, j in itertools.combinations(range(len(h)), 2)
    ]
    rows = [r for r in rows if r[2] <= t]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def planted(n: int, seed: int = 0, t: int = 10) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64, n, dtype=np.uint64)
    k = n // 10
    for i in range(k):
        v = int(h[i])
        for b in rng.choice(64, rng.integers(0, t + 1), replace=False):
            v ^= 1 << int(b)
        h[n - k + i] = v
    return h


@pytest.mark.parametrize("t", [0, 3, 10, 20])
def test_engines_match_the_naive_answer(t: int) -> None:
    h = planted(400, seed=t)
    want = naive(h, t)
    assert np.array_equal(search.brute_pairs(h, t, workers=2), want)
    assert np.array_equal(search.mih_pairs(h, t, workers=2), want)
    for m in (3, 5, 6, 8) if t <= 10 else (8,):
        assert np.array_equal(search.mih_pairs(h, t, search._layout(t, m), workers=1), want)
    assert np.array_equal(search.near_pairs(h, t), want)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=60),
    st.integers(0, 64),
)
def test_any_hashes_any_threshold(values: list[int], t: int) -> None:
    h = np.array(values, dtype=np.uint64)
    want = naive(h, t)
    assert np.array_equal(search.near_pairs(h, t, engine="brute"), want)
    if t <= 16:  # mih's mask count grows fast with the radius; auto never picks it above this
        assert np.array_equal(search.near_pairs(h, t, engine="mih"), want)


def test_duplicate_hashes_and_tiny_inputs() -> None:
    h = np.array([5, 5, 5, 2**63, 2**63 + 1], dtype=np.uint64)
    want = naive(h, 1)
    assert np.array_equal(search.mih_pairs(h, 1), want)
    assert len(search.near_pairs(np.array([], dtype=np.uint64), 10)) == 0
    assert len(search.near_pairs(np.array([7], dtype=np.uint64), 10)) == 0
    signed = np.array([-1, -2], dtype=np.int64)  # same bits as 2**64-1, 2**64-2
    assert search.near_pairs(signed, 1).tolist() == [[0, 1, 1]]


def test_the_planner_prefers_mih_for_many_random_hashes() -> None:
    h = np.random.default_rng(3).integers(0, 2**64, 30000, dtype=np.uint64)
    p = search.plan(h, 10)
    assert p.engine == "mih" and p.candidates < 30000**2 / 2 / 20
    assert search.plan(h[:100], 10).engine == "brute"
    clumped = np.zeros(30000, dtype=np.uint64)  # every hash alike: MIH cannot prune
    assert search.plan(clumped, 10).engine == "brute"


def test_bad_threshold() -> None:
    with pytest.raises(ValueError):
        search.near_pairs(np.zeros(3, dtype=np.uint64), 65)


KERNEL_CHECK = """
import json, numpy as np
from trainwright.dataset import search, triton_hamming
rng = np.random.default_rng(7)
h = rng.integers(0, 2**64, 150, dtype=np.uint64)
h[100:130] = h[:30] ^ np.uint64(0b10110)
out = {}
for t in (0, 5, 26):
    got = triton_hamming.triton_pairs(h, t, block_i=32, block_j=32, capacity=8)
    out[t] = [np.array_equal(got, search.brute_pairs(h, t)), len(got)]
print(json.dumps(out))
"""


def test_triton_kernel_matches_numpy_under_the_interpreter() -> None:
    pytest.importorskip("triton")
    pytest.importorskip("torch")
    proc = subprocess.run(
        [sys.executable, "-c", KERNEL_CHECK],
        env={**os.environ, "TRITON_INTERPRET": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(same for same, _ in res.values()), res
    assert res["5"][1] >= 30 and res["26"][1] > res["5"][1]  # capacity 8 forced a rerun


def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    pytest.importorskip("torch")
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("interpreter mode runs the kernel on CPU")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    from trainwright.errors import TrainwrightError

    with pytest.raises(TrainwrightError, match="no CUDA GPU"):
        search.near_pairs(np.zeros(4, dtype=np.uint64), 3, device="cuda")
