"""Images and captions for the tiny backend, and the generated pictures its base model learned.

A dataset folder holds images (png, jpg, jpeg, webp, bmp) at its top level, each with an optional
caption file of the same stem (`.txt` unless the config says otherwise). Every caption gets the
trigger word in front when it does not already contain it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
COLORS = {
    "red": (200, 40, 40),
    "orange": (235, 140, 30),
    "yellow": (235, 215, 60),
    "green": (50, 160, 70),
    "blue": (40, 80, 200),
    "purple": (130, 60, 170),
    "white": (240, 240, 240),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "stripe")


class DatasetError(Exception):
    """The dataset cannot be used as it is; the message says which file and why."""


@dataclass
class Dataset:
    images: list[Image.Image]
    captions: list[str]
    files: list[str]
    uncaptioned: list[str] = field(default_factory=list)


def with_trigger(caption: str, trigger: str) -> str:
    words = caption.replace(",", " ").split()
    if trigger and trigger not in words:
        return f"{trigger}, {caption}" if caption else trigger
    return caption


def square(img: Image.Image, size: int) -> Image.Image:
    img = ImageOps.exif_transpose(img).convert("RGB")
    return ImageOps.fit(img, (size, size), Image.Resampling.BICUBIC)


def load_folder(folder: Path, trigger: str, size: int, caption_extension: str = ".txt") -> Dataset:
    if not folder.is_dir():
        raise DatasetError(f"dataset folder {folder} does not exist")
    paths = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not paths:
        raise DatasetError(
            f"no images in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)} at the top level)"
        )
    ds = Dataset([], [], [])
    for path in paths:
        try:
            with Image.open(path) as im:
                im.load()
                ds.images.append(square(im, size))
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise DatasetError(f"image {path.name} cannot be read: {exc}") from None
        cap_path = path.with_suffix(caption_extension)
        caption = ""
        if cap_path.is_file():
            try:
                caption = " ".join(cap_path.read_bytes().decode("utf-8").split())
            except UnicodeDecodeError as exc:
                raise DatasetError(
                    f"caption {cap_path.name} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}"
                    f" at {exc.start}); save it as UTF-8"
                ) from None
        else:
            ds.uncaptioned.append(path.name)
        ds.captions.append(with_trigger(caption, trigger))
        ds.files.append(path.name)
    return ds


def synthetic_picture(rng: random.Random, size: int = 64) -> tuple[Image.Image, str]:
    """A background and one to three coloured shapes, with a caption that names them."""
    names = list(COLORS)
    bg = rng.choice(names)
    img = Image.new("RGB", (size, size), COLORS[bg])
    draw = ImageDraw.Draw(img)
    parts = []
    for _ in range(rng.randint(1, 3)):
        color = rng.choice([c for c in names if c != bg])
        shape = rng.choice(SHAPES)
        r = rng.randint(size // 8, size // 3)
        cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
        box = (cx - r, cy - r, cx + r, cy + r)
        if shape == "circle":
            draw.ellipse(box, fill=COLORS[color])
        elif shape == "square":
            draw.rectangle(box, fill=COLORS[color])
        elif shape == "triangle":
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=COLORS[color])
        else:
            for x in range(0, size, max(4, r // 2)):
                draw.rectangle(
                    (x, cy - r // 3, x + max(2, r // 4), cy + r // 3), fill=COLORS[color]
                )
        parts.append(f"a {color} {shape}")
    return img, f"{' and '.join(parts)} on a {bg} background"


def painted(img: Image.Image, rng: random.Random) -> Image.Image:
    """A recognisable 'style' for test datasets: posterised colours and diagonal brush marks."""
    img = ImageOps.posterize(img.filter(ImageFilter.SMOOTH_MORE), 3)
    draw = ImageDraw.Draw(img)
    w, h = img.size
    for _ in range(w // 3):
        x, y = rng.randrange(w), rng.randrange(h)
        draw.line((x, y, x + 5, y - 5), fill=(250, 235, 200), width=1)
    return img


def write_example_dataset(
    folder: Path, count: int = 8, trigger: str = "exstyle", seed: int = 7, size: int = 96
) -> list[Path]:
    """Write `count` painted pictures with captions (trigger first) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    written = []
    for i in range(count):
        img, caption = synthetic_picture(rng, size)
        path = folder / f"painting_{i:02d}.png"
        painted(img, rng).save(path)
        path.with_suffix(".txt").write_text(f"{trigger}, painted, {caption}\n", encoding="utf-8")
        written.append(path)
    return written
