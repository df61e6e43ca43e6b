"""A contact sheet of duplicate groups: one row per group, keeper first, so a person can judge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from trainwright.dataset.images import open_image, to_rgb
from trainwright.state.atomic import atomic_write_bytes

TILE, LABEL, PAD, MAX_ROWS, MAX_COLS = 200, 44, 8, 60, 12


def _tile(path: Path) -> Image.Image:
    try:
        im = to_rgb(open_image(path, draft=TILE))
        im.thumbnail((TILE, TILE))
    except Exception:
        im = Image.new("RGB", (TILE, TILE), (90, 0, 0))
    return im


def contact_sheet(folder: Path, groups: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """groups: [{"keep": rel, "drop": [rel], "distances": {rel: text}}]. Writes a PNG."""
    rows = groups[:MAX_ROWS]
    cols = max([1] + [min(1 + len(g["drop"]), MAX_COLS) for g in rows])
    w = PAD + cols * (TILE + PAD)
    h = PAD + max(1, len(rows)) * (TILE + LABEL + PAD)
    sheet = Image.new("RGB", (w, h), (245, 245, 245))
    draw = ImageDraw.Draw(sheet)
    if not rows:
        draw.text((PAD, PAD), "no duplicate groups", fill=(0, 0, 0))
    for r, g in enumerate(rows):
        y = PAD + r * (TILE + LABEL + PAD)
        members = [g["keep"], *g["drop"]][:MAX_COLS]
        for c, rel in enumerate(members):
            x = PAD + c * (TILE + PAD)
            tile = _tile(folder / rel)
            sheet.paste(tile, (x + (TILE - tile.width) // 2, y + (TILE - tile.height) // 2))
            colour = (0, 120, 0) if c == 0 else (170, 0, 0)
            draw.rectangle((x - 2, y - 2, x + TILE + 1, y + TILE + 1), outline=colour, width=2)
            label = ("KEEP: " if c == 0 else "drop: ") + Path(rel).name[:24]
            draw.text((x, y + TILE + 4), label, fill=colour)
            extra = g.get("distances", {}).get(rel, "")
            draw.text((x, y + TILE + 20), extra[:32], fill=(40, 40, 40))
    import io

    from trainwright.state.safe_paths import png_info

    buf = io.BytesIO()
    sheet.save(buf, "PNG", pnginfo=png_info("contact sheet"))
    atomic_write_bytes(out, buf.getvalue())
    return {"path": str(out), "groups": len(rows), "width": w, "height": h}
