"""The second stage of `combined`: do two candidate images show the same picture?

Each image is kept as a small luminance thumbnail with its uniform border trimmed (padding and
letterboxing gone). A pair is checked in two steps:

1. Coarse alignment: the whole of one image is correlated with crops of the other (four scales
   on each axis, three positions each, 24 x 24 px); the best crop says where a cropped copy sits.
2. Local agreement: both aligned images are cut into a 4 x 4 grid of cells (64 x 64 px in all);
   each cell of one is searched within +-4 px in the other by normalised cross-correlation. The
   score is the share of cells with texture (std >= CELL_MIN_STD grey levels) that match
   (correlation >= CELL_MATCH).

Normalising each cell makes the score blind to brightness, contrast, colour and grayscale
changes; the shift search absorbs small rotations and imperfect alignment; a watermark or a
logo spoils only the cells it covers. Two different photographs rarely agree cell by cell even
when their overall layout (which fools a global hash) is alike.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

COARSE = 24  # side of the coarse-alignment views
SCALES = (1.0, 0.9, 0.8, 0.7)
SIDE, CELL, SHIFT = 64, 16, 4
CELL_MIN_STD = 4.0
CELL_MATCH = 0.6
MIN_CELLS = 4  # fewer textured cells than this: no verdict (flat images), score 0


def _norm(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.float32).ravel()
    v = v - v.mean()
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-6 else v


def _windows(size: int) -> list[tuple[float, float]]:
    out = []
    for s in SCALES:
        span = size * s
        starts = [0.0] if s == 1.0 else [0.0, (size - span) / 2, size - span]
        out += [(a, a + span) for a in starts]
    return out


@functools.lru_cache(maxsize=8)
def boxes(size: int) -> list[tuple[float, float, float, float]]:
    win = _windows(size)
    return [(x0, y0, x1, y1) for (x0, x1) in win for (y0, y1) in win]


def _resize(thumb: np.ndarray, box: tuple[float, ...], side: int) -> np.ndarray:
    im = Image.fromarray(thumb)
    return np.asarray(im.resize((side, side), Image.Resampling.BOX, box=box), dtype=np.float32)


def coarse_views(thumb: np.ndarray) -> np.ndarray:
    """(k, COARSE*COARSE) normalised crops of a thumbnail; row 0 is the whole image."""
    return np.stack([_norm(_resize(thumb, b, COARSE)) for b in boxes(thumb.shape[0])])


def _cell_windows() -> np.ndarray:
    starts = np.arange(0, SIDE, CELL)
    return starts[:, None] + np.arange(2 * SHIFT + 1)[None, :]


def cell_scores(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell of x: best correlation within +-SHIFT px in y, and its texture (min std)."""
    g = SIDE // CELL
    cx = x.reshape(g, CELL, g, CELL).transpose(0, 2, 1, 3).reshape(g * g, CELL, CELL)
    cx = cx - cx.mean(axis=(1, 2), keepdims=True)
    sx = cx.std(axis=(1, 2))
    win = sliding_window_view(np.pad(y, SHIFT, mode="edge"), (CELL, CELL))
    r = _cell_windows()
    wy = win[r[:, None, :, None], r[None, :, None, :]]  # (g, g, 2S+1, 2S+1, CELL, CELL)
    wy = wy.reshape(g * g, -1, CELL, CELL)
    wy = wy - wy.mean(axis=(2, 3), keepdims=True)
    sy = wy.std(axis=(2, 3))
    cov = np.einsum("kij,ksij->ks", cx, wy) / (CELL * CELL)
    ncc = cov / np.maximum(sx[:, None] * sy, 1e-6)
    return ncc.max(axis=1), np.minimum(sx, sy.max(axis=1))


def similarity(ta: np.ndarray, tb: np.ndarray, va: np.ndarray, vb: np.ndarray) -> float:
    """Share of textured cells that agree after alignment, 0..1 (thumbnails + coarse views)."""
    s_ab, s_ba = va @ vb[0], vb @ va[0]
    if s_ab.max() >= s_ba.max():
        x = _resize(ta, boxes(ta.shape[0])[int(s_ab.argmax())], SIDE)
        y = _resize(tb, (0, 0, tb.shape[1], tb.shape[0]), SIDE)
    else:
        x = _resize(tb, boxes(tb.shape[0])[int(s_ba.argmax())], SIDE)
        y = _resize(ta, (0, 0, ta.shape[1], ta.shape[0]), SIDE)
    score, texture = cell_scores(x, y)
    textured = texture >= CELL_MIN_STD
    if textured.sum() < MIN_CELLS:
        return 0.0
    return float((score[textured] >= CELL_MATCH).mean())
