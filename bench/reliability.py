"""Reliability table: run every case of the adversarial suite and count outcomes per room.

    .venv/bin/python bench/reliability.py [--skip-slow] [--only ROOM] [--json]

Imports every tests/adversarial/test_*.py, runs each entry of its CASES through
harness.execute / harness.outcome (each in a fresh temp folder, as the tests do) and prints a
Markdown table: cases per room, and per actual outcome class (clear-error, refused, correct) and
failure (traceback, hang, lost-data, wrong-exit, check-failed; setup-error when a case's own
setup raises). A case whose actual class differs
from its expected one is listed under the table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "tests" / "adversarial"
COLUMNS = (
    "clear-error",
    "refused",
    "correct",
    "traceback",
    "hang",
    "lost-data",
    "wrong-exit",
    "check-failed",
    "setup-error",
)


def load_cases() -> list[tuple[str, object]]:
    """(file name, Case) for every CASES entry of every test_*.py in the suite."""
    found = []
    for path in sorted(SUITE.glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"adversarial_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for case in getattr(module, "CASES", []):
            case = getattr(case, "values", (case,))[0]  # a pytest.param holds the Case
            found.append((path.name, case))
    return found


def slow_ids() -> set[str]:
    """Ids the tables mark slow (room_kit.params(slow=...)), read from their test parameters."""
    out = set()
    for name, module in list(sys.modules.items()):
        if not name.startswith("adversarial_"):
            continue
        for mark in getattr(module.test_case, "pytestmark", []):
            for param in mark.args[1] if mark.name == "parametrize" else []:
                if any(m.name == "slow" for m in getattr(param, "marks", ())):
                    out.add(param.values[0].id)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-slow", action="store_true", help="leave out cases marked slow")
    ap.add_argument("--only", help="only this room")
    ap.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(SUITE))
    import harness

    cases = load_cases()
    slow = slow_ids() if args.skip_slow else set()
    counts: dict[str, Counter] = defaultdict(Counter)
    unexpected = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="trainwright-reliability-") as base:
        for n, (file, case) in enumerate(cases):
            if case.id in slow or (args.only and case.room != args.only):
                continue
            tmp = Path(base) / f"{n:04d}" / "case"
            tmp.mkdir(parents=True)
            try:
                got = harness.outcome(harness.execute(case, tmp))
            except Exception as exc:  # a case whose own setup breaks: counted, not fatal
                got = "setup-error"
                print(f"{case.id}: setup failed: {exc!r}", file=sys.stderr)
            counts[case.room][got] += 1
            if got != case.expect:
                unexpected.append((file, case.id, case.expect, got))
            print(f"{case.room:9} {case.id:40} {got}", file=sys.stderr)
    seconds = time.monotonic() - started
    if args.json:
        print(json.dumps({"rooms": counts, "unexpected": unexpected, "seconds": seconds}))
        return 0
    rooms = [r for r in harness.ROOMS if r in counts]
    print("| room | cases | " + " | ".join(COLUMNS) + " |")
    print("|---|---:|" + "---:|" * len(COLUMNS))
    total: Counter = Counter()
    for room in rooms:
        total.update(counts[room])
        cells = " | ".join(str(counts[room][c]) for c in COLUMNS)
        print(f"| {room} | {sum(counts[room].values())} | {cells} |")
    cells = " | ".join(f"**{total[c]}**" for c in COLUMNS)
    print(f"| **all** | **{sum(total.values())}** | {cells} |")
    print(f"\n{sum(total.values())} cases in {seconds:.0f} s; {len(unexpected)} not as expected.")
    for file, cid, want, got in unexpected:
        print(f"- {file}::{cid}: expected {want}, got {got}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
