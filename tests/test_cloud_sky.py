"""`trainwright cloud sky NAME`: the SkyPilot task, read by SkyPilot's own parser (installed in a
venv of its own: its pins would move this venv's click), and its setup and run scripts run for
real on a copy of the project, as SkyPilot runs them on the cluster (workdir synced, the wheel
folder mounted)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support.cloud_instance import image_python, pack_wheelhouse, tiny_ready
from support.pip_install import install_or_skip
from trainwright.cloud import skypilot_task
from trainwright.errors import TrainwrightError

SKYPILOT = "skypilot==0.14.1"
TW = [sys.executable, "-m", "trainwright"]


def tw(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*TW, *args], cwd=root, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def sky_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("skypilot") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install_or_skip(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", SKYPILOT], SKYPILOT
    )
    return venv / "bin" / "python"


def sky_reads(sky_python: Path, root: Path, task: str) -> dict:
    """What SkyPilot makes of the task, run from the project root as `sky launch` would be."""
    code = (
        "import json, sys, sky\n"
        "t = sky.Task.from_yaml(sys.argv[1])\n"
        "(r,) = t.resources\n"
        "a = r.autostop_config\n"
        "print(json.dumps({'accelerators': r.accelerators, 'cloud': str(r.cloud),\n"
        "  'autostop': [a.enabled, a.idle_minutes, a.down], 'workdir': t.workdir,\n"
        "  'mounts': t.file_mounts, 'name': t.name}))\n"
    )
    proc = subprocess.run(
        [str(sky_python), "-c", code, task], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "typed,name",
    [
        ("RTX 4090", "RTX4090"),
        ("NVIDIA GeForce RTX 4090", "RTX4090"),
        ("A100 80GB", "A100-80GB"),
        ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
        ("A100 40GB", "A100"),
        ("H100 SXM", "H100"),
        ("L40S", "L40S"),
    ],
)
def test_accelerator_names_as_skypilot_writes_them(typed: str, name: str) -> None:
    assert skypilot_task.accelerator(typed) == name


@pytest.mark.parametrize("bad", ["", "NVIDIA", "RTX 4090; rm -rf /", "$(reboot)"])
def test_a_gpu_that_is_not_a_model_name_is_refused(bad: str) -> None:
    with pytest.raises(TrainwrightError):
        skypilot_task.accelerator(bad)


def test_bad_inputs_are_one_line_and_exit_2(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    for args in (("init", "."), ("grimoire", "new", "demo")):
        assert tw(root, *args).returncode == 0
    for args, said in (
        (("cloud", "sky", "nope", "--gpu", "RTX 4090", "--max-hours", "2"), "no training project"),
        (("cloud", "sky", "demo", "--gpu", "RTX 4090"), "give --max-hours H"),
        (("cloud", "sky", "demo", "--gpu", "$(x)", "--max-hours", "2"), "not a GPU model"),
        (("cloud", "sky", "demo", "--gpu", "A10", "--max-hours", "-1"), "--max-hours"),
        (("cloud", "sky", "demo", "--gpu", "A10", "--provider", "aws"), "--provider"),
    ):
        proc = tw(root, *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (root / "grimoire" / "training" / "demo" / "sky-task.yaml").exists()


def test_a_hand_edited_task_is_kept_beside_before_it_is_written_again(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    for args in (("init", "."), ("grimoire", "new", "demo")):
        assert tw(root, *args).returncode == 0
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "trainwright-0.1.0-py3-none-any.whl").write_bytes(b"a wheel")
    config = root / "grimoire" / "training" / "demo" / "config.md"
    config.write_text(config.read_text().replace("- **Backend**:\n", "- **Backend**: tiny\n"))
    args = ("cloud", "sky", "demo", "--gpu", "L4", "--max-hours", "2", "--wheelhouse", str(wheels))
    first = tw(root, *args, "--json")
    assert first.returncode == 0 and json.loads(first.stdout)["kept"] is None, first.stderr
    task = root / "grimoire" / "training" / "demo" / "sky-task.yaml"
    assert "sky launch -c tw-demo grimoire/training/demo/sky-task.yaml" in task.read_text()
    mine = task.read_text() + "# my own note\n"
    task.write_text(mine)
    again = tw(root, *args)
    assert again.returncode == 0 and "your earlier version is kept as" in again.stdout
    (kept,) = task.parent.glob("sky-task.yaml.*.bak")
    assert kept.read_text() == mine and "# my own note" not in task.read_text()
    assert json.loads(tw(root, *args, "--json").stdout)["kept"] is None  # unchanged: no copy


@pytest.mark.slow  # installs SkyPilot in a venv; trains the tiny backend for real
def test_skypilot_reads_the_task_and_its_scripts_train_on_a_copy(
    tmp_path: Path, sky_python: Path
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    for args in (("init", "."), ("grimoire", "new", "demo")):
        assert tw(root, *args).returncode == 0
    tiny_ready(root)
    wheels = pack_wheelhouse(tmp_path)
    proc = tw(root, "cloud", "sky", "demo", "--gpu", "RTX 4090", "--provider", "runpod",
              "--max-hours", "2", "--idle-minutes", "15", "--wheelhouse", str(wheels),
              "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["launch"] == "sky launch -c tw-demo grimoire/training/demo/sky-task.yaml"
    seen = sky_reads(sky_python, root, out["task"])
    assert seen["accelerators"] == {"RTX4090": 1} and seen["cloud"] == "RunPod", seen
    assert seen["autostop"] == [True, 15, True] and seen["name"] == "tw-demo", seen
    (mount,) = seen["mounts"].values()
    assert (root / mount / out["wheel"]).is_file()  # the wheel is where the task mounts it from

    # the cluster: the workdir synced to ~/sky_workdir, the wheel folder mounted, the image's
    # system Python (PyTorch installed, the pack not), no GPU (the tiny backend trains on CPU)
    task = yaml.safe_load((root / out["task"]).read_text())
    home = tmp_path / "cluster-home"
    workdir = home / "sky_workdir"
    shutil.copytree(root, workdir, symlinks=True)
    mounted = Path(skypilot_task.WHEELS_THERE)
    shutil.rmtree(mounted, ignore_errors=True)
    shutil.copytree(root / mount, mounted)
    image = image_python(tmp_path)
    env = {
        **os.environ,
        "HOME": str(home),
        "PATH": f"{image.parent}:/usr/bin:/bin",
        "TRAINWRIGHT_NVIDIA_SMI": "",
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
    }
    env.pop("VIRTUAL_ENV", None)
    try:
        for step, timeout in (("setup", 600), ("run", 900)):
            ran = subprocess.run(["bash", "-c", task[step]], cwd=workdir, env=env,
                                 capture_output=True, text=True, timeout=timeout)  # fmt: skip
            assert ran.returncode == 0, (step, ran.stdout[-3000:], ran.stderr[-3000:])
    finally:
        shutil.rmtree(mounted, ignore_errors=True)
    assert (home / "trainwright-venv" / "bin" / "trainwright").is_file()
    there = workdir / "grimoire" / "training" / "demo"
    assert len(sorted((there / "output").glob("demo-epoch-*.safetensors"))) == 3
    assert "- **Status**: COMPLETE" in (there / "progress.md").read_text()
    assert not (root / "grimoire" / "training" / "demo" / "output").exists()  # ran on the copy
