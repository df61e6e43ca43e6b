"""`cloud monitor`: the run's log and state brought back from the instance, read here by the same
parsers as `trainwright monitor`, with the money spent so far and the hours left.

One ssh call runs this module's `probe` on the instance (`python -m
trainwright.cloud.remote_monitor NAME OFFSET`): it prints one JSON line with the run record, whether
the supervisor holds the run lock, the finished checkpoints, and train.log's bytes from OFFSET on.
Here they are appended to a copy under the project folder (`cloud/train.log`), so each call moves
only the new bytes; a log that shrank or a new run starts the copy again.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

from trainwright import clock
from trainwright.cloud import records
from trainwright.cloud.estimate import billed
from trainwright.cloud.remote_run import answer, instance_for, run_there_python, time_left
from trainwright.errors import TrainwrightError
from trainwright.state.grimoire import Grimoire

COPY_DIR = "cloud"
MAX_CHUNK = 32 << 20  # bytes of log per probe; the next probe brings the rest
MAX_CALLS = 16


def probe(project: str, offset: int) -> dict[str, Any]:
    """Runs on the instance, in the project's folder there."""
    from trainwright.run.monitor import checkpoint_labels
    from trainwright.run.runfiles import RunFiles

    g = Grimoire("grimoire")
    files = RunFiles(g.project_dir(project))
    if not (files.folder / "progress.md").is_file():
        raise TrainwrightError(f"there is no project '{project}' in {g.root}")
    size = files.log.stat().st_size if files.log.is_file() else 0
    start = offset if 0 <= offset <= size else 0
    data = b""
    if size > start:
        with open(files.log, "rb") as fh:
            fh.seek(start)
            data = fh.read(min(size - start, MAX_CHUNK))
    return {
        "size": size,
        "offset": start,
        "data": base64.b64encode(data).decode(),
        "state": files.read_state(),
        "live": files.is_live(),
        "checkpoints": checkpoint_labels(g, project),
        "log": str(files.log),
    }


class LocalCopy:
    """The instance's train.log and run record, kept in the project's cloud/ folder."""

    def __init__(self, folder: Path) -> None:
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise TrainwrightError(
                f"{folder} is not the folder the pack keeps the instance's log in (a link or a "
                "file); move it aside, then run `cloud monitor` again"
            )
        self.folder = folder
        self.log, self.meta = folder / "train.log", folder / "copy.json"

    def size(self) -> int:
        return self.log.stat().st_size if self.log.is_file() else 0

    def same_run(self, state: dict[str, Any]) -> bool:
        try:
            old = json.loads(self.meta.read_text())
        except (OSError, ValueError):
            return False
        return isinstance(old, dict) and old.get("started") == state.get("started")

    def add(self, got: dict[str, Any]) -> None:
        """Append the probe's bytes (or start the copy again from its offset 0)."""
        data = base64.b64decode(got["data"], validate=True)
        self.folder.mkdir(exist_ok=True)
        if got["offset"] == 0:
            self.log.write_bytes(data)
        elif got["offset"] == self.size() and self.same_run(got["state"]):
            with open(self.log, "ab") as fh:
                fh.write(data)
        else:
            raise ValueError("the bytes do not continue the copy")
        self.meta.write_text(json.dumps({"started": got["state"].get("started")}) + "\n")
        state = json.dumps(got["state"], indent=2, sort_keys=True)
        (self.folder / "run.json").write_text(state + "\n")


def _status(state: dict[str, Any], live: bool, has_points: bool) -> str | None:
    from trainwright.run.monitor import STATUS_WORDS

    raw = str(state.get("status"))
    if raw in STATUS_WORDS and raw != "RUNNING":
        return STATUS_WORDS[raw]
    if live:
        return "running"
    if raw == "RUNNING":
        return "interrupted"
    return None if has_points else "not started"


def _check(got: Any) -> dict[str, Any]:
    ok = (
        isinstance(got.get("size"), int)
        and isinstance(got.get("offset"), int)
        and isinstance(got.get("data"), str)
        and isinstance(got.get("state"), dict)
        and isinstance(got.get("live"), bool)
        and isinstance(got.get("checkpoints"), list)
    )
    if not ok:
        raise ValueError("fields missing")
    base64.b64decode(got["data"], validate=True)
    return got


def money(rec: records.Record) -> dict[str, Any]:
    price = rec.fields.get("Price per hour")
    started = records.parse_stamp(rec.fields.get("Started"))
    hours = (clock.utc_now() - started).total_seconds() / 3600 if started else None
    left = time_left(rec)
    spent = (
        billed(float(price), max(hours, 0.0))
        if isinstance(price, (int, float)) and hours is not None
        else None
    )
    return {
        "price_per_hour": price,
        "started": rec.fields.get("Started"),
        "hours_so_far": None if hours is None else round(hours, 3),
        "spent_so_far": spent,
        "deadline": rec.fields.get("Deadline"),
        "hours_left": None if left is None else round(left, 3),
    }


def _probe(inst: Any, project: str, offset: int) -> dict[str, Any]:
    argv = ["-m", "trainwright.cloud.remote_monitor", project, str(offset)]
    got = answer(inst, run_there_python(inst, project, argv, timeout=120), "the monitor probe")
    try:
        return _check(got)
    except (ValueError, TypeError) as exc:
        raise TrainwrightError(
            f"{inst.where}: the monitor probe's answer is not what the pack sends ({exc}); "
            "nothing was recorded"
        ) from None


def fetch(inst: Any, project: str, copy: LocalCopy) -> tuple[dict[str, Any], int, int]:
    """Bring the copy up to date: (the last answer, the offset it started from, bytes moved)."""
    got = _probe(inst, project, copy.size())
    if got["offset"] > 0 and not copy.same_run(got["state"]):
        got = _probe(inst, project, 0)  # another run's log, or a copy of unknown origin
    start, moved = got["offset"], 0
    for _ in range(MAX_CALLS):
        try:
            copy.add(got)
        except (ValueError, OSError) as exc:
            raise TrainwrightError(
                f"could not keep the instance's log in {copy.folder} ({exc}); nothing was recorded"
            ) from None
        moved += len(base64.b64decode(got["data"]))
        if start + moved >= got["size"]:
            break
        got = _probe(inst, project, copy.size())
    return got, start, moved


def monitor(g: Grimoire, project: str) -> dict[str, Any]:
    from trainwright.run import anomalies as anomaly_rules
    from trainwright.run.curve import draw
    from trainwright.run.launch_target import backend_module, config_path
    from trainwright.run.logs import LogState, read_log
    from trainwright.run.monitor import _progress_fields, snapshot

    inst = instance_for(g, project)
    copy = LocalCopy(g.project_dir(project) / COPY_DIR)
    got, start, moved = fetch(inst, project, copy)
    state, log = got["state"], copy.log
    fmt, hook = None, None
    try:
        module = backend_module(config_path(g, project)[0])
        fmt, hook = getattr(module, "LOG_FORMAT", None), getattr(module, "parse_line", None)
    except TrainwrightError:
        pass
    st = read_log(log, fmt, hook) if copy.size() else LogState("none")
    status = _status(state, got["live"], bool(st.points))
    snap = snapshot(st, status=status, probe_gpu=False)
    cks = [str(c) for c in got["checkpoints"]]
    snap.update(
        project=project,
        log=str(log),
        remote_log=got.get("log"),
        instance=inst.describe(),
        live=got["live"],
        checkpoints=cks,
        oom_recoveries=int(state.get("oom_recoveries") or 0),
        adjustments=state.get("adjustments") or [],
        message=state.get("message"),
        money=money(inst.record),
        log_bytes={"from": start, "got": moved, "size": got["size"]},
    )
    if st.points or state:
        files_curve = g.project_dir(project) / "loss-curve.png"
        found = [anomaly_rules.Anomaly(**a) for a in snap["anomalies"]]
        draw(st.curve(), files_curve, f"Loss: {project} (on {inst.name})", found)
        snap["curve"] = str(files_curve)
        updates = _progress_fields(snap, state, cks)
        if "Run" in updates:
            updates["Run"]["Log"] = f"{COPY_DIR}/train.log (copied from {inst.name})"
        g.update("progress", updates, project)
    return snap


def main(argv: list[str]) -> None:
    """The probe's entry on the instance: one JSON line on stdout; a clear error exits 2."""
    try:
        out = probe(argv[0], int(argv[1]))
    except TrainwrightError as exc:
        print(f"trainwright: error: {exc.one_line()}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
