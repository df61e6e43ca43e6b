"""The project to the instance and back: push (rsync), setup (a venv there), pull (verified).

push sends the project's part of the grimoire (config files, gate state), the grimoire's own
files, the pack's resources and the dataset, with `rsync -az --partial --checksum --update`:
a second push sends only what changed, an interrupted one resumes from the partial file, a file
newer on the instance (what a run there wrote) is not overwritten, and nothing there is ever
deleted (no --delete). A dataset outside the project goes to its own absolute path there; the
first push to that path looks first (a dry run) and copies nothing if it would replace files
there that differ from these, since the pack did not put them there. pull brings the project
folder back (LoRA files, checkpoints, logs, progress) and checks every file against sha256 sums
computed on the instance.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainwright import clock, cloud
from trainwright.cloud import records
from trainwright.cloud.base import ProviderError
from trainwright.cloud.bringup import check_folder, state_dir
from trainwright.cloud.remote import Remote, RemoteError, from_record
from trainwright.errors import TrainwrightError
from trainwright.state.content_hash import file_sha256
from trainwright.state.grimoire import Grimoire
from trainwright.state.names import check_name

RSYNC_OPTS_ENV = "TRAINWRIGHT_RSYNC_OPTS"  # e.g. --bwlimit=5000 on a slow link
PARTIAL_DIR = ".trainwright-partial"  # an outside dataset's half-sent files wait here
RSYNC = ["rsync", "-az", "--partial", "--checksum", "--update", "--exclude=*.lock", "-s"]
# --info=skip1 names each file --update left alone because the receiver's copy is newer
HASHES = r"""
import hashlib, json, os, sys
root = sys.argv[1]
out = {}
for dirpath, dirs, files in os.walk(root):
    for name in files:
        if name.endswith(".lock"):
            continue
        path = os.path.join(dirpath, name)
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        st = os.stat(path)
        out[os.path.relpath(path, root)] = [h.hexdigest(), st.st_size, st.st_mtime]
print(json.dumps(out))
"""


@dataclass
class Target:
    record: records.Record
    remote: Remote


def record_for(g: Grimoire, project: str, running: bool = True) -> records.Record:
    check_name(project)
    if project not in g.projects():
        raise TrainwrightError(
            f"no training project {project!r} in {g.root} (trainwright grimoire new {project})"
        )
    mine = [r for r in records.read(g) if r.project == project]
    live = [r for r in mine if r.running]
    if live:
        return live[0]
    if not running and mine:
        return mine[-1]
    raise TrainwrightError(
        f"no running instance recorded for {project!r} in studio.md: rent one with "
        f"`trainwright cloud up {project} --provider P --offer ID` (`cloud ls` lists them)"
    )


def target_for(g: Grimoire, project: str) -> Target:
    rec = record_for(g, project)
    remote = from_record(rec, state_dir(g))
    check_folder(remote.folder)
    return Target(rec, remote)


def _rsync(args: list[str], remote: Remote, cwd: Path, timeout: float) -> dict[str, Any]:
    try:
        extra = shlex.split(os.environ.get(RSYNC_OPTS_ENV, ""))
    except ValueError as exc:
        raise TrainwrightError(f"{RSYNC_OPTS_ENV} is not valid shell words: {exc}") from None
    argv = [*RSYNC, "--stats", "--itemize-changes", "--info=skip1", "-e", remote.rsh()]
    argv += [*extra, *args]
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise TrainwrightError("rsync is not installed here (apt-get install rsync)") from None
    except subprocess.TimeoutExpired:
        raise RemoteError(
            f"{remote.address}: rsync did not finish within {timeout:g} s; run it again, it resumes"
        ) from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        why = lines[0] if lines else f"exit {proc.returncode}"
        if "command not found" in proc.stderr or proc.returncode == 127:
            why = "rsync is not installed on the instance (apt-get install rsync there)"
        raise RemoteError(f"{remote.address}: rsync failed ({why}); run it again, it resumes")
    return _stats(proc.stdout)


def _stats(text: str) -> dict[str, Any]:
    def number(label: str) -> int:
        m = re.search(rf"^{label}: ([\d,]+)", text, re.M)
        return int(m.group(1).replace(",", "")) if m else 0

    # itemized file lines: `>f+++++++++ name` is a new file, any other flags replace one there
    files = [ln.split(" ", 1) for ln in text.splitlines() if re.match(r"^[<>]f", ln)]
    changed = [name for _, name in files]
    replaced = [name for flags, name in files if flags[2:] != "+" * 9]
    return {
        "files_transferred": number("Number of regular files transferred"),
        "bytes_sent": number("Total bytes sent"),
        "bytes_received": number("Total bytes received"),
        "literal_bytes": number("Literal data"),
        "matched_bytes": number("Matched data"),
        "changed": changed,
        "replaced": replaced,
        "newer_there": [
            ln[: -len(" is newer")] for ln in text.splitlines() if ln.endswith(" is newer")
        ],
    }


def _dest(remote: Remote, sub: str = "") -> str:
    return f"{remote.login}:{remote.folder.rstrip('/')}/{sub}"


def push_paths(g: Grimoire, project: str) -> tuple[list[str], Path | None]:
    """What goes to the instance, relative to the project root; and a dataset outside it."""
    root = g.project_root
    studio = g.path_for("studio")
    paths = [
        f"./{p.relative_to(root)}"
        for p in sorted(g.root.iterdir())
        if p.is_file() and p != studio  # the rental records change with every push: kept here
    ]
    paths.append(f"./{g.project_dir(project).relative_to(root)}/")
    for extra in ("grimoire/templates", ".trainwright/pack.json", "resources"):
        if (root / extra).exists():
            paths.append(f"./{extra}")
    outside = None
    data = g.dataset_folder(project)
    if data is not None:
        if not data.exists():
            raise TrainwrightError(f"the dataset {data} (intent.md's Dataset folder) is not there")
        try:
            inside = data.resolve().relative_to(root.resolve())
        except ValueError:
            outside = data
        else:
            paths.append(f"./{inside}/" if data.is_dir() else f"./{inside}")
    return paths, outside


def path_problems(g: Grimoire, project: str) -> list[str]:
    """Paths of this machine that the copy on the instance would look for and not find: the
    project lives in another folder there, so what lies inside it must be named relative to it.
    (A dataset outside the project is copied to the same absolute path there: see push.)"""
    from trainwright.state.hints import config_command

    root = g.project_root.resolve()
    problems = []
    _, intent = g.read("intent", project)
    raw = str(intent["sections"].get("", {}).get("Dataset folder") or "").strip()
    if raw and Path(raw).expanduser().is_absolute():
        try:
            rel = Path(raw).expanduser().resolve().relative_to(root)
        except ValueError:
            pass
        else:
            problems.append(
                f"intent.md names the dataset by this machine's path {raw}; name it from the "
                f"project root: trainwright grimoire set intent --project {project} "
                f"{shlex.quote(f'Dataset folder={rel}')}"
            )
    folder = g.project_dir(project)
    texts = (str(root), str(g.project_root))
    for path in sorted(folder.glob("*.*")) + sorted(folder.glob("config/*.*")):
        if path.suffix not in (".yaml", ".yml", ".toml", ".json") or ".bak" in path.suffixes:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if any(t + os.sep in text for t in texts):
            problems.append(
                f"{path.relative_to(folder)} names files by this machine's path {root}; write "
                f"it again (files inside the project are now named relative to it): "
                f"{config_command(g, project)}, then Gates 2 and 4 again"
            )
    return problems


def push(g: Grimoire, project: str, timeout: float = 3600) -> dict[str, Any]:
    t = target_for(g, project)
    paths, outside = push_paths(g, project)
    problems = path_problems(g, project)
    if problems:
        raise TrainwrightError("nothing pushed: " + "; ".join(problems))
    t.remote.run(t.remote.in_folder("true"))  # the folder exists before rsync writes into it
    stats = _rsync(["--relative", *paths, _dest(t.remote)], t.remote, g.project_root, timeout)
    studio = f"./{g.path_for('studio').relative_to(g.project_root)}"
    if Path(g.project_root, studio).is_file():  # a first copy, for the pack's commands there
        more = _rsync(
            ["--relative", "--ignore-existing", studio, _dest(t.remote)],
            t.remote,
            g.project_root,
            timeout,
        )
        stats["files_transferred"] += more["files_transferred"]
        stats["changed"] += more["changed"]
    there = str(outside.resolve()) if outside is not None else None
    if outside is not None:  # the configs name it by its absolute path: the same path there
        parent = there if outside.is_dir() else os.path.dirname(there)
        t.remote.run(f"mkdir -p {shlex.quote(parent)}")
        # a cut copy leaves its partial file beside, not under the name: the next push's look
        # must not take our own half-sent file for one the pack did not put there
        copy = [
            f"--partial-dir={PARTIAL_DIR}",
            f"{there}/" if outside.is_dir() else there,
            f"{t.remote.login}:{there}",
        ]
        if t.record.fields.get("Remote dataset") != there:
            look = _rsync(["--dry-run", *copy], t.remote, g.project_root, timeout)
            refuse_foreign(there, look["replaced"], t.remote.address)
        more = _rsync(copy, t.remote, g.project_root, timeout)
        for key in ("files_transferred", "bytes_sent", "literal_bytes", "matched_bytes"):
            stats[key] += more[key]
        stats["changed"] += [f"{there}/{c}" for c in more["changed"]]
        stats["newer_there"] += [f"{there}/{c}" for c in more["newer_there"]]
    when = clock.iso_utc(clock.utc_now())
    note = f"{when} ({stats['files_transferred']} files changed, {stats['bytes_sent']} bytes sent)"
    fields: dict[str, object] = {"Pushed": note}
    if outside is not None:
        fields["Remote dataset"] = there
    records.update(g, t.record.title, fields)
    return {
        "project": project,
        "instance": t.remote.address,
        "folder": t.remote.folder,
        "paths": paths + ([str(outside)] if outside else []),
        **stats,
    }


def refuse_foreign(there: str, replaced: list[str], address: str) -> None:
    """Before the first copy to `there`: files there that this copy would replace were not put
    there by the pack, so nothing is copied over them."""
    if not replaced:
        return
    shown = ", ".join(replaced[:5]) + (
        f" and {len(replaced) - 5} more" if len(replaced) > 5 else ""
    )
    raise TrainwrightError(
        f"the project was pushed but not its dataset: {address} already has different files at "
        f"{there} that trainwright did not put there ({shown}); move them aside on the instance "
        "and push again, or move the dataset inside the project"
    )


# ---- pull ----------------------------------------------------------------------------------


def _manifest(g: Grimoire, rec: records.Record) -> Path:
    return state_dir(g) / f"{rec.provider}-{rec.id}.pulled.json"


def _gone(rec: records.Record) -> bool:
    """Whether the provider no longer has the instance (a TERMINATED record: it said so)."""
    if not rec.running:
        return True
    try:
        return cloud.get(rec.provider).status(rec.id) is None
    except ProviderError:
        return False


def _lost(g: Grimoire, rec: records.Record, project: str, why: str) -> TrainwrightError:
    last = None
    manifest = _manifest(g, rec)
    if manifest.is_file():
        last = json.loads(manifest.read_text(encoding="utf-8")).get("pulled_at")
    lost = (
        f"what the instance wrote after the last pull at {last} (newer LoRA files, checkpoints, "
        "logs, progress)"
        if last
        else "everything the run wrote there (LoRA files, checkpoints, logs, progress): it was "
        "never pulled"
    )
    records.update(g, rec.title, {"Lost": f"{lost}; found at {clock.iso_utc(clock.utc_now())}"})
    return TrainwrightError(
        f"{rec.provider} instance {rec.id} is gone ({why}): lost {lost}; recorded in studio.md"
    )


def pull(g: Grimoire, project: str, timeout: float = 3600) -> dict[str, Any]:
    rec = record_for(g, project, running=False)
    if not rec.running:
        raise _lost(g, rec, project, "studio.md records it TERMINATED")
    remote = from_record(rec, state_dir(g))
    check_folder(remote.folder)
    if not remote.reachable():
        if _gone(rec):
            raise _lost(g, rec, project, "the provider no longer has it")
        raise RemoteError(
            f"{remote.address} does not answer over ssh, but {rec.provider} still lists "
            f"instance {rec.id} (running, costing money): try `cloud pull {project}` again"
        )
    sub = str(g.project_dir(project).relative_to(g.project_root))
    listing = remote.run(
        remote.in_folder(f"python3 - {shlex.quote(sub)}"), stdin=HASHES, timeout=timeout
    )
    try:
        sums: dict[str, list[Any]] = json.loads(listing.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RemoteError(f"{remote.address}: no hash list came back") from None
    local = g.project_dir(project)
    stats = _rsync([_dest(remote, f"{sub}/"), f"{local}/"], remote, g.project_root, timeout)
    verified, kept, bad = [], [], []
    for rel, (digest, _size, mtime) in sorted(sums.items()):
        path = local / rel
        if path.is_file() and file_sha256(path)[0] == digest:
            verified.append(rel)
        elif path.is_file() and path.stat().st_mtime > mtime:
            kept.append(rel)  # changed here after the instance's copy: --update kept it
        else:
            bad.append(rel)
    if bad:
        raise TrainwrightError(
            f"{len(bad)} pulled file(s) do not match the instance's sha256 ({', '.join(bad[:5])}); "
            f"run `trainwright cloud pull {project}` again"
        )
    when = clock.iso_utc(clock.utc_now())
    _manifest(g, rec).write_text(json.dumps({"pulled_at": when, "files": sums}, indent=1))
    records.update(g, rec.title, {"Pulled": f"{when} ({len(verified)} files, sha256 verified)"})
    return {
        "project": project,
        "instance": remote.address,
        "verified": verified,
        "kept_newer_here": kept,
        **stats,
    }


__all__ = ["push", "pull", "target_for", "record_for", "push_paths"]
