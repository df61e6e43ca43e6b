"""Precision and recall of near-duplicate detection on real photographs with transformed copies.

    .venv/bin/python bench/dedup_quality.py [--out /tmp/dedup-quality] [--methods phash,combined]

Originals: the photographs that ship inside scikit-image (no download), plus non-overlapping
quarters of the large ones as further distinct pictures. Each original gets every transform in
trainwright.dataset.nearcopies; all images of one original form a group. A true pair is any two
images of the same group; precision and recall are counted over pairs, both for the pairs the
method reports directly and for the pairs its clusters imply (union-find closes chains).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from trainwright.dataset.dedup import find_duplicates
from trainwright.dataset.nearcopies import TRANSFORMS, _jpeg


def _heldout_watermark(im: Image.Image) -> Image.Image:
    out = im.copy()
    w, h = out.size
    d = ImageDraw.Draw(out)
    d.rectangle((int(w * 0.04), int(h * 0.05), int(w * 0.38), int(h * 0.17)), fill=(20, 20, 20))
    d.text((int(w * 0.06), int(h * 0.08)), "@someone", fill=(240, 240, 240))
    return out


# The same kinds of change with other strengths, to check that `combined` was not tuned to the
# exact transforms above (used with --heldout, on other photographs).
HELDOUT = {
    "downscale": lambda im: im.resize((im.width * 3 // 10, im.height * 3 // 10), Image.BICUBIC),
    "jpeg": lambda im: _jpeg(im, 8),
    "crop": lambda im: im.crop(
        (int(im.width * 0.02), int(im.height * 0.15), int(im.width * 0.86), im.height - 2)
    ),
    "brightness": lambda im: ImageEnhance.Brightness(im).enhance(0.7),
    "contrast": lambda im: ImageEnhance.Contrast(im).enhance(1.5),
    "colour": lambda im: ImageEnhance.Color(im).enhance(0.3),
    "rotate": lambda im: im.rotate(
        -6, resample=Image.BILINEAR, expand=True, fillcolor=(255, 255, 255)
    ),
    "watermark": _heldout_watermark,
    "grayscale": lambda im: ImageOps.autocontrast(ImageOps.grayscale(im)).convert("RGB"),
    "padding": lambda im: ImageOps.pad(im, (max(im.size), max(im.size)), color=(255, 255, 255)),
}

PHOTOS = (
    "astronaut",
    "camera",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "moon",
    "coins",
    "clock",
    "page",
    "text",
    "brick",
    "grass",
    "gravel",
    "cell",
)
QUARTERED = ("astronaut", "coffee", "rocket", "hubble_deep_field", "retina", "chelsea", "camera")


def _hue(im: Image.Image, shift: int = 18) -> Image.Image:
    h, sat, v = im.convert("HSV").split()
    return Image.merge("HSV", (h.point(lambda x: (x + shift) % 256), sat, v)).convert("RGB")


def _band(im: Image.Image) -> Image.Image:
    over = Image.new("RGBA", im.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(over)
    w, h = im.size
    d.rectangle((0, int(h * 0.86), w, h), fill=(255, 255, 255, 120))
    d.text((int(w * 0.3), int(h * 0.9)), "SAMPLE  SAMPLE  SAMPLE", fill=(0, 0, 0, 200))
    return Image.alpha_composite(im.convert("RGBA"), over).convert("RGB")


# A third family, never used for tuning: run with --check (the photographs of the main set,
# whole, with these changes).
CHECK = {
    "downscale": lambda im: _jpeg(im.resize((im.width // 2, im.height // 2), Image.NEAREST), 70),
    "jpeg": lambda im: _jpeg(_jpeg(im, 20), 25),
    "crop": lambda im: im.crop((0, 0, int(im.width * 0.88), int(im.height * 0.86))),
    "brightness": lambda im: ImageEnhance.Contrast(
        ImageEnhance.Brightness(im).enhance(1.2)
    ).enhance(1.2),
    "contrast": lambda im: im.point(lambda v: int(255 * (v / 255) ** 0.6)),
    "colour": _hue,
    "rotate": lambda im: im.rotate(2.5, resample=Image.BICUBIC, expand=True, fillcolor=(0, 0, 0)),
    "watermark": _band,
    "grayscale": lambda im: (
        ImageOps.grayscale(im).filter(ImageFilter.GaussianBlur(1)).convert("RGB")
    ),
    "padding": lambda im: ImageOps.expand(im, border=int(min(im.size) * 0.08), fill=(20, 20, 20)),
}


def originals(extra: list[Path] | None = None, quarters: bool = True) -> dict[str, Image.Image]:
    from skimage import data

    out: dict[str, Image.Image] = {}
    if (
        extra is not None
    ):  # held-out photographs: the motorcycle plus files given on the command line
        sources = {"motorcycle": Image.fromarray(data.stereo_motorcycle()[0])}
        sources.update({p.stem: Image.open(p) for p in extra})
    else:
        sources = {name: Image.fromarray(getattr(data, name)()) for name in PHOTOS}
    for name, src in sources.items():
        im = src.convert("RGB")
        out[name] = im
        if quarters and (name in QUARTERED or extra is not None):
            w, h = im.size
            for qi, (x, y) in enumerate(itertools.product((0, 1), (0, 1))):
                q = im.crop((x * w // 2, y * h // 2, (x + 1) * w // 2, (y + 1) * h // 2))
                out[f"{name}-q{qi}"] = q.resize((q.width * 2, q.height * 2), Image.LANCZOS)
    return out


def build(
    folder: Path, transforms: dict = TRANSFORMS, extra: list[Path] | None = None, quarters=True
) -> dict[str, str]:
    """Write the set; return file name -> group."""
    folder.mkdir(parents=True, exist_ok=True)
    groups: dict[str, str] = {}
    for name, im in originals(extra, quarters).items():
        base = f"{name}__original.png"
        im.save(folder / base)
        groups[base] = name
        for tname, fn in transforms.items():
            fname = f"{name}__{tname}.jpg"
            fn(im).convert("RGB").save(folder / fname, quality=90)
            groups[fname] = name
    return groups


def score(pairs: set[tuple[str, str]], groups: dict[str, str]) -> dict[str, float]:
    names = sorted(groups)
    truth = {(a, b) for a, b in itertools.combinations(names, 2) if groups[a] == groups[b]}
    tp = len(pairs & truth)
    return {
        "true_pairs": len(truth),
        "found": len(pairs),
        "tp": tp,
        "precision": round(tp / len(pairs), 4) if pairs else 1.0,
        "recall": round(tp / len(truth), 4) if truth else 1.0,
    }


def per_transform(pairs: set[tuple[str, str]], groups: dict[str, str]) -> dict[str, float]:
    out = {}
    for t in TRANSFORMS:
        truth = {
            tuple(sorted((f"{g}__original.png", f"{g}__{t}.jpg"))) for g in set(groups.values())
        }
        out[t] = round(len(pairs & truth) / len(truth), 3)
    return out


def evaluate(folder: Path, groups: dict[str, str], method: str, threshold: int | None) -> dict:
    paths = [folder / n for n in sorted(groups)]
    t0 = time.perf_counter()
    res = find_duplicates(paths, method, threshold, workers=2)
    secs = time.perf_counter() - t0
    name = [Path(it.path).name for it in res.items]
    direct = {tuple(sorted((name[p.a], name[p.b]))) for p in res.near}
    implied = {
        tuple(sorted((name[a], name[b])))
        for g in res.clusters
        for a, b in itertools.combinations(g, 2)
    }
    return {
        "method": method,
        "threshold": res.threshold,
        "images": len(paths),
        "seconds": round(secs, 2),
        "pairs": score(direct, groups),
        "clusters": score(implied, groups),
        "recall_original_vs_copy": per_transform(direct, groups),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/dedup-quality"))
    ap.add_argument("--methods", default="phash,dhash,whash,combined")
    ap.add_argument("--threshold", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--heldout",
        nargs="*",
        type=Path,
        help="held-out set: other photographs (the motorcycle + these JPEGs), other strengths",
    )
    ap.add_argument("--check", action="store_true", help="the third, untuned family of changes")
    args = ap.parse_args(argv)
    if args.check:
        groups = build(args.out, CHECK, quarters=False)
    elif args.heldout is not None:
        groups = build(args.out, HELDOUT, args.heldout)
    else:
        groups = build(args.out)
    results = [evaluate(args.out, groups, m, args.threshold) for m in args.methods.split(",")]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    n_groups = len(set(groups.values()))
    print(f"{len(groups)} images, {n_groups} originals x {len(TRANSFORMS)} transforms")
    print("method      thr  pairs P  pairs R  clusters P  clusters R  seconds")
    for r in results:
        p, c = r["pairs"], r["clusters"]
        print(
            f"{r['method']:<10} {r['threshold']:>4}  {p['precision']:7.3f}  {p['recall']:7.3f}"
            f"  {c['precision']:10.3f}  {c['recall']:10.3f}  {r['seconds']:7.2f}"
        )
    for r in results:
        print(r["method"], "original-vs-copy recall:", r["recall_original_vs_copy"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
