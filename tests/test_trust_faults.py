"""Issue 13, section 5 (tracebacks and hangs): what the adversarial table cannot show alone.

Two quarantines of one dataset at once, the curve's downsampling, the running-sum spike rule
against the plain one, the content hash never opening special files, and a 1M-step log.
"""

from __future__ import annotations

import fcntl
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from helpers import run_cli
from trainwright.run.anomalies import SPIKE_MIN, SPIKE_SIGMA, SPIKE_WINDOW, find_spikes
from trainwright.run.curve import W, envelope
from trainwright.run.logs.common import Point
from trainwright.state.content_hash import NotRegular, content_hash, file_sha256


def _dataset(folder: Path) -> Path:
    folder.mkdir()
    base = random.Random(1).randbytes(64 * 64 * 3)
    for name in ("keep.png", "copy1.png", "copy2.png"):
        Image.frombytes("RGB", (64, 64), base).save(folder / name)
    (folder / "copy1.txt").write_text("zzq, a caption\n")
    return folder


def test_second_quarantine_waits_then_finds_the_copies_gone(tmp_path: Path) -> None:
    """The loser of two parallel `dedup --quarantine` runs: no traceback, nothing lost, and it
    moves nothing that the winner already moved (the winner is played by this test, holding
    the dataset's lock while it moves the copies away)."""
    ds = _dataset(tmp_path / "ds")
    before = {p.name: p.read_bytes() for p in ds.iterdir()}
    fd = os.open(ds, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        loser = subprocess.Popen(
            [sys.executable, "-m", "trainwright", "dedup", "ds", "--quarantine", "q"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3)  # the loser hashes, then waits on the lock
        (tmp_path / "winner").mkdir()
        for name in ("copy1.png", "copy1.txt", "copy2.png"):
            (ds / name).rename(tmp_path / "winner" / name)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    out, err = loser.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert loser.returncode == 0, (out, err)
    assert "no longer in the folder" in out
    assert sorted(p.name for p in ds.iterdir()) == ["keep.png"]
    assert not (tmp_path / "q").exists() or not any((tmp_path / "q").glob("*.png"))
    moved = {p.name: p.read_bytes() for p in (tmp_path / "winner").iterdir()}
    assert {**moved, "keep.png": (ds / "keep.png").read_bytes()} == before


def test_two_quarantines_at_once_lose_nothing(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds")
    before = {p.name: p.read_bytes() for p in ds.iterdir()}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "trainwright", "dedup", "ds", "--quarantine", "q"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert "Traceback" not in err, err
        assert proc.returncode in (0, 1, 2), (out, err)
        if proc.returncode == 2:
            assert err.startswith("trainwright: error: ") and len(err.splitlines()) == 1
    after = {p.name: p.read_bytes() for p in ds.iterdir()}
    after.update({p.name: p.read_bytes() for p in (tmp_path / "q").glob("*.*") if p.suffix in
                  (".png", ".txt")})  # fmt: skip
    assert after == before
    assert (ds / "keep.png").exists() or (ds / "copy1.png").exists() or (ds / "copy2.png").exists()


def test_undo_after_parallel_quarantine_restores_everything(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds")
    before = {p.name: p.read_bytes() for p in ds.iterdir()}
    proc = run_cli("dedup", "ds", "--quarantine", "q", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (manifest,) = (tmp_path / "q").glob("manifest-*.json")
    undo = run_cli("dedup", "--undo", str(manifest.relative_to(tmp_path)), cwd=tmp_path)
    assert undo.returncode == 0, undo.stderr
    assert {p.name: p.read_bytes() for p in ds.iterdir()} == before


def test_envelope_keeps_every_point_of_a_short_run() -> None:
    xs, ys = [1.0, 2.0, 3.0], [5.0, 4.0, 6.0]
    assert envelope(xs, ys) == [(1.0, 5.0), (2.0, 4.0), (3.0, 6.0)]


def test_envelope_of_a_long_run_is_bounded_and_keeps_the_extremes() -> None:
    n = 1_000_000
    rng = random.Random(3)
    xs = [70 + 630 * i / (n - 1) for i in range(n)]
    ys = [rng.uniform(40, 350) for _ in range(n)]
    ys[123_456] = 1.0  # one spike must still be drawn
    ys[654_321] = 399.0
    pts = envelope(xs, ys)
    assert len(pts) <= 4 * (W + 1)
    drawn = [y for _, y in pts]
    assert min(drawn) == 1.0 and max(drawn) == 399.0
    assert pts[0] == (70.0, ys[0]) and pts[-1][1] == ys[-1]
    assert all(a[0] <= b[0] for a, b in zip(pts, pts[1:], strict=False))
    smooth = envelope(xs, ys, last_only=True)
    assert len(smooth) <= W + 1 and smooth[-1][1] == ys[-1]


def _spikes_plain(points: list[Point]) -> list[tuple[int, int]]:
    """The spike rule as it was written before (the window re-summed at every step)."""
    out, history = [], []
    for p in points:
        if not math.isfinite(p.loss):
            continue
        if len(history) >= SPIKE_MIN:
            window = history[-SPIKE_WINDOW:]
            mean = sum(window) / len(window)
            std = math.sqrt(sum((x - mean) ** 2 for x in window) / len(window))
            std = max(std, 0.01 * abs(mean), 1e-12)
            if (p.loss - mean) / std > SPIKE_SIGMA:
                out.append((p.step, round((p.loss - mean) / std)))
                if len(out) >= 3:
                    break
                continue
        history.append(p.loss)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_running_sum_spikes_match_the_plain_rule(seed: int) -> None:
    rng = random.Random(seed)
    scale = 10.0 ** rng.choice([-3, 0, 3])
    points = []
    for step in range(1, 3001):
        loss = scale * (0.5 + 0.05 * rng.gauss(0, 1))
        if rng.random() < 0.003:
            loss *= rng.choice([3.0, 10.0, float("nan")])
        points.append(Point(step, loss))
    got = [(a.at_step, a.message) for a in find_spikes(points)]
    plain = _spikes_plain(points)
    assert [s for s, _ in got] == [s for s, _ in plain]


def test_file_sha256_never_opens_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(NotRegular):
        file_sha256(fifo)  # would block forever if opened for reading
    link = tmp_path / "zero"
    link.symlink_to("/dev/zero")
    with pytest.raises(NotRegular):
        file_sha256(link)


def test_content_hash_skips_special_files_and_ignores_them(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "a.png").write_bytes(b"a")
    plain = content_hash(ds)
    os.mkfifo(ds / "pipe.png")
    (ds / "zero.png").symlink_to("/dev/zero")
    h = content_hash(ds)
    assert h.digest == plain.digest and h.files == 1
    assert h.skipped == ("pipe.png (FIFO)", "zero.png (device)")


def test_dataset_walk_reports_special_files(tmp_path: Path) -> None:
    from trainwright.dataset.images import walk

    ds = tmp_path / "ds"
    ds.mkdir()
    os.mkfifo(ds / "pipe.png")
    assert [(e.rel, e.kind) for e in walk(ds)] == [("pipe.png", "special")]


def test_long_lines_are_cut_before_any_pattern() -> None:
    from trainwright.run.logs.common import MAX_LINE, complete_lines

    lines, tail = complete_lines("x" * (MAX_LINE * 3) + "\nok\n" + "y" * (MAX_LINE + 5))
    assert [len(x) for x in lines] == [MAX_LINE, 2] and len(tail) == MAX_LINE


def test_tiny_fields_read_as_before() -> None:
    from trainwright.backends.tiny_model.log import fields_of

    line = "step=7/20 epoch=3/10 loss=0.1234 lr=1e-3 path=/a/b=c.safetensors odd: =x y="
    assert fields_of(line) == {
        "step": "7/20",
        "epoch": "3/10",
        "loss": "0.1234",
        "lr": "1e-3",
        "path": "/a/b=c.safetensors",
    }


def _tiny_log(path: Path, steps: int) -> None:
    rng = random.Random(0)
    with open(path, "w") as fh:
        fh.write(f"tiny: start backend=tiny device=cpu epochs=10 steps={steps}\n")
        per = steps // 10
        for s in range(1, steps + 1):
            loss = 0.05 + 0.2 * math.exp(-s / 50_000) + rng.gauss(0, 0.01)
            fh.write(f"tiny: step={s}/{steps} epoch={(s - 1) // per + 1}/10 loss={loss:.5f}\n")


def test_monitor_curve_on_a_long_log(tmp_path: Path) -> None:
    _tiny_log(tmp_path / "train.log", 50_000)
    proc = run_cli("monitor", "--log", "train.log", "--curve", "c.png", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "c.png") as im:
        assert im.size == (720, 400)


@pytest.mark.slow
def test_monitor_curve_on_a_million_step_log(tmp_path: Path) -> None:
    _tiny_log(tmp_path / "train.log", 1_000_000)
    proc = run_cli("monitor", "--log", "train.log", "--curve", "c.png", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "1000000/1000000" in proc.stdout
    assert (tmp_path / "c.png").stat().st_size > 0
