"""One labelled grid image: weights across, prompts down, a legend like A1111's X/Y/Z plot.

The top band names the LoRA, checkpoint, base model and seed; each column is headed by its
weight and each row by its prompt (label and wrapped text). A cell that could not be made is a
grey tile that says why, and the band says PARTIAL with how many are missing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

BG = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (90, 90, 90)
WARN = (190, 20, 20)
MISSING_BG = (70, 70, 70)
MISSING_INK = (235, 235, 235)


@dataclass
class GridSpec:
    title: str
    col_labels: list[str]
    row_labels: list[str]
    row_texts: list[str]
    axis_x: str = "LoRA weight"
    axis_y: str = "prompt"


@functools.cache
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _text_w(draw: ImageDraw.ImageDraw, text: str, f: ImageFont.ImageFont) -> float:
    return draw.textlength(text, font=f)


def wrap(draw: ImageDraw.ImageDraw, text: str, f: ImageFont.ImageFont, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        cand = f"{line} {word}".strip()
        if _text_w(draw, cand, f) <= width or not line:
            line = cand
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def _fit(img: Image.Image, size: int) -> Image.Image:
    img = img.convert("RGB")
    scale = size / max(img.size)
    new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    method = Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.LANCZOS
    tile = Image.new("RGB", (size, size), BG)
    tile.paste(img.resize(new, method), ((size - new[0]) // 2, (size - new[1]) // 2))
    return tile


def cell_size_for(images: list[Image.Image | None]) -> int:
    sides = [max(i.size) for i in images if i is not None]
    side = max(sides) if sides else 256
    return int(min(max(side, 192), 384))


def missing_tile(size: int, reason: str) -> Image.Image:
    tile = Image.new("RGB", (size, size), MISSING_BG)
    d = ImageDraw.Draw(tile)
    d.line((0, 0, size, size), fill=(110, 110, 110), width=2)
    d.line((0, size, size, 0), fill=(110, 110, 110), width=2)
    f = font(max(11, size // 16))
    lines = ["not generated"] + wrap(d, reason, f, size - 16)[:6]
    y = size // 2 - len(lines) * (f.size if hasattr(f, "size") else 12) // 2
    for line in lines:
        d.text((8, y), line, fill=MISSING_INK, font=f)
        y += (f.size if hasattr(f, "size") else 12) + 3
    return tile


def compose(
    spec: GridSpec,
    cells: list[list[Image.Image | None]],
    reasons: list[list[str | None]],
    cell_size: int | None = None,
) -> Image.Image:
    """Draw the grid; `cells[row][col]` is an image or None (then `reasons[row][col]` says why)."""
    rows, cols = len(spec.row_labels), len(spec.col_labels)
    flat = [c for row in cells for c in row]
    size = cell_size or cell_size_for(flat)
    missing = sum(c is None for c in flat)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    f_title, f_head, f_label, f_small = font(18), font(16), font(15), font(12)
    line_h = 20
    label_w = max(200, size)
    gap = 4
    title_lines = wrap(scratch, spec.title, f_title, label_w + cols * (size + gap) - 20)
    band_h = 12 + line_h * (len(title_lines) + (1 if missing else 0)) + 6
    head_h = 2 * line_h + 8
    width = label_w + cols * (size + gap) + gap
    height = band_h + head_h + rows * (size + gap) + gap
    canvas = Image.new("RGB", (width, height), BG)
    d = ImageDraw.Draw(canvas)
    y = 10
    for line in title_lines:
        d.text((10, y), line, fill=INK, font=f_title)
        y += line_h
    if missing:
        total = rows * cols
        d.text(
            (10, y),
            f"PARTIAL: {missing} of {total} cells not generated",
            fill=WARN,
            font=f_title,
        )
    top = band_h
    d.text((10, top + 4), f"rows: {spec.axis_y}, columns: {spec.axis_x}", fill=MUTED, font=f_small)
    for c, label in enumerate(spec.col_labels):
        x0 = label_w + gap + c * (size + gap)
        tw = _text_w(d, label, f_head)
        d.text((x0 + (size - tw) / 2, top + line_h), label, fill=INK, font=f_head)
    for r in range(rows):
        y0 = top + head_h + gap + r * (size + gap)
        d.text((10, y0 + 4), spec.row_labels[r], fill=INK, font=f_label)
        max_lines = max(1, (size - 28) // 15)
        text_lines = wrap(d, spec.row_texts[r], f_small, label_w - 20)
        if len(text_lines) > max_lines:
            text_lines = text_lines[:max_lines]
            text_lines[-1] = text_lines[-1] + " ..."
        ty = y0 + 26
        for line in text_lines:
            d.text((10, ty), line, fill=MUTED, font=f_small)
            ty += 15
        for c in range(cols):
            x0 = label_w + gap + c * (size + gap)
            img = cells[r][c]
            tile = _fit(img, size) if img is not None else missing_tile(size, reasons[r][c] or "")
            canvas.paste(tile, (x0, y0))
    return canvas
