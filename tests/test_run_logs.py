"""Log parsers on recorded real-format logs (tests/data/logs, made by make_fixtures.py with the
real writers: tqdm, torchtune's DiskLogger and TensorBoardLogger, torch's SummaryWriter), and
on the damaged logs a monitor meets: binary garbage, a cut-off line, a file being written, a
cut-off event file."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from helpers import REPO
from trainwright.errors import TrainwrightError
from trainwright.run.logs import detect_text, parse_text, read_log
from trainwright.run.logs import tensorboard as tb

LOGS = REPO / "tests" / "data" / "logs"
KOHYA_EVENTS = next((LOGS / "tensorboard" / "kohya").rglob("events.out.tfevents.*"))
TUNE_EVENTS = next((LOGS / "tensorboard" / "torchtune").rglob("events.out.tfevents.*"))


def test_kohya_tqdm_epochs_and_checkpoints() -> None:
    st = read_log(LOGS / "kohya-train.log")
    assert st.format == "kohya"
    assert (st.step, st.steps, st.epoch, st.epochs) == (100, 100, 4, 4)
    assert len(st.points) == 100
    assert st.loss_start == pytest.approx(0.142) and st.loss == pytest.approx(0.0906)
    assert st.elapsed_s == 125.0 and st.eta_s == 0.0
    assert [c["epoch"] for c in st.checkpoints] == [1, 2, 3, 4]
    assert st.checkpoints[0]["path"] == "/work/out/mystyle-000001.safetensors"
    assert st.finished
    # the loss at a step is the avr_loss printed with that step's bar
    assert st.points[2].loss == pytest.approx(0.153) and st.points[2].epoch == 1


def test_kohya_older_loss_postfix() -> None:
    st = read_log(LOGS / "kohya-old.log")
    assert st.format == "kohya" and st.step == 10 and st.loss == pytest.approx(0.1)


def test_kohya_mid_run_bar_without_newline_counts_and_eta_comes_from_tqdm() -> None:
    text = (LOGS / "kohya-train.log").read_text()
    cut = text.index("| 40/100 [")
    end = text.index("]", cut) + 1
    st = parse_text(text[:end])
    assert st.step == 40 and st.eta_s == pytest.approx(75.0) and not st.finished


def test_torchtune_disklogger_file_and_folder() -> None:
    st = read_log(LOGS / "torchtune" / "log_1717243200.txt")
    assert st.format == "torchtune" and st.step == 60 and len(st.points) == 60
    assert st.loss_start == pytest.approx(1.788) and st.vram_used_gib == 11.25
    assert all(p.epoch is None for p in st.points.values())
    assert read_log(LOGS / "torchtune").step == 60  # a log_dir holding log_<ts>.txt


def test_torchtune_recipe_bar_gives_epoch_and_adds_up_the_per_epoch_clocks() -> None:
    st = read_log(LOGS / "torchtune-stdout.log")
    assert st.format == "torchtune" and (st.step, st.epoch, st.steps_per_epoch) == (40, 2, 20)
    assert st.points[21].epoch == 2 and st.points[20].epoch == 1
    assert st.elapsed_s == pytest.approx(100.0)  # 2 bars x 20 steps x 2.5 s


def test_tensorboard_old_style_scalars_kohya_tags() -> None:
    st = read_log(KOHYA_EVENTS)
    assert st.format == "tensorboard" and st.step == 50 and len(st.points) == 50
    assert "loss/current" in st.notes[0]
    assert st.elapsed_s == pytest.approx(73.5)
    scalars = tb.read_events(KOHYA_EVENTS.read_bytes())
    assert set(scalars.series) == {"loss/current", "loss/average", "lr/unet", "loss/epoch"}
    assert scalars.file_version == "brain.Event:2" and scalars.bad_records == 0


def test_tensorboard_new_style_tensors_torchtune_and_folder_scan() -> None:
    st = read_log(LOGS / "tensorboard" / "torchtune")
    assert st.step == 30 and st.vram_used_gib == 11.25
    values = tb.read_events(TUNE_EVENTS.read_bytes()).series["loss"]
    assert values[0][2] == pytest.approx(st.loss_start) and len(values) == 30


def test_format_is_detected_from_content_not_name(tmp_path: Path) -> None:
    for src, fmt in (
        ("kohya-train.log", "kohya"),
        ("torchtune/log_1717243200.txt", "torchtune"),
        ("torchtune-stdout.log", "torchtune"),
    ):
        dst = tmp_path / f"renamed-{fmt}.dat"
        shutil.copy(LOGS / src, dst)
        assert read_log(dst).format == fmt
    odd = tmp_path / "events.bin"
    shutil.copy(KOHYA_EVENTS, odd)
    assert read_log(odd).format == "tensorboard"
    assert detect_text("hello\nworld\n") is None


def test_binary_garbage_is_skipped_and_reported(tmp_path: Path) -> None:
    data = (LOGS / "kohya-train.log").read_bytes()
    mid = len(data) // 2
    garbage = bytes(range(128, 256)) * 4 + b"\x00\x01\x02\n"
    path = tmp_path / "dirty.log"
    path.write_bytes(garbage + data[:mid] + b"\n" + garbage + data[mid:])
    st = read_log(path)
    assert st.format == "kohya" and st.step == 100 and st.finished
    assert any("not text" in n for n in st.notes)


def test_truncated_final_line_is_left_for_the_next_read() -> None:
    line = "tiny: step=3/8 epoch=2/4 loss=0.412345 lr=0.001 batch=2 mem_mib=300.0 elapsed_s=3.0\n"
    head = "tiny: start backend=tiny device=cpu images=4 batch=2 epochs=4 steps=8\n"
    whole = head + line.replace("step=3", "step=2") + line
    st = parse_text(whole + line.replace("step=3", "step=4")[:40])
    assert st.step == 3 and st.loss == pytest.approx(0.412345)


def test_a_log_read_while_it_is_written(tmp_path: Path) -> None:
    src = (LOGS / "torchtune" / "log_1717243200.txt").read_bytes()
    path = tmp_path / "live.txt"
    path.write_bytes(b"")
    done = threading.Event()

    def writer() -> None:
        with open(path, "ab") as fh:
            for i in range(0, len(src), 97):  # chunks that split lines anywhere
                fh.write(src[i : i + 97])
                fh.flush()
                time.sleep(0.001)
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    seen = []
    while not done.is_set():
        st = read_log(path, "torchtune")
        seen.append(st.step or 0)
        assert all(p.loss > 0 for p in st.points.values())  # never a half-read number
    t.join()
    assert seen == sorted(seen) and read_log(path).step == 60


def test_cut_off_event_file_keeps_the_records_before_the_cut(tmp_path: Path) -> None:
    data = KOHYA_EVENTS.read_bytes()
    path = tmp_path / "events.out.tfevents.cut"
    path.write_bytes(data[: len(data) - 37])
    st = read_log(path)
    assert 40 <= st.step <= 50 and any("cut off" in n for n in st.notes)
    full = tb.read_events(data)
    assert not full.truncated


def test_damaged_event_record_is_skipped(tmp_path: Path) -> None:
    data = bytearray(KOHYA_EVENTS.read_bytes())
    data[400] ^= 0xFF  # inside a record body: its checksum no longer matches
    scalars = tb.read_events(bytes(data))
    assert scalars.bad_records == 1 and len(scalars.series["loss/current"]) >= 49


def test_empty_missing_and_unknown_logs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert read_log(empty).format == "unknown" and not read_log(empty).points
    with pytest.raises(TrainwrightError, match="no such log file"):
        read_log(tmp_path / "nope.log")
    with pytest.raises(TrainwrightError, match="no training log here"):
        read_log(tmp_path)
    with pytest.raises(TrainwrightError, match="unknown log format"):
        read_log(empty, "wandb")


def test_nan_loss_is_read_as_nan() -> None:
    text = "\rsteps:  50%|#####     | 5/10 [00:05<00:05,  1.00it/s, avr_loss=nan]"
    st = parse_text("running training / x\n" + text)
    assert st.step == 5 and st.loss != st.loss


def test_supervisor_attempt_headers_split_the_clock(tmp_path: Path) -> None:
    lines = [
        "=== trainwright launch: attempt 1/4, batch 4, accumulation 1 (t) ===",
        "tiny: start backend=tiny device=cpu images=4 batch=4 epochs=2 steps=4",
        "tiny: step=1/4 epoch=1/2 loss=0.5 lr=0.001 batch=4 mem_mib=10 elapsed_s=10.0",
        "=== trainwright launch: attempt 2/4, batch 2, accumulation 2, resuming (t) ===",
        "tiny: start backend=tiny device=cpu images=4 batch=2 epochs=2 steps=4",
        "tiny: step=2/4 epoch=1/2 loss=0.4 lr=0.001 batch=2 mem_mib=10 elapsed_s=4.0",
        "tiny: step=3/4 epoch=2/2 loss=0.3 lr=0.001 batch=2 mem_mib=10 elapsed_s=6.0",
    ]
    st = parse_text("\n".join(lines) + "\n")
    assert st.attempts == 2 and st.elapsed_s == pytest.approx(16.0)
    assert st.rate_eta() == pytest.approx(2.0)  # 2 s per step in the current attempt, 1 left


def test_tiny_log_of_a_real_run_with_an_out_of_memory_retry() -> None:
    st = read_log(LOGS / "tiny-oom-train.log")
    assert st.format == "tiny" and st.attempts == 2 and st.finished
    assert (st.step, st.steps, st.epoch, st.epochs) == (2, 2, 2, 2)
    assert [c["epoch"] for c in st.checkpoints] == [1, 2] and st.device == "cpu"
    assert st.loss == pytest.approx(0.016561) and st.elapsed_s == pytest.approx(1.4)


def test_a_backend_line_hook_reads_a_log_no_parser_knows(tmp_path: Path) -> None:
    """ai-toolkit and SimpleTuner print their own progress lines; their modules parse them."""
    import re

    pattern = re.compile(r"(\d+)/(\d+) \[.*?lr: ([0-9.e+-]+) loss: ([0-9.e+-]+)")

    def parse_line(line: str) -> dict[str, object] | None:
        m = pattern.search(line)
        return {"step": int(m[1]), "total": int(m[2]), "loss": float(m[4])} if m else None

    bars = [
        f"my_lora:  {i}%|#  | {i}/100 [00:{i:02d}<01:00, 1.0it/s, lr: 1.0e-04 loss: 4.{i}e-01]"
        for i in range(1, 31)
    ]
    path = tmp_path / "run.log"
    path.write_text("Loading model\n" + "\r".join(bars) + "\n")
    st = read_log(path, None, parse_line)
    assert st.format == "backend" and (st.step, st.steps) == (30, 100)
    assert st.loss == pytest.approx(0.430) and not st.finished
