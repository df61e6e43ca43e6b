"""A small style dataset with the problems a real one has, so the gates have something to find.

Painted pictures in one consistent "style" with varied content (the tiny backend's generator),
plus: a re-encoded, slightly resized copy of one picture (a near duplicate), a picture far below
the minimum size, a truncated PNG, an image without a caption, and captions missing the trigger.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from trainwright.backends.tiny_model.data import write_example_dataset

TRIGGER = "exstyle"


@dataclass
class Planted:
    duplicate: Path
    duplicate_of: Path
    too_small: Path
    corrupt: Path
    uncaptioned: Path
    no_trigger: list[Path]


def make_demo_dataset(folder: Path, count: int = 24, size: int = 96) -> Planted:
    images = write_example_dataset(folder, count, trigger=TRIGGER, size=size)
    original = images[3]
    dup = folder / "painting_03_copy.jpg"
    with Image.open(original) as im:
        im.convert("RGB").resize((size - 8, size - 8)).save(dup, quality=80)
    dup.with_suffix(".txt").write_text(original.with_suffix(".txt").read_text(encoding="utf-8"))

    # A picture of its own (another seed), far below the minimum size.
    extra = write_example_dataset(folder / ".extra", 1, trigger=TRIGGER, seed=99, size=32)[0]
    small = folder / "thumbnail.png"
    extra.rename(small)
    extra.with_suffix(".txt").rename(small.with_suffix(".txt"))
    (folder / ".extra").rmdir()

    corrupt = folder / "broken_scan.png"
    buf = io.BytesIO()
    with Image.open(images[6]) as im:
        im.save(buf, format="PNG")
    corrupt.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    corrupt.with_suffix(".txt").write_text(f"{TRIGGER}, painted, a scan\n")

    uncaptioned = images[7]
    uncaptioned.with_suffix(".txt").unlink()

    no_trigger = []
    for img in images[8:10]:
        cap = img.with_suffix(".txt")
        cap.write_text(cap.read_text(encoding="utf-8").replace(f"{TRIGGER}, ", "", 1))
        no_trigger.append(cap)
    return Planted(dup, original, small, corrupt, uncaptioned, no_trigger)
