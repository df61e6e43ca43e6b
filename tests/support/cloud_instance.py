"""The instance side of the cloud tests: a studio.md record whose ssh address is the loopback sshd
(tests/support/ssh_server.py), a project folder "pushed" there, and a tiny-backend project whose
Gates 1 and 2 are GO, so the pack's own commands can run on the "instance".

Until `cloud push` and `cloud setup` exist, `push_copy` copies the project into the instance's
folder and `Remote python` is this checkout's interpreter (which has trainwright).
"""

from __future__ import annotations

import datetime as _dt
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from trainwright.backends.tiny_model.data import write_example_dataset
from trainwright.cloud import records
from trainwright.state import gates
from trainwright.state.grimoire import Grimoire

TW = [sys.executable, "-m", "trainwright"]


def tw(root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    proc = subprocess.run(
        [*TW, *args], cwd=root, capture_output=True, text=True, timeout=timeout, env=env
    )
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc.stdout


def tiny_ready(root: Path, name: str = "demo", env: dict[str, str] | None = None) -> Grimoire:
    """A tiny project in `root` (already `trainwright init` with `grimoire new NAME`), every path
    relative to the project root, Gate 2 checked for real and Gate 1 GO bound to the dataset.

    Gate 1 belongs to the dataset room (a real GO needs 20+ distinct images); here it is recorded
    GO with its real binding, as tests/support/tiny_project.py's stand-ins do."""
    write_example_dataset(root / "dataset", 8, size=64)
    tw(
        root,
        "grimoire",
        "set",
        "intent",
        "--project",
        name,
        "Type=style",
        "Base model=tiny",
        "Trigger word=exstyle",
        "Dataset folder=dataset",
        env=env,
    )
    tw(
        root,
        "config",
        "--project",
        name,
        "--backend",
        "tiny",
        "--model",
        "tiny",
        "--preset",
        "quick",
        "resolution=64",
        "epochs=3",
        "batch_size=2",
        "save_every_n_epochs=1",
        env=env,
    )
    cfg = root / "grimoire" / "training" / name / "tiny.yaml"
    text = cfg.read_text()
    assert f"dataset: {root / 'dataset'}\n" in text
    cfg.write_text(text.replace(f"dataset: {root / 'dataset'}\n", "dataset: ../../../dataset\n"))
    tw(root, "gate", "check", name, "--gate", "2", env=env)
    g = Grimoire(root / "grimoire")
    from trainwright.dataset import gate as dataset_gate

    bound = dataset_gate.binding(g, name)
    gates.record(g, name, 1, gates.GateResult(gates.GO, ["stand-in"], bound))
    return g


def rent(cp: Any, server: Any, folder: Path, hours: float) -> str:
    """A running instance in the fake provider, recorded in studio.md the way `cloud up` and
    `cloud setup` record one, whose ssh address is the loopback sshd `server`."""
    from trainwright import clock

    row = next(iter(cp.fake.instances.values()), None)
    iid = cp.fake.new_id()
    cp.fake.instances[iid] = {
        **(row or {}),
        "id": int(iid),
        "_provider": "vast",
        "label": "trainwright-demo",
        "gpu_name": "RTX 4090",
        "dph_total": 0.318,
        "actual_status": "running",
        "cur_state": "running",
    }
    now = clock.utc_now()
    title = records.title_for("vast", iid)
    fields: dict[str, object] = {
        "Project": "demo",
        "Provider": "vast",
        "ID": iid,
        "GPU": "RTX 4090",
        "Offer": "31000222",
        "Price per hour": 0.318,
        "Started": clock.iso_utc(now),
        "Deadline": clock.iso_utc(now + _dt.timedelta(hours=hours)),
        "Status": "RUNNING",
        "SSH": f"{server.user}@127.0.0.1:{server.port}",
        "Remote folder": str(folder),
        "Remote python": sys.executable,
    }
    records.add(Grimoire(cp.root / "grimoire"), title, fields)
    return title


def set_instance_fields(studio_root: Path, fields: dict[str, object]) -> str:
    """Set fields on the one instance studio.md records (as `cloud up` / `cloud setup` will)."""
    g = Grimoire(studio_root / "grimoire")
    (rec,) = [r for r in records.read(g) if r.running]
    records.update(g, rec.title, fields)
    return rec.title


def push_copy(root: Path, folder: Path) -> None:
    """The project copied to the instance's folder (what `cloud push` will do by rsync)."""
    shutil.copytree(
        root,
        folder,
        ignore=shutil.ignore_patterns(".cloud"),
        dirs_exist_ok=True,
    )
