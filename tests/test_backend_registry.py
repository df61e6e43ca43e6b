"""The registry of backends: one module per trainer, and the rest of the package asks it.

The strongest check of "adding a trainer is adding one file": a backend module written into a
temporary folder on the package's path shows up in the CLI choices, the log reader, the failure
texts, the install probe and the cluster steps, with no other change.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import assert_one_line_error, run_cli
from trainwright import backends
from trainwright.backends.common import halve_batch
from trainwright.errors import TrainwrightError

ROOT = Path(__file__).resolve().parents[1]

FAKE = '''
"""Backend `fakeone`: a trainer that exists only in this test."""
import re
from pathlib import Path

from trainwright.backends.common import Launch
from trainwright.run.logs.common import LogState

NAME = "fakeone"
ALIASES = ("fake_one_alias",)
KINDS = ("llm",)
CONFIG_FILE = "fake.yaml"
RUNS_ON_CPU = True
BATCH_KEYS = ("micro_batch", "accum")
INSTALL = {"packages": ["json"], "install": "pip install fakeone"}
LOG_SIGNATURE = re.compile(r"^fakeone step \\d+", re.M)
FAILURE_TEXTS = {"dataset": [r"FAKEONE: no rows in [^\\n]+"]}
MAX_PROCESSES = 1
CLUSTER_DEFAULTS = {"model": "m", "dataset": "d", "gpus": "cpu"}


def read_config(path):
    import yaml
    return yaml.safe_load(Path(path).read_text())


def parse_log(text, state=None):
    st = state or LogState("fakeone")
    for line in text.splitlines():
        if line.startswith("fakeone step "):
            _, _, step, loss = line.split()
            st.add_point(int(step), float(loss))
    return st


def cluster_config(run, experiment_dir):
    return "micro_batch: 4\\naccum: 1\\n"


def cluster_launch(run, run_dir, config, python, launcher):
    return Launch([python, "-c", "print('fakeone step 1 0.5')"], [], run_dir / "out", "*.bin")
'''


@pytest.fixture
def fake_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    folder = tmp_path / "more_backends"
    folder.mkdir()
    (folder / "fakeone.py").write_text(textwrap.dedent(FAKE))
    monkeypatch.setattr(backends, "__path__", [*backends.__path__, str(folder)])
    backends._modules.cache_clear()
    from trainwright.run import failures

    failures.rules.cache_clear()
    yield "fakeone"
    backends._modules.cache_clear()
    failures.rules.cache_clear()
    sys.modules.pop("trainwright.backends.fakeone", None)


def test_a_new_backend_module_is_asked_everywhere(fake_backend: str, tmp_path: Path) -> None:
    from trainwright.choices import cluster_backend_names, log_format_names
    from trainwright.cluster import adapters
    from trainwright.hardware import env_check
    from trainwright.run.failures import classify
    from trainwright.run.logs import parse_text

    assert fake_backend in backends.names()
    assert backends.get("FAKE_ONE_ALIAS").NAME == fake_backend  # aliases, any case
    assert fake_backend in cluster_backend_names() and fake_backend in log_format_names()
    assert fake_backend in adapters.cpu_backends()
    state = parse_text("fakeone step 1 2.5\nfakeone step 2 1.5\n")  # detected by content
    assert state.format == fake_backend and state.loss == 1.5
    failure = classify("Traceback\nFAKEONE: no rows in data.jsonl\n", 1)
    assert failure.kind == "dataset" and "FAKEONE" in (failure.evidence or "")
    ok, detail, fingerprint, _ = env_check.probe_backend(fake_backend, deep=False)
    assert ok and detail.startswith("json") and fingerprint.startswith("fakeone:")
    config = tmp_path / "fake.yaml"
    config.write_text("micro_batch: 6\naccum: 2\n")
    assert backends.batch_settings(backends.get(fake_backend), config) == (6, 2)
    assert backends.checkpoint_dir(backends.get(fake_backend), config) == tmp_path / "output"


def test_a_new_backend_on_the_runs_plan(fake_backend: str, tmp_path: Path) -> None:
    """`runs plan --backend fakeone` (a CLI choice made from the registry) writes a plan that
    names it; here in-process, since the module lives only on this test's package path."""
    from click.testing import CliRunner

    from trainwright.cli import cli

    exp = tmp_path / "exp"
    result = CliRunner().invoke(cli, ["runs", "plan", str(exp), "--backend", fake_backend])
    assert result.exit_code == 0, result.output
    assert f"**Backend**: {fake_backend}" in (exp / "runs_plan.md").read_text()


def test_unknown_backend_is_one_line_listing_the_known(tmp_path: Path) -> None:
    with pytest.raises(TrainwrightError) as err:
        backends.get("kohyaa")
    for name in backends.names():
        assert name in str(err.value)
    proc = run_cli("runs", "plan", str(tmp_path / "e"), "--backend", "nope")
    assert proc.returncode == 2 and "nope" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("env", "check", "--backend", "nope", cwd=tmp_path)
    assert_one_line_error(proc, "unknown backend 'nope'")


def test_every_backend_declares_the_interface() -> None:
    from trainwright.hardware.vram import frameworks

    for mod in backends.all_backends():
        for attr in ("NAME", "KINDS", "CONFIG_FILE", "INSTALL", "command", "read_config"):
            assert hasattr(mod, attr), f"{mod.NAME} lacks {attr}"
        assert hasattr(mod, "BATCH_KEYS") or hasattr(mod, "batch_settings"), mod.NAME
        assert backends.framework(mod) in frameworks()  # a loss head loss-heads.yaml knows
        if hasattr(mod, "cluster_launch"):
            assert hasattr(mod, "cluster_config") and hasattr(mod, "CLUSTER_DEFAULTS"), mod.NAME


@given(st.integers(1, 4096), st.integers(1, 512))
def test_the_one_out_of_memory_rule(batch: int, accumulation: int) -> None:
    if batch == 1:
        with pytest.raises(ValueError):
            halve_batch(batch, accumulation)
        return
    new_batch, new_accum = halve_batch(batch, accumulation)
    assert new_batch == batch // 2
    assert new_batch * new_accum >= batch * accumulation  # the effective batch never shrinks
    assert new_batch * (new_accum - 1) < batch * accumulation  # and grows no more than needed


def test_the_cluster_retry_uses_the_same_rule(tmp_path: Path) -> None:
    from trainwright.cluster.adapters import halve_batch as shrink_file

    config = tmp_path / "finetune.yaml"
    config.write_text("batch_size: 5  # per GPU\ngradient_accumulation_steps: 3\n")
    old_b, old_a, new_b, new_a = shrink_file(config, ("batch_size", "gradient_accumulation_steps"))
    assert (new_b, new_a) == halve_batch(5, 3) == (2, 8)
    assert "batch_size: 2  # per GPU" in config.read_text()


def test_no_module_outside_backends_names_a_backend_in_code() -> None:
    spec = importlib.util.spec_from_file_location("mentions", ROOT / "bench/backend_mentions.py")
    assert spec and spec.loader
    mentions = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mentions)
    found = mentions.survey(ROOT / "scripts/trainwright")
    in_code = {rel: code for rel, (code, _) in found.items() if code}
    assert in_code == {}, f"backend names in code outside backends/: {in_code}"


def test_hardware_imports_nothing_from_run() -> None:
    """The arrows that ran up from hardware/ (into run/ for a timestamp, into the config
    library for Gate 2) are gone: hardware/ asks only the registry of backends."""
    for path in (ROOT / "scripts/trainwright/hardware").glob("*.py"):
        text = path.read_text()
        assert "trainwright.run" not in text, path.name
        assert "backends.commands" not in text and "backends.configure" not in text, path.name


def test_the_estimate_follows_the_backends_loss_head() -> None:
    """`config` and Gate 2 size a plan with the loss head its backend computes."""
    from trainwright.backends.configure import vram_setup
    from trainwright.backends.training_plan import plan_from_settings
    from trainwright.hardware import catalog, vram

    tt = backends.get("torchtune")
    model = catalog.load().get("llama3.1-8b")
    seen = {}
    for label, extra in (("eager", {}), ("compiled", {"compile": True})):
        plan = plan_from_settings("torchtune", {"model": "llama3.1-8b", "project": "p", **extra})
        setup = vram_setup(plan, tt)
        seen[label] = (setup.framework, vram.estimate(model, setup).total)
    assert seen["eager"][0] == "torchtune" and seen["compiled"][0] == "torchtune-compile"
    assert seen["compiled"][1] < seen["eager"][1]
    image = plan_from_settings("kohya", {"model": "sdxl", "project": "p"})
    assert vram_setup(image, backends.get("kohya")).framework == "none"
