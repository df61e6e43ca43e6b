"""`trainwright demo`: run the /train path on the embedded example, the way the agent would.

Every step is a real `trainwright` command run as a child process, printed as typed, so the demo
doubles as a transcript of the skill. The demo checks the outcome it expects at each gate (the
first Gate 1 is NO-GO, the rest GO) and stops with exit 1 at the first surprise.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwright import backends
from trainwright.demo.dataset import TRIGGER, make_demo_dataset
from trainwright.errors import TrainwrightError

PROJECT = "exstyle"
DATASET = "dataset"  # relative to the project root, as typed
# Small and quick: 64 px, a handful of epochs; enough for the LoRA's effect to show in the grid.
# The demo runs the embedded backend (the one that trains on the CPU and makes its own eval grid)
# on its bundled model.
BACKEND = backends.embedded().NAME
MODEL = backends.embedded().EVAL_BASE_MODELS[0]
CONFIG_OVERRIDES = ("resolution=64", "epochs=8", "batch_size=4", "save_every_n_epochs=4")


class DemoFailed(Exception):
    """A step did not give the result the demo expects."""


@dataclass
class Demo:
    root: Path
    say: Callable[[str], None] = print
    log: list[dict[str, Any]] = field(default_factory=list)

    @property
    def grimoire(self) -> Path:
        return self.root / "grimoire"

    @property
    def dataset(self) -> Path:
        return self.root / DATASET

    def run(self, *args: str, expect: tuple[int, ...] = (0,), quiet: bool = False) -> str:
        """`trainwright ARGS` as a person types it: from the project root, --grimoire at its
        default, paths relative to the root."""
        cmd = ["trainwright", *args]
        shown = "trainwright " + " ".join(shlex.quote(a) for a in args)
        self.say(f"\n$ {shown}")
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "trainwright", *cmd[1:]],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=600,
        )
        took = time.monotonic() - start
        self.log.append({"command": shown, "exit": proc.returncode, "seconds": round(took, 1)})
        out = proc.stdout.rstrip()
        if out and not quiet:
            self.say("\n".join("  " + line for line in out.splitlines()[:40]))
        if proc.returncode not in expect:
            raise DemoFailed(
                f"'{shown}' exited {proc.returncode}, expected {expect}: "
                + (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
            )
        return proc.stdout

    def json(self, *args: str, expect: tuple[int, ...] = (0,)) -> dict[str, Any]:
        return json.loads(self.run(*args, "--json", expect=expect, quiet=True))

    def narrate(self, text: str) -> None:
        self.say(f"\n== {text}")


def run_demo(root: Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole path in `root` (created; must be empty or absent). Returns a summary."""
    root = root.resolve()
    if root.exists() and any(root.iterdir()):
        raise TrainwrightError(f"{root} is not empty; the demo needs a fresh folder")
    root.mkdir(parents=True, exist_ok=True)
    d = Demo(root, say)
    t0 = time.monotonic()

    d.narrate("Install the pack and make an example dataset with planted problems")
    d.run("init", ".", quiet=True)
    planted = make_demo_dataset(d.dataset)
    say(
        f"  {len(list(d.dataset.glob('*.*')))} files in {d.dataset}: painted pictures, plus a near"
        " duplicate, a thumbnail, a truncated PNG, an uncaptioned image and two captions"
        " without the trigger word"
    )

    d.narrate("Phase 1: the intent (the agent fills this in with the person)")
    d.run("grimoire", "new", PROJECT, quiet=True)
    d.run(
        "grimoire",
        "set",
        "intent",
        "--project",
        PROJECT,
        "Type=style",
        f"Base model={MODEL}",
        f"Trigger word={TRIGGER}",
        f"Dataset folder={DATASET}",
        "Description=a painterly style on flat colour fields",
    )

    d.narrate("Phases 2-6: audit, duplicates, captions, then Gate 1")
    d.run("audit", DATASET, "--min-side", "64", "--project", PROJECT, expect=(0, 1))
    d.run("dedup", DATASET, "--project", PROJECT, expect=(0, 1))
    d.run("captions", "check", DATASET, "--project", PROJECT, expect=(0, 1))
    first = d.json("gate", "check", PROJECT, "--gate", "1", expect=(0, 1))
    if first["decision"] != "NO-GO":
        raise DemoFailed("Gate 1 should have said NO-GO on the planted problems")
    say("  Gate 1: NO-GO, as it should be:")
    say("\n".join(f"    - {r}" for r in first["reasons"]))

    d.narrate("Fix what Gate 1 found (each fix the person approves)")
    d.run("dedup", DATASET, "--quarantine", "quarantine", expect=(0, 1))
    rejected = root / "rejected"
    rejected.mkdir()
    for bad in (planted.too_small, planted.corrupt):
        for path in (bad, bad.with_suffix(".txt")):
            shutil.move(str(path), rejected / path.name)
    say(
        f"  moved {planted.too_small.name} and {planted.corrupt.name} (and their captions) to"
        f" {rejected} (nothing is deleted)"
    )
    drafts = root / "caption-drafts.json"
    drafts.write_text(
        json.dumps(
            {
                planted.uncaptioned.name: "painted, an orange square on a "
                "teal background, soft brush edges"
            }
        )
    )
    d.run("captions", "apply", DATASET, "--from", drafts.name, "--trigger", TRIGGER)
    second = d.json("gate", "check", PROJECT, "--gate", "1")
    say(f"  Gate 1: {second['decision']}")

    d.narrate("Phase 7: memory estimate and config, then Gate 2")
    d.run(
        "vram",
        "--model",
        MODEL,
        "--method",
        "lora",
        "--resolution",
        "64",
        "--batch",
        "4",
        "--device",
        "cpu",
    )
    d.run(
        "config",
        "--project",
        PROJECT,
        "--backend",
        BACKEND,
        "--model",
        MODEL,
        "--preset",
        "quick",
        *CONFIG_OVERRIDES,
    )
    d.run("gate", "check", PROJECT, "--gate", "2")
    _expect_go(d, 2)

    d.narrate("Phases 8-9: environment (Gate 3) and dry run (Gate 4)")
    d.run("env", "check", PROJECT)
    _expect_go(d, 3)
    d.run("dry-run", PROJECT)
    _expect_go(d, 4)
    d.run("gate", "status", PROJECT, "--require-all")

    d.narrate("Phase 10: launch (the agent first confirms time and cost) and monitor")
    d.run("launch", PROJECT)
    d.run("monitor", PROJECT)
    ckpts = d.json("checkpoints", PROJECT)
    lora = _final_checkpoint(ckpts).relative_to(root)  # as a person would type it

    d.narrate("Phase 11: the evaluation grid (one seed; only the LoRA weight changes)")
    grid = d.json("eval-grid", PROJECT, "--lora", str(lora), "--weights", "0,0.5,1.0,1.5")
    d.narrate("Phase 13: register the LoRA in studio.md (the weight is the agent's judgement)")
    d.run("register", PROJECT, "--weight", "1.0", "--file", str(lora))
    d.run("status", PROJECT)

    summary = {
        "root": str(root),
        "project": PROJECT,
        "lora": str(root / lora),
        "grid": _grid_path(grid),
        "seconds": round(time.monotonic() - t0, 1),
        "steps": d.log,
    }
    say(f"\nDone in {summary['seconds']} s. Open the grid: {summary['grid']}")
    say(f"The record of every decision is in {d.grimoire / 'training' / PROJECT}")
    return summary


def _expect_go(d: Demo, number: int) -> None:
    st = d.json("gate", "status", PROJECT)
    gate = st["gates"][number - 1]
    if not gate["ok"]:
        raise DemoFailed(f"Gate {number} is {gate['decision']}: {gate['reason']}")
    d.say(f"  Gate {number}: GO")


def _final_checkpoint(listing: dict[str, Any]) -> Path:
    items = listing.get("checkpoints") or []
    if not items:
        raise DemoFailed("the run left no checkpoint")
    return Path(items[-1]["path"])


def _grid_path(grid: dict[str, Any]) -> str | None:
    """The first grid PNG of an eval-grid result (its `grids` are relative to its `folder`)."""
    grids = grid.get("grids") or []
    if not grids:
        return None
    return str(Path(grid.get("folder") or ".") / grids[0])
