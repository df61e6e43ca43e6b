"""Regenerate the log fixtures beside this file with the real writers (run by hand).

    PYTHONPATH=<dir with tensorboard + absl-py> .venv/bin/python tests/data/logs/make_fixtures.py

- kohya-train.log: tqdm's own bar (desc "steps", postfix avr_loss, as sd-scripts'
  train_network.py sets it), with sd-scripts' "running training" header, `epoch N/M` and
  `saving checkpoint:` lines; tqdm's clock is replaced by a fake one so the times are stable.
- kohya-old.log: the older `loss=` postfix.
- torchtune/log_1717243200.txt: torchtune's DiskLogger.log_dict, as the LoRA recipes call it.
- torchtune-stdout.log: the recipe's tqdm bar ("{epoch}|{global_step}|Loss: {loss}").
- tensorboard/kohya/...: torch's SummaryWriter.add_scalar (old-style simple_value), kohya's tags.
- tensorboard/torchtune/...: torchtune's TensorBoardLogger (add_scalar with new_style=True).
The TensorBoard parts need the `tensorboard` package (not a test dependency: the parser reads the
files without it). tiny-oom-train.log is the train.log of a real supervised tiny-backend run
that ran out of memory at batch 8 (memory_limit_mb: 100, resolution 64) and finished at batch 4:
`python -m trainwright.run.supervisor --grimoire G --project NAME`.
"""

from __future__ import annotations

import io
import math
import random
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent


class FakeClock:
    def __init__(self, per_step: float) -> None:
        self.t, self.per_step = 1_717_243_200.0, per_step

    def __call__(self) -> float:
        return self.t


def curve(n: int, start: float, end: float, noise: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        base = end + (start - end) * math.exp(-4 * i / n)
        out.append(max(1e-4, base * (1 + rng.gauss(0, noise))))
    return out


def kohya(path: Path, key: str, epochs: int, per_epoch: int) -> None:
    import tqdm.std

    clock = FakeClock(1.25)
    tqdm.std.time = clock  # type: ignore[attr-defined]
    out = io.StringIO()
    total = epochs * per_epoch
    out.write(
        "running training / 学習開始\n"
        f"  num train images * repeats / 学習画像の数×繰り返し回数: {per_epoch * 2}\n"
        "  num reg images / 正則化画像の数: 0\n"
        f"  num batches per epoch / 1epochのバッチ数: {per_epoch}\n"
        f"  num epochs / epoch数: {epochs}\n"
        "  batch size per device / バッチサイズ: 2\n"
        "  gradient accumulation steps / 勾配を合計するステップ数 = 1\n"
        f"  total optimization steps / 学習ステップ数: {total}\n"
    )
    bar = tqdm.std.tqdm(range(total), smoothing=0, desc="steps", file=out, mininterval=0)
    losses = curve(total, 0.14, 0.09, 0.15, seed=3)
    step = 0
    for epoch in range(epochs):
        out.write(f"\nepoch {epoch + 1}/{epochs}\n")
        window: list[float] = []
        for _ in range(per_epoch):
            clock.t += clock.per_step
            window.append(losses[step])
            bar.update(1)
            bar.set_postfix(**{key: sum(window) / len(window)})
            step += 1
        name = f"/work/out/mystyle-{epoch + 1:06d}.safetensors"
        out.write(f"\nsaving checkpoint: {name}\n")
    bar.close()
    path.write_text(out.getvalue(), encoding="utf-8")


def torchtune_disk(folder: Path) -> None:
    from torchtune.training.metric_logging import DiskLogger

    tmp = folder / "tmp"
    logger = DiskLogger(log_dir=str(tmp))
    for step, loss in enumerate(curve(60, 1.9, 1.1, 0.05, seed=5), start=1):
        logger.log_dict(
            {
                "loss": round(loss, 4),
                "lr": 0.0003,
                "tokens_per_second_per_gpu": 1850.2 + step,
                "peak_memory_active": 9.41,
                "peak_memory_alloc": 9.41,
                "peak_memory_reserved": 11.25,
            },
            step=step,
        )
    logger.close()
    written = next(tmp.glob("log_*.txt"))
    written.replace(folder / "log_1717243200.txt")
    shutil.rmtree(tmp)


def torchtune_stdout(path: Path) -> None:
    import tqdm.std

    clock = FakeClock(2.5)
    tqdm.std.time = clock  # type: ignore[attr-defined]
    out = io.StringIO()
    out.write("INFO:torchtune.utils._logging:Model is initialized with precision torch.bfloat16.\n")
    losses = curve(40, 1.9, 1.1, 0.05, seed=6)
    step = 0
    for epoch in range(2):
        bar = tqdm.std.tqdm(total=20, file=out, mininterval=0)
        for _ in range(20):
            clock.t += clock.per_step
            step += 1
            bar.update(1)
            bar.set_description(f"{epoch + 1}|{step}|Loss: {losses[step - 1]}")
        bar.close()
    path.write_text(out.getvalue(), encoding="utf-8")


def tensorboard(folder: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter
    from torchtune.training.metric_logging import TensorBoardLogger

    shutil.rmtree(folder, ignore_errors=True)
    kohya_dir = folder / "kohya" / "mystyle20240601120000" / "network_train"
    w = SummaryWriter(str(kohya_dir))
    losses = curve(50, 0.15, 0.09, 0.2, seed=8)
    for step, loss in enumerate(losses, start=1):
        w.add_scalar("loss/current", loss, step, walltime=1_717_243_200 + step * 1.5)
        w.add_scalar(
            "loss/average", sum(losses[:step]) / step, step, walltime=1_717_243_200 + step * 1.5
        )
        w.add_scalar("lr/unet", 1e-4, step, walltime=1_717_243_200 + step * 1.5)
    for epoch in range(5):
        w.add_scalar("loss/epoch", sum(losses[epoch * 10 : epoch * 10 + 10]) / 10, epoch + 1)
    w.close()
    tt = TensorBoardLogger(log_dir=str(folder / "torchtune"))
    for step, loss in enumerate(curve(30, 1.8, 1.2, 0.05, seed=9), start=1):
        tt.log_dict({"loss": loss, "lr": 3e-4, "peak_memory_reserved": 11.25}, step=step)
    tt.close()
    for run in (folder / "torchtune").iterdir():
        run.rename(run.with_name("run_0_1717243200"))
    for p in folder.rglob("events.out.tfevents.*"):
        p.rename(p.with_name("events.out.tfevents.1717243200.fixture.0.0"))


def main() -> None:
    kohya(HERE / "kohya-train.log", "avr_loss", epochs=4, per_epoch=25)
    kohya(HERE / "kohya-old.log", "loss", epochs=2, per_epoch=5)
    torchtune_disk(HERE / "torchtune")
    torchtune_stdout(HERE / "torchtune-stdout.log")
    try:
        tensorboard(HERE / "tensorboard")
    except ImportError as exc:
        print(f"skipped the TensorBoard fixtures: {exc}")


if __name__ == "__main__":
    main()
