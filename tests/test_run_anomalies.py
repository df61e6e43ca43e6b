"""Each loss-anomaly rule on synthetic curves, and normal noisy curves that must stay quiet."""

from __future__ import annotations

import math
import random

import pytest

from trainwright.run.anomalies import detect, epoch_means, with_epochs
from trainwright.run.logs.common import Point


def noisy_decay(
    n: int = 400, noise: float = 0.25, seed: int = 0, per_epoch: int = 20, floor: float = 0.08
) -> list[Point]:
    """Diffusion-like: an exponential fall to a floor, with large multiplicative noise."""
    rng = random.Random(seed)
    pts = []
    for i in range(n):
        base = floor + 0.12 * math.exp(-3 * i / n)
        pts.append(Point(i + 1, base * max(0.05, 1 + rng.gauss(0, noise)), i // per_epoch + 1))
    return pts


def kinds(points: list[Point], **kw: object) -> list[str]:
    return [a.kind for a in detect(points, **kw)]  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(8))
def test_a_normal_noisy_curve_raises_no_alarm(seed: int) -> None:
    assert kinds(noisy_decay(seed=seed)) == []


def test_a_short_run_raises_no_alarm() -> None:
    assert kinds(noisy_decay(n=12, per_epoch=3)) == []


def test_nan_and_inf_are_explosions_at_their_step() -> None:
    pts = noisy_decay(n=100)
    pts[60] = Point(61, float("nan"), pts[60].epoch)
    found = detect(pts)
    assert [a.kind for a in found][:1] == ["nan"] and found[0].at_step == 61
    assert "NaN" in found[0].message or "nan" in found[0].message
    pts[60] = Point(61, float("inf"), 4)
    assert detect(pts)[0].kind == "nan"


def test_spike_six_sigma_above_the_rolling_window() -> None:
    pts = noisy_decay(n=200, noise=0.05)
    pts[150] = Point(151, pts[150].loss * 3, pts[150].epoch)
    found = [a for a in detect(pts) if a.kind == "spike"]
    assert [a.at_step for a in found] == [151]


def test_spike_rule_waits_for_enough_history() -> None:
    pts = noisy_decay(n=200, noise=0.05)
    pts[10] = Point(11, pts[10].loss * 5, 1)  # only 10 values before it: not judged
    assert "spike" not in kinds(pts)


def test_a_flat_stretch_does_not_turn_a_wobble_into_a_spike() -> None:
    pts = [Point(i + 1, 0.1, i // 10 + 1) for i in range(100)]
    pts[80] = Point(81, 0.1005, 9)
    assert "spike" not in kinds(pts)


def test_divergence_a_rising_trend() -> None:
    pts = noisy_decay(n=300, noise=0.1)
    rng = random.Random(3)
    rising = [
        Point(
            p.step,
            p.loss * (1 + 2.0 * max(0, p.step - 200) / 100) * (1 + rng.gauss(0, 0.05)),
            p.epoch,
        )
        for p in pts
    ]
    found = [a for a in detect(rising) if a.kind == "divergence"]
    assert found and found[0].at_step >= 150 and "rising" in found[0].message


def test_plateau_five_epochs_without_improvement() -> None:
    pts = []
    for epoch in range(1, 13):
        level = 0.2 - 0.01 * min(epoch, 6)  # improves until epoch 6, then flat
        pts += [Point((epoch - 1) * 10 + i + 1, level, epoch) for i in range(10)]
    found = [a for a in detect(pts) if a.kind == "plateau"]
    assert len(found) == 1 and found[0].at_step == 120
    assert "5 epochs" in found[0].message


def test_no_plateau_while_the_epoch_means_keep_falling() -> None:
    pts = noisy_decay(n=240, per_epoch=20, floor=0.0)
    means = [m for _, m, _ in epoch_means(pts)]
    assert means[-1] < means[0]
    assert "plateau" not in kinds(pts)


def test_epochs_are_derived_for_logs_without_them() -> None:
    flat = [Point(i + 1, 0.1) for i in range(120)]
    assert kinds(flat) == []  # no epochs known: no plateau judgement
    derived = with_epochs(flat, steps=120, epochs=12)
    assert derived[0].epoch == 1 and derived[-1].epoch == 12
    assert "plateau" in kinds(flat, steps=120, epochs=12)
