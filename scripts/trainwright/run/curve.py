"""The loss curve as a PNG, drawn with Pillow (a core dependency; matplotlib is not needed for
one line chart): raw losses in light grey, a smoothed line in blue, anomalies marked in red."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from trainwright.run.anomalies import Anomaly
from trainwright.run.logs.common import Point
from trainwright.state.safe_paths import png_info

W, H = 720, 400
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 50
BG, AXIS, GRID = (255, 255, 255), (60, 60, 60), (230, 230, 230)
RAW, SMOOTH, BAD = (190, 190, 190), (30, 90, 200), (210, 40, 40)


def _ema(values: list[float], alpha: float) -> list[float]:
    out, acc = [], values[0]
    for v in values:
        acc = alpha * v + (1 - alpha) * acc
        out.append(acc)
    return out


def _finite(v: float) -> bool:
    return not (math.isnan(v) or math.isinf(v))


def envelope(
    xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray, last_only: bool = False
) -> list[tuple[float, float]]:
    """The polyline to draw for points already in pixels, xs non-decreasing: every point when
    there are few; else per pixel column its first, lowest, highest and last value (or only
    the last, for the smoothed line). The chart looks the same as drawing every point, and a
    million-step log costs no more to draw than one of a thousand steps."""
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if len(x) <= 2 * W:
        return list(zip(x.tolist(), y.tolist(), strict=True))
    col = np.floor(x).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
    ends = np.r_[starts[1:], len(col)] - 1
    cx = col[starts].astype(np.float64)
    if last_only:
        return list(zip(cx.tolist(), y[ends].tolist(), strict=True))
    lo, hi = np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
    quad = np.stack([y[starts], lo, hi, y[ends]], axis=1).ravel()
    return list(zip(np.repeat(cx, 4).tolist(), quad.tolist(), strict=True))


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def draw(points: list[Point], path: Path, title: str, anomalies: Sequence[Anomaly] = ()) -> Path:
    """Write the chart to `path` (a temp file renamed into place) and return it."""
    img = Image.new("RGB", (W, H), BG)
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    d.text((LEFT, 12), title, fill=AXIS, font=font)
    finite = [p for p in points if _finite(p.loss)]
    x0, x1, y0, y1 = LEFT, W - RIGHT, H - BOTTOM, TOP
    d.rectangle((x0, y1, x1, y0), outline=AXIS)
    if not finite:
        d.text((x0 + 10, y1 + 10), "no loss values yet", fill=AXIS, font=font)
        return _save(img, path)
    steps = [p.step for p in points]
    steps_f = [p.step for p in finite]
    smin, smax = min(steps), max(steps)
    if smax == smin:
        smax = smin + 1
    values = sorted(p.loss for p in finite)
    lo = values[0]
    hi = values[min(len(values) - 1, int(len(values) * 0.99))]  # spikes clip to the top edge
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad

    def sx(step: float) -> float:
        return x0 + (step - smin) / (smax - smin) * (x1 - x0)

    def sy(v: float) -> float:
        return y0 - (min(max(v, lo), hi) - lo) / (hi - lo) * (y0 - y1)

    for i in range(5):
        v = lo + (hi - lo) * i / 4
        y = sy(v)
        d.line((x0, y, x1, y), fill=GRID)
        d.text((6, y - 6), _fmt(v), fill=AXIS, font=font)
        s = smin + (smax - smin) * i / 4
        d.text((sx(s) - 10, y0 + 6), str(int(round(s))), fill=AXIS, font=font)
    d.text(((x0 + x1) // 2 - 10, H - 20), "step", fill=AXIS, font=font)
    xs = x0 + (np.array(steps_f, dtype=np.float64) - smin) / (smax - smin) * (x1 - x0)
    losses = [p.loss for p in finite]

    def ys(vals: Sequence[float]) -> np.ndarray:
        v = np.clip(np.asarray(vals, dtype=np.float64), lo, hi)
        return y0 - (v - lo) / (hi - lo) * (y0 - y1)

    raw = envelope(xs, ys(losses))
    if len(raw) > 1:
        d.line(raw, fill=RAW, width=1)
    smooth = _ema(losses, 2 / (min(50, max(2, len(finite) // 10)) + 1))
    pts = envelope(xs, ys(smooth), last_only=True)
    if len(pts) > 1:
        d.line(pts, fill=SMOOTH, width=2)
    else:
        d.ellipse((pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2), fill=SMOOTH)
    for x in sorted({round(sx(p.step)) for p in points if not _finite(p.loss)}):
        d.text((x - 3, y1 + 2), "x", fill=BAD, font=font)
    for a in anomalies:
        x = sx(a.at_step)
        d.line((x, y1, x, y0), fill=BAD, width=1)
        d.text((min(x + 3, x1 - 60), y1 + 14), a.kind, fill=BAD, font=font)
    return _save(img, path)


def _save(img: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    img.save(tmp, format="PNG", pnginfo=png_info("loss curve"))
    tmp.replace(path)
    return path
