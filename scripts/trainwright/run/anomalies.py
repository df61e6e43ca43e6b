"""Loss anomalies, each a documented rule (resources/training/failure-modes.md explains them).

- nan: a loss that is NaN or infinite (Lightning's check_finite, Megatron's fatal NaN check).
- spike: a loss more than 6 standard deviations above the mean of the 128 losses before it
  (OLMo-core's skip-step rule); active once 32 earlier values exist (OLMo waits for 64; LoRA runs
  are short). The deviation has a floor of 1% of the mean so a perfectly flat stretch does not
  turn a tiny wobble into a "spike".
- divergence: over the last third of the run (at least 30 steps), the least-squares slope of loss
  against step is positive with a t-statistic above 4 and the fitted loss rises by more than 20%
  across that window. Per-step diffusion losses are very noisy; a t-test on the slope ignores
  noise that a "last value above first value" rule would flag.
- plateau: over the last 5 epochs the epoch-mean loss never got more than 1% below the best
  epoch mean before them (Lightning EarlyStopping with patience 5 and a relative min_delta).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass

from trainwright.run.logs.common import Point

SPIKE_WINDOW, SPIKE_MIN, SPIKE_SIGMA = 128, 32, 6.0
DIVERGE_MIN, DIVERGE_T, DIVERGE_RISE = 30, 4.0, 0.20
PLATEAU_EPOCHS, PLATEAU_DELTA = 5, 0.01
MAX_SPIKES = 3


@dataclass
class Anomaly:
    kind: str  # nan | spike | divergence | plateau
    at_step: int
    message: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _finite(x: float) -> bool:
    return not (math.isnan(x) or math.isinf(x))


def find_nan(points: list[Point]) -> Anomaly | None:
    for p in points:
        if not _finite(p.loss):
            return Anomaly(
                "nan",
                p.step,
                f"Loss became {p.loss} at step {p.step}: training has failed (the numbers "
                "blew up). Stop it, lower the learning rate, and resume from the last checkpoint "
                "saved before this step.",
            )
    return None


def find_spikes(points: list[Point]) -> list[Anomaly]:
    out: list[Anomaly] = []
    window: deque[float] = deque(maxlen=SPIKE_WINDOW)
    total = squares = 0.0  # running sums over the window: linear in the run's length
    pushed = 0
    for p in points:
        if not _finite(p.loss):
            continue
        if len(window) >= SPIKE_MIN:
            mean = total / len(window)
            var = max(0.0, squares / len(window) - mean * mean)
            std = max(math.sqrt(var), 0.01 * abs(mean), 1e-12)
            sigmas = (p.loss - mean) / std
            if sigmas > SPIKE_SIGMA:
                out.append(
                    Anomaly(
                        "spike",
                        p.step,
                        f"Loss spiked to {p.loss:.4g} at step {p.step}, {sigmas:.0f} standard "
                        f"deviations above the recent mean of {mean:.4g}. One spike is often "
                        "harmless; repeated spikes mean the learning rate is too high or a "
                        "training image is broken.",
                    )
                )
                if len(out) >= MAX_SPIKES:
                    break
                continue  # like OLMo, a skipped step does not enter the window
        if len(window) == SPIKE_WINDOW:
            total -= window[0]
            squares -= window[0] * window[0]
        window.append(p.loss)
        total += p.loss
        squares += p.loss * p.loss
        pushed += 1
        if pushed % SPIKE_WINDOW == 0:  # re-add exactly now and then, so rounding cannot drift
            total, squares = math.fsum(window), math.fsum(x * x for x in window)
    return out


def find_divergence(points: list[Point]) -> Anomaly | None:
    good = [p for p in points if _finite(p.loss)]
    n = max(DIVERGE_MIN, len(good) // 3)
    if len(good) < DIVERGE_MIN:
        return None
    window = good[-n:]
    xs = [float(p.step) for p in window]
    ys = [p.loss for p in window]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    resid = sum((y - (my + slope * (x - mx))) ** 2 for x, y in zip(xs, ys, strict=True))
    se = math.sqrt(resid / (n - 2) / sxx) if resid > 0 else 0.0
    t = slope / se if se > 0 else (math.inf if slope > 0 else 0.0)
    start_fit = my + slope * (xs[0] - mx)
    end_fit = my + slope * (xs[-1] - mx)
    rise = (end_fit - start_fit) / abs(start_fit) if start_fit else 0.0
    if slope > 0 and t > DIVERGE_T and rise > DIVERGE_RISE:
        return Anomaly(
            "divergence",
            window[0].step,
            f"Loss has been rising since about step {window[0].step} (up {rise:.0%} over the "
            f"last {n} steps): something may be wrong. Usual causes: the learning rate is too "
            "high, or the run is overtraining; compare the checkpoints before the rise.",
        )
    return None


def epoch_means(points: list[Point]) -> list[tuple[int, float, int]]:
    """(epoch, mean loss, last step of the epoch) for each epoch with finite losses."""
    sums: dict[int, list[float]] = {}
    last: dict[int, int] = {}
    for p in points:
        if p.epoch is None or not _finite(p.loss):
            continue
        sums.setdefault(p.epoch, []).append(p.loss)
        last[p.epoch] = max(last.get(p.epoch, 0), p.step)
    return [(e, sum(v) / len(v), last[e]) for e, v in sorted(sums.items())]


def find_plateau(points: list[Point]) -> Anomaly | None:
    means = epoch_means(points)
    if len(means) < PLATEAU_EPOCHS + 1:
        return None
    before = min(m for _, m, _ in means[:-PLATEAU_EPOCHS])
    recent = means[-PLATEAU_EPOCHS:]
    if min(m for _, m, _ in recent) > before * (1 - PLATEAU_DELTA):
        first_epoch = recent[0][0]
        return Anomaly(
            "plateau",
            recent[-1][2],
            f"Loss hasn't improved in {PLATEAU_EPOCHS} epochs (since epoch {first_epoch - 1}): "
            "the model may have stopped learning. If the samples already look right, the run "
            "is done; if not, the learning rate may be too low or the captions too generic.",
        )
    return None


def with_epochs(points: list[Point], steps: int | None, epochs: int | None) -> list[Point]:
    """Fill in epochs from the step count when the log names none (torchtune's DiskLogger)."""
    if any(p.epoch is not None for p in points) or not steps or not epochs:
        return points
    per_epoch = steps / epochs
    return [Point(p.step, p.loss, max(1, math.ceil(p.step / per_epoch))) for p in points]


def detect(
    points: list[Point], steps: int | None = None, epochs: int | None = None
) -> list[Anomaly]:
    points = sorted(points, key=lambda p: p.step)
    found: list[Anomaly] = []
    nan = find_nan(points)
    if nan:
        found.append(nan)
    found += find_spikes(points)
    div = find_divergence(points)
    if div:
        found.append(div)
    plateau = find_plateau(with_epochs(points, steps, epochs))
    if plateau:
        found.append(plateau)
    return sorted(found, key=lambda a: a.at_step)
