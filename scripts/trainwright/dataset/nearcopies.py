"""The near-copy transforms duplicate detection is measured against (tests and bench/).

Each one turns an RGB image into a copy a person would call "the same picture": what a phone,
a print shop or a re-upload does to a painting's photo.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageEnhance, ImageOps


def _jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def downscale(im: Image.Image) -> Image.Image:
    return im.resize((max(8, im.width * 2 // 5), max(8, im.height * 2 // 5)), Image.LANCZOS)


def heavy_jpeg(im: Image.Image) -> Image.Image:
    return _jpeg(im, 12)


def border_crop(im: Image.Image) -> Image.Image:
    w, h = im.size
    return im.crop((int(w * 0.10), int(h * 0.08), w - int(w * 0.06), h - int(h * 0.10)))


def brighter(im: Image.Image) -> Image.Image:
    return ImageEnhance.Brightness(im).enhance(1.35)


def contrast(im: Image.Image) -> Image.Image:
    return ImageEnhance.Contrast(im).enhance(0.6)


def colour_shift(im: Image.Image) -> Image.Image:
    r, g, b = im.split()
    r = r.point(lambda v: min(255, int(v * 1.15 + 10)))
    b = b.point(lambda v: int(v * 0.8))
    return ImageEnhance.Color(Image.merge("RGB", (r, g, b))).enhance(1.3)


def rotate(im: Image.Image) -> Image.Image:
    return im.rotate(4, resample=Image.BICUBIC, expand=False)


def watermark(im: Image.Image) -> Image.Image:
    out = im.copy()
    w, h = out.size
    d = ImageDraw.Draw(out)
    box = (int(w * 0.55), int(h * 0.78), int(w * 0.95), int(h * 0.92))
    d.rectangle(box, fill=(255, 255, 255))
    d.text((box[0] + 6, box[1] + 4), "(c) sample watermark", fill=(20, 20, 20))
    return out


def grayscale(im: Image.Image) -> Image.Image:
    return ImageOps.grayscale(im).convert("RGB")


def padding(im: Image.Image) -> Image.Image:
    w, h = im.size
    return ImageOps.expand(im, border=(int(w * 0.12), int(h * 0.04)), fill=(0, 0, 0))


TRANSFORMS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "downscale": downscale,
    "jpeg": heavy_jpeg,
    "crop": border_crop,
    "brightness": brighter,
    "contrast": contrast,
    "colour": colour_shift,
    "rotate": rotate,
    "watermark": watermark,
    "grayscale": grayscale,
    "padding": padding,
}
