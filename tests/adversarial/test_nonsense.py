"""Silent nonsense (issue 13, section 5): input that used to be accepted and turned into a wrong
answer or a wrong file, now refused with one line (or, where it is fine, done right)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import Case, Result, cli, ids, run_case

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: data.comfyui

T1 = "grimoire/training/t1"


def _ok(proc) -> None:
    assert proc.returncode == 0, proc.stderr + proc.stdout


def _new(project: Path) -> None:
    _ok(cli(project, "grimoire", "new", "t1"))


def _intent(project: Path, base: str = "tiny", folder: str = "ds") -> None:
    _new(project)
    _ok(
        cli(project, "grimoire", "set", "intent", "--project", "t1", "Type=style",
            f"Base model={base}", "Trigger word=zzq", f"Dataset folder={folder}")
    )  # fmt: skip


def _images(folder: Path, count: int = 4, size: int = 48) -> None:
    from trainwright.backends.tiny_model.data import write_example_dataset

    write_example_dataset(folder, count, size=size)


def _truncated(path: Path) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (48, 48), (250, 10, 10)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[:-120])


def _lora(path: Path, backend: str) -> Path:
    from data.comfyui.fake_server import write_lora

    return write_lora(path, metadata={"trainwright_backend": backend})


def _err(*fragments: str) -> Callable[[Result], None]:
    def check(r: Result) -> None:
        for f in fragments:
            assert f in r.err, f"{f!r} not in {r.err!r}"

    return check


def _out(*fragments: str, absent: tuple[str, ...] = ()) -> Callable[[Result], None]:
    def check(r: Result) -> None:
        for f in fragments:
            assert f in r.out, f"{f!r} not in {r.out!r}"
        for f in absent:
            assert f not in r.out, f"{f!r} in {r.out!r}"

    return check


def _strict_json(r: Result) -> dict:
    def refuse(word: str) -> None:
        raise AssertionError(f"not strict JSON: {word}")

    return json.loads(r.out, parse_constant=refuse)


def _set(kind: str, *assign: str, section: str | None = None, project: bool = True) -> list[str]:
    args = ["grimoire", "set", kind, *assign]
    if project:
        args += ["--project", "t1"]
    if section is not None:
        args += ["--section", section]
    return args


def _set_case(
    cid: str,
    kind: str,
    *assign: str,
    section: str | None = None,
    expect: str = "clear-error",
    check: Callable[[Result], None] | None = None,
    may_change: tuple[str, ...] = (),
) -> Case:
    project = kind not in ("eye", "studio")
    return Case(
        cid, "state", "silent-nonsense", expect, _set(kind, *assign, section=section,
        project=project), setup=_new, check=check, may_change=may_change,
    )  # fmt: skip


def _file_has(rel: str, line: str) -> Callable[[Result], None]:
    def check(r: Result) -> None:
        text = (r.project / rel).read_text()
        assert line in text.splitlines(), text

    return check


STATE = [
    _set_case("set-unknown-key-intent", "intent", "Bogus=1", check=_err("no field 'Bogus'")),
    _set_case("set-unknown-key-eye", "eye", "Bogus=1", check=_err("eye.md has no field")),
    _set_case("set-unknown-key-studio", "studio", "Colour=red"),
    _set_case("set-unknown-key-status", "status", "Colour=red"),
    _set_case("set-unknown-key-eval", "eval", "Bogus=x"),
    _set_case("set-unknown-key-progress", "progress", "Speed=fast"),
    _set_case("set-unknown-key-config", "config", "Magic=42"),
    _set_case("set-unknown-key-environment", "environment", "Mood=good"),
    _set_case(
        "set-unknown-key-gate-section", "dataset-report", "Bogus=1", section="Gate 1 Decision"
    ),  # fmt: skip
    _set_case(
        "set-unknown-key-lora-entry",
        "studio",
        "File=/x.safetensors",
        "Trigger word=q",
        "Bogus=1",
        section="LoRA: x",
        check=_err("no field 'Bogus'"),
    ),  # fmt: skip
    _set_case("set-key-case-differs", "intent", "type=style"),
    _set_case("set-date-not-a-date", "intent", "Created=notadate", check=_err("YYYY-MM-DD")),
    _set_case("set-date-month-13", "intent", "Created=2026-13-45"),
    _set_case("set-date-feb-30", "intent", "Created=2026-02-30"),
    _set_case("set-date-unicode-digits", "intent", "Created=٢٠٢٦-١٢-٠٥"),
    _set_case("set-date-with-time-in-a-date", "intent", "Created=2026-12-05T10:00:00"),
    _set_case("set-date-compact", "intent", "Created=20261205"),
    _set_case("set-updated-yesterday", "status", "Updated=yesterday"),
    _set_case("set-decided-at-garbage", "config", "Decided at=soon", section="Gate 2 Decision"),
    _set_case("set-started-garbage", "progress", "Started=2026-99-01", section="Run"),
    _set_case(
        "set-training-date-garbage",
        "studio",
        "File=/x.safetensors",
        "Trigger word=q",
        "Training date=last week",
        section="LoRA: x",
    ),  # fmt: skip
    _set_case(
        "set-date-ok",
        "intent",
        "Created=2026-12-05",
        expect="correct",
        check=_file_has(f"{T1}/intent.md", "- **Created**: 2026-12-05"),
        may_change=(f"{T1}/intent.md",),
    ),  # fmt: skip
    _set_case(
        "set-timestamp-ok",
        "status",
        "Updated=2026-12-05T10:00:00+00:00",
        expect="correct",
        may_change=(f"{T1}/status.md",),
    ),  # fmt: skip
    _set_case(
        "set-empty-date-ok",
        "intent",
        "Created=",
        expect="correct",
        check=_file_has(f"{T1}/intent.md", "- **Created**:"),
        may_change=(f"{T1}/intent.md",),
    ),  # fmt: skip
    _set_case(
        "set-unknown-section",
        "intent",
        "Type=style",
        section="No Such Section",
        check=_err("no section 'No Such Section'", "the top"),
    ),  # fmt: skip
    _set_case(
        "set-unknown-section-studio",
        "studio",
        "Name=x",
        section="Cars",
        check=_err("GPU: NAME", "LoRA: NAME"),
    ),  # fmt: skip
    _set_case("set-unknown-section-status-log", "status", "Note=x", section="Log"),
    _set_case(
        "set-gpu-entry-ok",
        "studio",
        "Name=my card",
        "VRAM GB=24",
        section="GPU: main",
        expect="correct",
        may_change=("grimoire/studio.md",),
    ),  # fmt: skip
    _set_case(
        "set-notes-per-weight-ok",
        "eval",
        "0.5=clean",
        section="Notes per weight",
        expect="correct",
        may_change=(f"{T1}/eval.md",),
    ),  # fmt: skip
    _set_case("set-status-empty", "status", "Status=", check=_err("Status")),
    _set_case("set-trigger-two-words", "intent", "Trigger word=two words"),
    _set_case("set-weight-nan", "eval", "Recommended weight=.nan", check=_err("finite")),
    _set_case("set-weight-inf", "eval", "Recommended weight=.inf"),
    _set_case("set-images-unicode-digits", "dataset-report", "Images=١٢", section="Summary"),
    _set_case("set-images-negative", "dataset-report", "Images=-3", section="Summary"),
    Case(
        "validate-missing-file",
        "state",
        "silent-nonsense",
        "refused",
        ["grimoire", "validate"],
        setup=lambda p: _without(p, "eval.md"),
        check=_out("missing", "trainwright grimoire new t1", absent=("all state files are valid",)),
    ),  # fmt: skip
    Case(
        "validate-missing-file-json",
        "state",
        "silent-nonsense",
        "refused",
        ["grimoire", "validate", "--json"],
        setup=lambda p: _without(p, "config.md"),
        check=lambda r: _expect(_strict_json(r), ok=False, missing=1),
    ),  # fmt: skip
    Case(
        "validate-no-such-project",
        "state",
        "silent-nonsense",
        "clear-error",
        ["grimoire", "validate", "--project", "nope"],
        setup=_new,
    ),  # fmt: skip
    Case(
        "validate-all-there",
        "state",
        "silent-nonsense",
        "correct",
        ["grimoire", "validate"],
        setup=_new,
        check=_out("all state files are valid"),
    ),  # fmt: skip
]


def _without(project: Path, name: str) -> None:
    _new(project)
    (project / T1 / name).unlink()


def _expect(data: dict, **values: object) -> None:
    for key, value in values.items():
        assert data[key] == value, (key, data)


V = ["vram", "--model", "sdxl"]
C = ["cost", "--gpu", "RTX 4090"]


def _num(cid: str, room: str, args: list[str], *fragments: str) -> Case:
    return Case(cid, room, "silent-nonsense", "clear-error", args, check=_err(*fragments))


NUMBERS = [
    _num("vram-batch-huge", "hardware", [*V, "--batch", "99999999999999"], "--batch"),
    _num("vram-vram-nan", "hardware", [*V, "--vram", "nan"], "--vram"),
    _num("vram-vram-inf", "hardware", [*V, "--vram", "inf"], "--vram"),
    _num("vram-vram-negative", "hardware", [*V, "--vram", "-3"], "--vram"),
    _num("vram-vram-zero", "hardware", [*V, "--vram", "0"], "--vram"),
    _num("vram-vram-1e999", "hardware", [*V, "--vram", "1e999"], "--vram"),
    _num("vram-batch-unicode", "hardware", [*V, "--batch", "١٢"], "digits 0-9"),
    _num("vram-batch-underscore", "hardware", [*V, "--batch", "1_000"], "--batch"),
    _num("vram-rank-huge", "hardware", [*V, "--rank", "100000"], "--rank"),
    _num("vram-rank-200-digits", "hardware", [*V, "--rank", "9" * 200], "--rank"),
    _num("vram-dropout-one", "hardware", [*V, "--lora-dropout", "1"], "--lora-dropout"),
    _num("vram-cuda-context-nan", "hardware", [*V, "--cuda-context", "nan"], "--cuda-context"),
    _num(
        "vram-accumulation-huge",
        "hardware",
        [*V, "--gradient-accumulation", "9" * 12],
        "--gradient-accumulation",
    ),  # fmt: skip
    _num(
        "vram-seq-len-huge",
        "hardware",
        ["vram", "--model", "llama-3-8b", "--seq-len", "99999999999"],
        "--seq-len",
    ),  # fmt: skip
    _num("cost-hours-negative", "hardware", [*C, "--hours", "-1"], "--hours", "positive"),
    _num("cost-hours-inf", "hardware", [*C, "--hours", "inf"], "--hours"),
    _num("cost-hours-1e999", "hardware", [*C, "--hours", "1e999"], "--hours"),
    _num("cost-hours-fullwidth", "hardware", [*C, "--hours", "２"], "digits 0-9"),
    _num("cost-hours-empty", "hardware", [*C, "--hours", ""], "--hours"),
    _num("cost-gpus-zero", "hardware", [*C, "--hours", "1", "--gpus", "0"], "at least 1"),
    _num("cost-gpus-huge", "hardware", [*C, "--hours", "1", "--gpus", "99999999"], "--gpus"),
    Case(
        "vram-fits-on-a-real-card",
        "hardware",
        "silent-nonsense",
        "correct",
        [*V, "--batch", "1", "--vram", "24", "--json"],
        check=lambda r: _expect(_strict_json(r), fits=True),
    ),  # fmt: skip
    _num("gate-number-9", "state", ["gate", "check", "t1", "--gate", "9"], "no gate 9"),
    _num("dry-run-steps-0", "run", ["dry-run", "t1", "--steps", "0"], "--steps"),
    _num(
        "launch-hang-timeout-inf",
        "run",
        ["launch", "t1", "--hang-timeout", "inf"],
        "--hang-timeout",
    ),  # fmt: skip
    _num("checkpoints-keep-0", "run", ["checkpoints", "t1", "--keep", "0"], "--keep"),
    _num(
        "monitor-epochs-negative",
        "run",
        ["monitor", "--log", "x.log", "--epochs", "-1"],
        "--epochs",
    ),  # fmt: skip
    _num(
        "eval-grid-cfg-nan",
        "evaluate",
        ["eval-grid", "t1", "--lora", "x.safetensors", "--cfg", "nan"],
        "--cfg",
    ),  # fmt: skip
    _num(
        "eval-grid-seed-negative",
        "evaluate",
        ["eval-grid", "t1", "--lora", "x.safetensors", "--seed", "-1"],
        "--seed",
    ),  # fmt: skip
    _num("register-weight-nan", "evaluate", ["register", "t1", "--weight", "nan"], "--weight"),
    _num("ticket-stage-unicode", "workflow", ["ticket", "advance", "x", "--to", "٩"], "--to"),
    _num("runs-plan-runs-0", "cluster", ["runs", "plan", "exp", "--runs", "0"], "--runs"),
    _num("captions-sample-n-unicode", "dataset", ["captions", "sample", ".", "٣"], "digits 0-9"),
    _num("audit-min-side-nan", "dataset", ["audit", ".", "--min-side", "nan"], "--min-side"),
]


def _config_case(cid: str, *args: str, fragment: str = "") -> Case:
    return Case(
        cid, "backends", "silent-nonsense", "clear-error",
        ["config", "--project", "t1", "--backend", *args], setup=lambda p: _intent(p),
        check=_err(fragment) if fragment else None,
    )  # fmt: skip


BACKENDS = [
    _config_case("config-tiny-sdxl", "tiny", "--model", "sdxl", fragment="cannot train"),
    _config_case("config-tiny-flux", "tiny", "--model", "flux-1-dev", fragment="cannot train"),
    _config_case(
        "config-ai-toolkit-tiny", "ai-toolkit", "--model", "tiny", fragment="cannot train"
    ),  # fmt: skip
    _config_case("config-vram-nan", "tiny", "--vram", "nan", fragment="--vram"),
    _config_case("config-epochs-zero", "tiny", "epochs=0", fragment="epochs"),
    _config_case("config-rank-huge", "tiny", "rank=999999999", fragment="rank"),
    _config_case("config-lr-negative", "tiny", "learning_rate=-1", fragment="learning_rate"),
    _config_case("config-lr-nan", "tiny", "learning_rate=nan", fragment="learning_rate"),
]


def _never_trained(p: Path) -> list[str]:
    _intent(p)
    _lora(p / "t1.safetensors", "tiny")
    return ["register", "t1", "--weight", "0.6", "--file", "t1.safetensors"]


def _tiny_lora(model: str | None, comfyui: bool = False) -> Callable[[Path], list[str]]:
    def setup(p: Path) -> list[str]:
        _intent(p)
        _lora(p / "t1.safetensors", "tiny")
        args = ["eval-grid", "t1", "--lora", "t1.safetensors", "--no-standard", "--prompt", "x"]
        args += ["--model", model] if model else []
        return args + (["--comfyui", "http://127.0.0.1:9"] if comfyui else [])

    return setup


EVALUATE = [
    Case(
        "register-never-trained",
        "evaluate",
        "silent-nonsense",
        "clear-error",
        setup=_never_trained,
        check=_err("not a finished training", "no run", "Gate 1", "--override"),
    ),  # fmt: skip
    Case(
        "register-override-empty",
        "evaluate",
        "silent-nonsense",
        "clear-error",
        setup=lambda p: [*_never_trained(p), "--override", "  "],
        check=_err("--override"),
    ),  # fmt: skip
    Case(
        "eval-grid-tiny-lora-on-sdxl",
        "evaluate",
        "silent-nonsense",
        "clear-error",
        setup=_tiny_lora("sdxl"),
        check=_err("tiny backend", "sdxl"),
    ),  # fmt: skip
    Case(
        "eval-grid-tiny-with-comfyui",
        "evaluate",
        "silent-nonsense",
        "clear-error",
        setup=_tiny_lora("tiny", comfyui=True),
        check=_err("--comfyui"),
    ),  # fmt: skip
]


def _sample_folder(p: Path) -> list[str]:
    _images(p / "ds", 3, size=64)
    _truncated(p / "ds" / "broken.jpg")
    return ["captions", "sample", "ds", "4", "--json"]


def _sample_check(r: Result) -> None:
    data = _strict_json(r)
    assert "broken.jpg" not in data["sample"] and len(data["sample"]) == 3, data
    assert data["skipped_unusable"] == ["broken.jpg"], data


PLAN = """# Runs plan: exp

- **Backend**: tiny

## Runs

| Run | Base model | Method | Dataset | GPUs |
|---|---|---|---|---|
| r1 | tiny | lora | {dataset} | cpu |
| r2 | tiny | lora |
"""


def _short_row(p: Path) -> list[str]:
    (p / "exp").mkdir()
    (p / "exp" / "runs_plan.md").write_text(PLAN.format(dataset="data"))
    return ["runs", "validate", "exp"]


def _plan_cell(column: str, value: str) -> Callable[[Path], list[str]]:
    def setup(p: Path) -> list[str]:
        (p / "exp").mkdir()
        text = PLAN.format(dataset="data").replace("| r2 | tiny | lora |\n", "")
        text = text.replace("| GPUs |\n|---|", f"| GPUs | {column} |\n|---|---|")
        (p / "exp" / "runs_plan.md").write_text(text.replace("| cpu |", f"| cpu | {value} |"))
        return ["runs", "validate", "exp"]

    return setup


def _plan_cell_case(cid: str, column: str, value: str, fragment: str) -> Case:
    return Case(cid, "cluster", "silent-nonsense", "refused", setup=_plan_cell(column, value),
                check=_out(f"{column} ", fragment))  # fmt: skip


def _experiment(dataset: Callable[[Path], None] | None) -> Callable[[Path], list[str]]:
    """A tiny experiment ready to launch (dirs, configs, scripts) whose dataset is `dataset`."""

    def setup(p: Path) -> list[str]:
        exp = p / "exp"
        exp.mkdir()
        plan = PLAN.format(dataset="data").replace("| r2 | tiny | lora |\n", "")
        (exp / "runs_plan.md").write_text(plan)
        if dataset is not None:
            dataset(exp / "data")
        for step in ("plan", "setup-dirs", "configs", "slurm-scripts"):
            proc = cli(p, "runs", step, "exp")
            assert proc.returncode == 0 or step == "configs", proc.stdout + proc.stderr
        return ["runs", "launch", "exp", "--local", "--json"]

    return setup


def _nothing_ran(*fragments: str) -> Callable[[Result], None]:
    def check(r: Result) -> None:
        data = _strict_json(r)
        problems = " ".join(data["preflight"]["problems"])
        for f in fragments:
            assert f in problems, problems
        assert data["submitted"] == {} and not list(r.project.glob("exp/*/logs/*.out"))

    return check


def _broken_images(folder: Path) -> None:
    _images(folder, 2)
    _truncated(folder / "zz.jpg")


def _monitor_log(loss: str) -> Callable[[Path], list[str]]:
    def setup(p: Path) -> list[str]:
        (p / "train.log").write_text(
            "tiny: step=1/20 epoch=1/10 loss=0.5 lr=0.001 batch=4 mem_mib=3.0 elapsed_s=1.0\n"
            f"tiny: step=2/20 epoch=1/10 loss={loss} lr=0.001 batch=4 mem_mib=3.0 elapsed_s=2.0\n"
        )
        return ["monitor", "--log", "train.log", "--json"]

    return setup


def _loss_is_null(word: str) -> Callable[[Result], None]:
    def check(r: Result) -> None:
        data = _strict_json(r)
        assert data["loss"] is None and data["loss_note"] == word, data
        assert {"path": "loss", "value": word} in data["non_finite"], data

    return check


OTHERS = [
    Case(
        "captions-sample-skips-unusable",
        "dataset",
        "silent-nonsense",
        "correct",
        setup=_sample_folder,
        check=_sample_check,
    ),  # fmt: skip
    Case(
        "runs-validate-short-row",
        "cluster",
        "silent-nonsense",
        "refused",
        setup=_short_row,
        check=_out(
            "row has 3 cells but the header has 5",
            absent=("column 'Dataset' is missing", "column 'GPUs' is missing"),
        ),
    ),  # fmt: skip
    _plan_cell_case("plan-lr-nan", "Learning rate", "nan", "'nan' is not a number"),
    _plan_cell_case("plan-lr-inf", "Learning rate", "inf", "'inf' is not a number"),
    _plan_cell_case("plan-lr-huge", "Learning rate", "1e300", "at most"),
    _plan_cell_case("plan-rank-huge", "LoRA rank", "99999999", "at most 4096"),
    _plan_cell_case("plan-epochs-zero", "Epochs", "0", "at least 1"),
    _plan_cell_case("plan-seed-unicode", "Seed", "١٢", "not a whole number"),
    _plan_cell_case("plan-batch-negative", "Batch size", "-4", "at least 1"),
    Case(
        "runs-launch-dataset-missing",
        "cluster",
        "silent-nonsense",
        "refused",
        setup=_experiment(None),
        check=_nothing_ran("does not exist"),
        may_change=("exp/runs_status.yaml",),
    ),  # fmt: skip
    Case(
        "runs-launch-unreadable-image",
        "cluster",
        "silent-nonsense",
        "refused",
        setup=_experiment(_broken_images),
        check=_nothing_ran("zz.jpg", "cannot be read"),
        may_change=("exp/runs_status.yaml",),
    ),  # fmt: skip
    Case(
        "monitor-json-nan-loss",
        "run",
        "silent-nonsense",
        "refused",
        setup=_monitor_log("nan"),
        check=_loss_is_null("nan"),
    ),  # fmt: skip
    Case(
        "monitor-json-inf-loss",
        "run",
        "silent-nonsense",
        "refused",
        setup=_monitor_log("inf"),
        check=_loss_is_null("inf"),
    ),  # fmt: skip
]

CASES = STATE + NUMBERS + BACKENDS + EVALUATE + OTHERS


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case, tmp_path: Path) -> None:
    run_case(case, tmp_path)
