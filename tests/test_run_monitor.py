"""`trainwright monitor`: the stable JSON, progress.md in the seed's format, the loss-curve PNG,
--follow on a live log, anomalies in the exit code, and bad requests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from helpers import REPO, assert_one_line_error, run_cli
from support.tiny_project import make_project
from trainwright.run.anomalies import Anomaly
from trainwright.run.curve import draw
from trainwright.run.logs.common import Point

LOGS = REPO / "tests" / "data" / "logs"
KEYS = {
    "format",
    "epoch",
    "epochs",
    "step",
    "steps",
    "loss",
    "loss_start",
    "elapsed_s",
    "eta_s",
    "vram_used_gib",
    "anomalies",
    "status",
}
NO_GPU = {"TRAINWRIGHT_NVIDIA_SMI": "", "PATH": "/usr/bin:/bin"}


def tiny_lines(n: int, nan_at: int | None = None) -> list[str]:
    out = [
        f"tiny: start backend=tiny device=cpu images=4 batch=2 accumulation=1 epochs=5 steps={n}"
    ]
    for i in range(1, n + 1):
        loss = "nan" if i == nan_at else f"{0.2 - i * 0.001:.6f}"
        out.append(
            f"tiny: step={i}/{n} epoch={(i - 1) * 5 // n + 1}/5 loss={loss} lr=0.001 "
            f"batch=2 mem_mib=300.0 elapsed_s={i * 0.5:.1f}"
        )
    return out


def test_log_mode_json_keys_and_values(tmp_path: Path) -> None:
    proc = run_cli("monitor", "--log", str(LOGS / "kohya-train.log"), "--json", env=NO_GPU)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert KEYS <= set(out)
    assert out["format"] == "kohya" and out["status"] == "complete"
    assert (out["epoch"], out["epochs"], out["step"], out["steps"]) == (4, 4, 100, 100)
    assert out["loss_start"] == pytest.approx(0.142) and out["eta_s"] == 0.0
    assert out["vram_used_gib"] is None and out["anomalies"] == []


def test_log_mode_torchtune_with_epochs_given(tmp_path: Path) -> None:
    proc = run_cli(
        "monitor",
        "--log",
        str(LOGS / "torchtune-stdout.log"),
        "--epochs",
        "4",
        "--json",
        env=NO_GPU,
    )
    out = json.loads(proc.stdout)
    assert (out["epoch"], out["epochs"], out["step"], out["steps"]) == (2, 4, 40, 80)
    assert out["status"] == "running" and out["eta_s"] == pytest.approx(
        100.0, abs=2
    )  # tqdm: whole s


def test_log_mode_draws_the_curve_and_reports_nan(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("\n".join(tiny_lines(60, nan_at=50)) + "\n")
    png = tmp_path / "curve.png"
    proc = run_cli("monitor", "--log", str(log), "--curve", str(png), env=NO_GPU)
    assert proc.returncode == 1 and "nan at step 50" in proc.stdout
    with Image.open(png) as im:
        assert im.size == (720, 400)
        px = im.convert("RGB").tobytes()
    red = sum(1 for i in range(0, len(px), 3) if px[i] > 180 and px[i + 1] < 80 and px[i + 2] < 80)
    assert red > 50  # the anomaly marker


def test_curve_drawing_on_edge_cases(tmp_path: Path) -> None:
    draw([], tmp_path / "empty.png", "nothing yet")
    draw([Point(1, 0.5)], tmp_path / "one.png", "one point")
    spiky = [Point(i, 0.1 + (5.0 if i == 30 else 0.0)) for i in range(1, 60)]
    draw(spiky, tmp_path / "spiky.png", "spike", [Anomaly("spike", 30, "x")])
    for name in ("empty", "one", "spiky"):
        with Image.open(tmp_path / f"{name}.png") as im:
            im.load()


def test_project_mode_writes_progress_md_in_the_seed_format(tmp_path: Path) -> None:
    g = make_project(tmp_path)
    folder = g.project_dir("demo")
    (folder / "train.log").write_text("\n".join(tiny_lines(50)[:41]) + "\n")  # 40 of 50
    proc = run_cli("--grimoire", str(g.root), "monitor", "demo", "--json", env=NO_GPU)
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and KEYS <= set(out)
    assert out["status"] == "interrupted" and out["step"] == 40  # a log cut mid-run, none live
    _, progress = g.read("progress", "demo")
    top = progress["sections"][""]
    assert top["Status"] == "STOPPED"
    assert top["Current epoch"] == "4/5" and top["Current step"] == "40/50"
    assert top["Loss"] == "0.16 (started: 0.199)"
    assert top["VRAM usage"].startswith("none (CPU run")
    assert top["Elapsed"] == "20 s" and top["Loss curve"] == "loss-curve.png"
    assert progress["sections"]["Anomalies"]["Found"] == 0
    assert (folder / "loss-curve.png").is_file()
    text = (folder / "progress.md").read_text()
    assert "Loss plateaus, divergence or NaN, as the monitor saw them." in text  # prose kept


def test_follow_prints_a_live_log_until_it_ends(tmp_path: Path) -> None:
    log = tmp_path / "live.log"
    log.write_text("")
    lines = tiny_lines(20)
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainwright", "monitor", "--log", str(log), "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def write() -> None:
        with open(log, "a") as fh:
            for line in lines:
                fh.write(line + "\n")
                fh.flush()
                time.sleep(0.02)
            fh.write("tiny: done steps=20 epochs=5 loss=0.18 elapsed_s=10.0\n")

    t = threading.Thread(target=write)
    t.start()
    out, err = proc.communicate(timeout=60)
    t.join()
    assert proc.returncode == 0, err
    assert "tiny: step=20/20" in out and "complete" in out.splitlines()[-10:][0] + out


def test_damaged_logs_give_clear_results(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 20)
    proc = run_cli("monitor", "--log", str(junk), "--json", env=NO_GPU)
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["status"] == "no data" and out["format"] == "unknown"
    cut = tmp_path / "events.out.tfevents.1"
    data = next((LOGS / "tensorboard" / "kohya").rglob("events*")).read_bytes()
    cut.write_bytes(data[:3000])
    out = json.loads(run_cli("monitor", "--log", str(cut), "--json", env=NO_GPU).stdout)
    assert (
        out["format"] == "tensorboard" and out["step"] and any("cut off" in n for n in out["notes"])
    )


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["monitor"], "give a PROJECT or --log PATH"),
        (["monitor", "demo", "--log", "x.log"], "give a PROJECT or --log PATH"),
        (["monitor", "--log", "/no/such/file.log"], "no such log file"),
        (["monitor", "nope"], "no project 'nope'"),
        (["monitor", "--log", "LOGS", "--format", "wandb"], "wandb"),
    ],
)
def test_bad_monitor_requests(tmp_path: Path, args: list[str], fragment: str) -> None:
    g = make_project(tmp_path)
    args = [a.replace("LOGS", str(LOGS)) for a in args]
    assert_one_line_error(run_cli("--grimoire", str(g.root), *args), fragment)


def test_tensorboard_folder_through_the_cli(tmp_path: Path) -> None:
    shutil.copytree(LOGS / "tensorboard" / "torchtune", tmp_path / "tb")
    out = json.loads(run_cli("monitor", "--log", str(tmp_path / "tb"), "--json", env=NO_GPU).stdout)
    assert out["format"] == "tensorboard" and out["step"] == 30 and out["vram_used_gib"] == 11.25


def test_vram_comes_from_nvidia_smi_when_there_is_one(tmp_path: Path) -> None:
    from support.fake_smi import fake_smi

    env = {"TRAINWRIGHT_NVIDIA_SMI": str(fake_smi(tmp_path, "rtx4090"))}
    out = json.loads(
        run_cli("monitor", "--log", str(LOGS / "kohya-train.log"), "--json", env=env).stdout
    )
    assert out["vram_used_gib"] == 1.0 and out["vram_total_gib"] == 23.99
