"""For the run on a rented instance (the loopback sshd, tests/support/ssh_server.py): a
tiny-backend project whose Gates 1 and 2 are GO, what `cloud setup` installs from, and a way to
change an instance's recorded fields (its deadline).

`cloud setup` installs the pack there from a wheel of this checkout (`pack_wheelhouse`) into a
venv made from `image_python`, which plays the provider image's system Python.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    """A tiny project in `root` (already `trainwright init` with `grimoire new NAME`), configured
    as a person would (the dataset typed relative to the project root), Gate 2 checked for real
    and Gate 1 GO bound to the dataset.

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
    assert "dataset: ../../../dataset\n" in cfg.read_text()  # as config writes it: it travels
    tw(root, "gate", "check", name, "--gate", "2", env=env)
    g = Grimoire(root / "grimoire")
    from trainwright.dataset import gate as dataset_gate

    bound = dataset_gate.binding(g, name)
    gates.record(g, name, 1, gates.GateResult(gates.GO, ["stand-in"], bound))
    return g


def image_python(base: Path) -> Path:
    """A system Python as a provider's image has it: PyTorch and the pack's dependencies in its
    own site-packages, trainwright not.

    A venv cannot play it: a venv made from a venv takes the first one's base interpreter as its
    "system", so `cloud setup`'s `--system-site-packages` venv would not see the packages. So
    this is a Python installation of its own: the base interpreter's binary, its standard
    library linked in, and a site-packages whose .pth names this venv's packages."""
    import shutil
    import sysconfig

    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    image = base / "image"
    lib = image / "lib" / version
    (lib / "site-packages").mkdir(parents=True)
    (image / "bin").mkdir()
    shutil.copy2(Path(sys.base_prefix, "bin", version), image / "bin" / version)
    (image / "bin" / "python").symlink_to(version)
    (image / "bin" / "python3").symlink_to(version)
    for entry in Path(sys.base_prefix, "lib", version).iterdir():
        if entry.name != "site-packages":
            (lib / entry.name).symlink_to(entry)
    (lib / "site-packages" / "image_packages.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    return image / "bin" / "python"


def pack_wheelhouse(base: Path) -> Path:
    """A folder holding a trainwright wheel built from this checkout (`cloud setup --no-index`)."""
    from trainwright import cloud

    out = base / "wheelhouse"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(out), str(Path(cloud.__file__).parents[3])],
        check=True,
        timeout=300,
    )
    return out


def set_instance_fields(studio_root: Path, fields: dict[str, object]) -> str:
    """Set fields on the one instance studio.md records (as `cloud up` / `cloud setup` will)."""
    g = Grimoire(studio_root / "grimoire")
    (rec,) = [r for r in records.read(g) if r.running]
    records.update(g, rec.title, fields)
    return rec.title
