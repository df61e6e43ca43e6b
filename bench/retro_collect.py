"""How fast `trainwright retro collect` reads reports, next to the floor of just reading the bytes.

Run by hand: .venv/bin/python bench/retro_collect.py [COPIES]
Builds a throw-away project with COPIES copies (default 100) of the three fixture report sets
(tests/data/retro), then times collect per domain (best of 3) and a plain read of the same files.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.retro_project import DOMAINS, make_project  # noqa: E402
from trainwright.retro.collect import collect, iter_files  # noqa: E402
from trainwright.retro.registry import load  # noqa: E402


def best_of(fn, n: int = 3) -> float:  # noqa: ANN001
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(copies: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        registry = make_project(root)
        for domain in DOMAINS:
            src = root / "reports" / domain
            for n in range(1, copies):
                shutil.copytree(src, root / "reports" / domain / f"copy{n:04d}", ignore=_nested)
        reg = load(registry)
        print(f"{copies} copies of each fixture set; python {sys.version.split()[0]}")
        print(f"{'domain':8s} {'files':>6s} {'read':>8s} {'collect':>9s} {'reports/s':>10s} ")
        for domain in DOMAINS:
            files = iter_files(root / "reports" / domain)
            floor = best_of(lambda files=files: [f.read_bytes() for f in files])
            result: dict = {}
            took = best_of(lambda d=domain, r=result: r.update(c=collect(reg, domain=d)))
            got = len(result["c"].reports)
            print(f"{domain:8s} {len(files):6d} {floor:7.3f}s {took:8.3f}s {got / took:10.0f}")


def _nested(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n.startswith("copy")]


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
