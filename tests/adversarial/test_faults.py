"""Tracebacks and hangs (issue 13, section 5): special files in a dataset, bad manifests, bad
caption extensions, a run.lock that is not a file, symlink loops under reports/, hostile logs,
and --workers without limit. Every case runs from a fresh project's root with a hang limit."""

from __future__ import annotations

import json
import os
import random
import socket
from pathlib import Path

import pytest
from harness import Case, cli, ids, run_case
from PIL import Image

GRIMOIRE = ("grimoire/**",)


def _ds(project: Path, n: int = 2) -> Path:
    ds = project / "ds"
    ds.mkdir(exist_ok=True)
    for i in range(n):
        noise = random.Random(i).randbytes(64 * 64 * 3)  # distinct pictures, no duplicates
        Image.frombytes("RGB", (64, 64), noise).save(ds / f"img{i}.png")
        (ds / f"img{i}.txt").write_text(f"zzq, picture {i}\n")
    return ds


def _fifo(project: Path) -> None:
    os.mkfifo(_ds(project) / "pipe.png")


def _sock(project: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(_ds(project) / "sock.png"))
    s.close()


def _devzero(project: Path) -> None:
    (_ds(project) / "zero.png").symlink_to("/dev/zero")


def _t1(project: Path, dataset: str = "ds") -> None:
    assert cli(project, "grimoire", "new", "t1").returncode == 0
    proc = cli(
        project, "grimoire", "set", "intent", "--project", "t1", "Type=style",
        "Base model=tiny", "Trigger word=zzq", f"Dataset folder={dataset}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def _with(*steps):  # noqa: ANN002, ANN202
    def setup(project: Path) -> None:
        for step in steps:
            step(project)

    return setup


def _gate1(project: Path) -> None:
    cli(project, "gate", "check", "t1", "--gate", "1")


def _says(*words: str):  # noqa: ANN202
    def check(r) -> None:  # noqa: ANN001
        text = r.out + r.err
        for w in words:
            assert w in text, (w, text[-1500:])

    return check


def _manifest(body: object, name: str = "m.json"):  # noqa: ANN202
    def setup(project: Path) -> list[str]:
        (project / name).write_text(json.dumps(body) if not isinstance(body, str) else body)
        return ["dedup", "--undo", name]

    return setup


def _undo_fifo(project: Path) -> list[str]:
    os.mkfifo(project / "m.json")
    return ["dedup", "--undo", "m.json"]


def _undo_folder(project: Path) -> list[str]:
    (project / "q").mkdir()
    (project / "q" / "manifest-20260101-000000-000000.json").write_text("{}")
    return ["dedup", "--undo", "q"]


def _runlock_dir(project: Path) -> None:
    _t1(project)
    (project / "grimoire/training/t1/run.lock").mkdir()


def _runlock_link(project: Path) -> None:
    _t1(project)
    (project / "precious.txt").write_text("mine, keep it\n")
    (project / "grimoire/training/t1/run.lock").symlink_to(project / "precious.txt")


def _reports_loop(project: Path) -> None:
    rep = project / "reports/research"
    (rep / "sub").mkdir(parents=True)
    (rep / "r1.md").write_text("# Run 1 gpt2\n\n- **loss**: 0.5\n- **model**: gpt2\n")
    (rep / "loop.md").symlink_to("loop.md")
    (rep / "a.md").symlink_to("b.md")
    (rep / "b.md").symlink_to("a.md")
    (rep / "sub" / "up").symlink_to("..")


def _reports_dir_loop(project: Path) -> None:
    (project / "reports").mkdir()
    (project / "reports/research").symlink_to("research")


def _log(name: str, data: bytes | str):  # noqa: ANN202
    def setup(project: Path) -> list[str]:
        path = project / name
        if isinstance(data, str):
            path.write_text(data, newline="")
        else:
            path.write_bytes(data)
        return ["monitor", "--log", name]

    return setup


def _sparse_log(project: Path) -> list[str]:
    with open(project / "big.log", "wb") as fh:
        fh.truncate(1 << 30)
    return ["monitor", "--log", "big.log"]


def _fifo_log(project: Path) -> list[str]:
    os.mkfifo(project / "train.log")
    return ["monitor", "--log", "train.log"]


def _dir_log(project: Path) -> list[str]:
    (project / "logs").mkdir()
    return ["monitor", "--log", "logs"]


def _fifo_caption(project: Path) -> None:
    os.remove(_ds(project) / "img0.txt")
    os.mkfifo(project / "ds/img0.txt")


def _nan_log(project: Path) -> None:
    (project / "a.log").write_text(_steps(*[(i, float("nan")) for i in range(1, 3001)]))


def _many_images(project: Path) -> None:
    _ds(project, 9)


def _steps(*pairs: tuple[int, float]) -> str:
    return "".join(f"tiny: step={s}/{len(pairs)} loss={v}\n" for s, v in pairs)


LONG = 200_000

CASES = [
    # hangs: special files in the dataset (never opened)
    Case(
        "hash-fifo-in-dataset",
        "state",
        "hang",
        "correct",
        ["hash", "ds"],
        _fifo,
        check=_says("skipped pipe.png (FIFO)"),
        timeout=30,
    ),
    Case(
        "hash-socket-in-dataset",
        "state",
        "hang",
        "correct",
        ["hash", "ds"],
        _sock,
        check=_says("socket"),
        timeout=30,
    ),
    Case(
        "hash-devzero-link-in-dataset",
        "state",
        "resource-exhaustion",
        "correct",
        ["hash", "ds"],
        _devzero,
        check=_says("zero.png (device)"),
        timeout=30,
    ),
    Case(
        "hash-json-lists-skipped",
        "state",
        "hang",
        "correct",
        ["--json", "hash", "ds"],
        _fifo,
        check=lambda r: (
            None if json.loads(r.out)["skipped"] == ["pipe.png (FIFO)"] else pytest.fail(r.out)
        ),
        timeout=30,
    ),
    Case(
        "hash-the-fifo-itself",
        "state",
        "hang",
        "clear-error",
        ["hash", "ds/pipe.png"],
        _fifo,
        timeout=30,
    ),
    Case(
        "hash-dataset-is-symlink-loop",
        "state",
        "bad-file",
        "clear-error",
        ["hash", "loop"],
        lambda p: (p / "loop").symlink_to("loop"),
        timeout=30,
    ),
    Case(
        "gate1-fifo-in-dataset",
        "dataset",
        "hang",
        "refused",
        ["gate", "check", "t1", "--gate", "1"],
        _with(_fifo, _t1),
        may_change=GRIMOIRE,
        timeout=60,
    ),
    Case(
        "gate1-devzero-in-dataset",
        "dataset",
        "resource-exhaustion",
        "refused",
        ["gate", "check", "t1", "--gate", "1"],
        _with(_devzero, _t1),
        may_change=GRIMOIRE,
        timeout=60,
    ),
    Case(
        "gate-status-fifo-after-check",
        "state",
        "hang",
        "correct",
        ["gate", "status", "t1"],
        _with(_ds, _t1, _gate1, _fifo),
        timeout=30,
    ),
    Case(
        "status-fifo-after-check",
        "state",
        "hang",
        "correct",
        ["status", "t1"],
        _with(_ds, _t1, _gate1, _fifo),
        timeout=30,
    ),
    Case(
        "gate1-dataset-is-symlink-loop",
        "dataset",
        "bad-file",
        "clear-error",
        ["gate", "check", "t1", "--gate", "1"],
        _with(lambda p: (p / "loop").symlink_to("loop"), lambda p: _t1(p, "loop")),
        check=_says("cannot be followed"),
        timeout=30,
    ),
    Case(
        "audit-notes-special-files",
        "dataset",
        "hang",
        "correct",
        ["audit", "ds"],
        _with(_fifo, _sock, _devzero),
        check=_says("not regular files", "pipe.png"),
        timeout=30,
    ),
    Case("dedup-fifo-in-dataset", "dataset", "hang", "correct", ["dedup", "ds"], _fifo, timeout=30),
    Case(
        "captions-check-fifo-caption",
        "dataset",
        "hang",
        "refused",
        ["captions", "check", "ds"],
        _fifo_caption,
        timeout=30,
    ),
    # --workers without limit
    Case(
        "audit-workers-100000",
        "dataset",
        "resource-exhaustion",
        "correct",
        ["--json", "audit", "ds", "--workers", "100000"],
        _many_images,
        check=lambda r: (
            None
            if json.loads(r.out)["workers"]["used"] <= (os.cpu_count() or 1) and "using" in r.err
            else pytest.fail(r.out[-500:] + r.err)
        ),
        timeout=60,
    ),
    Case(
        "dedup-workers-100000",
        "dataset",
        "resource-exhaustion",
        "correct",
        ["dedup", "ds", "--workers", "100000"],
        _many_images,
        check=_says("note: --workers 100000"),
        timeout=60,
    ),
    Case(
        "curate-workers-100000",
        "dataset",
        "resource-exhaustion",
        "correct",
        ["curate", "ds", "--workers", "100000"],
        _many_images,
        check=_says("note: --workers 100000"),
        timeout=60,
    ),
    # dedup --undo with a bad manifest
    Case(
        "undo-given-a-folder",
        "dataset",
        "bad-file",
        "clear-error",
        (),
        _undo_folder,
        check=_says("is a folder", "manifest-20260101"),
    ),
    Case(
        "undo-given-the-dataset",
        "dataset",
        "bad-file",
        "clear-error",
        ["dedup", "--undo", "ds"],
        _with(_ds),
    ),
    Case(
        "undo-manifest-no-files-key",
        "dataset",
        "corrupt-state",
        "clear-error",
        (),
        _manifest({"kind": "trainwright-quarantine"}),
        check=_says("'files'"),
    ),
    Case(
        "undo-manifest-entry-missing-keys",
        "dataset",
        "corrupt-state",
        "clear-error",
        (),
        _manifest({"kind": "trainwright-quarantine", "files": [{"original": "x"}]}),
        check=_says("quarantined, sha256"),
    ),
    Case(
        "undo-manifest-files-a-string",
        "dataset",
        "corrupt-state",
        "clear-error",
        (),
        _manifest({"kind": "trainwright-quarantine", "files": "abc"}),
    ),
    Case(
        "undo-manifest-entry-a-number",
        "dataset",
        "corrupt-state",
        "clear-error",
        (),
        _manifest({"kind": "trainwright-quarantine", "files": [5]}),
    ),
    Case(
        "undo-manifest-sha-a-number",
        "dataset",
        "corrupt-state",
        "clear-error",
        (),
        _manifest(
            {
                "kind": "trainwright-quarantine",
                "files": [{"original": "a", "quarantined": "b", "sha256": 1}],
            }
        ),
    ),
    Case(
        "undo-manifest-truncated",
        "dataset",
        "interrupted-write",
        "clear-error",
        (),
        _manifest('{"kind": "trainwright-quarantine", "files": [{"orig'),
    ),
    Case(
        "undo-manifest-deeply-nested",
        "dataset",
        "resource-exhaustion",
        "clear-error",
        (),
        _manifest("[" * 100_000),
    ),
    Case("undo-manifest-is-a-fifo", "dataset", "hang", "clear-error", (), _undo_fifo, timeout=30),
    # captions --ext
    Case(
        "captions-check-ext-empty",
        "dataset",
        "hostile-name",
        "clear-error",
        ["captions", "check", "ds", "--ext", ""],
        _with(_ds),
    ),
    Case(
        "captions-check-ext-traversal",
        "dataset",
        "path-escape",
        "clear-error",
        ["captions", "check", "ds", "--ext", "../../x"],
        _with(_ds),
    ),
    Case(
        "captions-check-ext-dot",
        "dataset",
        "hostile-name",
        "clear-error",
        ["captions", "check", "ds", "--ext", "."],
        _with(_ds),
    ),
    Case(
        "captions-apply-ext-traversal",
        "dataset",
        "path-escape",
        "clear-error",
        ["captions", "apply", "ds", "--ext", "../../x", "--trigger", "zzq"],
        _with(_ds),
    ),
    Case(
        "captions-check-ext-without-dot",
        "dataset",
        "hostile-name",
        "correct",
        ["captions", "check", "ds", "--ext", "txt"],
        _with(_ds),
        check=_says("2 of 2"),
    ),
    # run.lock that is not a file
    Case(
        "launch-runlock-folder",
        "run",
        "corrupt-state",
        "clear-error",
        ["launch", "t1"],
        _runlock_dir,
        check=_says("is a folder"),
    ),
    Case(
        "launch-detach-runlock-folder",
        "run",
        "corrupt-state",
        "clear-error",
        ["launch", "t1", "--detach"],
        _runlock_dir,
    ),
    Case(
        "launch-runlock-link-to-own-file",
        "run",
        "path-escape",
        "clear-error",
        ["launch", "t1"],
        _runlock_link,
        check=_says("is a link"),
    ),
    Case(
        "stop-runlock-folder", "run", "corrupt-state", "clear-error", ["stop", "t1"], _runlock_dir
    ),
    Case(
        "monitor-runlock-folder",
        "run",
        "corrupt-state",
        "clear-error",
        ["monitor", "t1"],
        _runlock_dir,
    ),
    # retro with symlink loops under reports/
    Case(
        "retro-collect-symlink-loop",
        "retro",
        "bad-file",
        "correct",
        ["retro", "collect"],
        _reports_loop,
        check=_says("loop.md", "symbolic links"),
    ),
    Case(
        "retro-summarize-symlink-loop",
        "retro",
        "bad-file",
        "correct",
        ["retro", "summarize"],
        _reports_loop,
        check=_says("loop.md"),
    ),
    Case(
        "retro-propose-symlink-loop",
        "retro",
        "bad-file",
        "correct",
        ["retro", "propose"],
        _reports_loop,
        may_change=(".trainwright/**", "reports/**"),
    ),
    Case(
        "retro-reports-folder-is-a-loop",
        "retro",
        "bad-file",
        "correct",
        ["retro", "collect"],
        _reports_dir_loop,
    ),
    # hostile logs
    Case(
        "monitor-200kb-word-line",
        "run",
        "hang",
        "correct",
        (),
        _log("a.log", "tiny: step=1/10 " + "a" * LONG + "\n" + _steps((1, 0.5))),
        timeout=30,
    ),
    Case(
        "monitor-200kb-digit-line",
        "run",
        "hang",
        "correct",
        (),
        _log("a.log", "1" * LONG + "\nStep 1 | loss:0.5 lr:0.1\n"),
        timeout=30,
    ),
    Case(
        "monitor-200kb-pipe-digits",
        "run",
        "hang",
        "correct",
        (),
        _log("a.log", "1|" * (LONG // 2) + "\n"),
        timeout=30,
    ),
    Case(
        "monitor-200kb-kohya-bar",
        "run",
        "hang",
        "correct",
        (),
        _log("a.log", "steps: 1%|" + "#" * LONG + "\n"),
        timeout=30,
    ),
    Case(
        "monitor-binary-garbage",
        "run",
        "lying-tool",
        "correct",
        (),
        _log("a.log", bytes(range(256)) * 800),
        timeout=30,
    ),
    Case(
        "monitor-nul-bytes",
        "run",
        "lying-tool",
        "correct",
        (),
        _log("a.log", b"tiny: step=1/2 loss=0.5\n\0\0\0\0tiny: step=2/2 loss=0.4\n"),
        check=_says("0.4 (started at 0.5)"),
        timeout=30,
    ),
    Case(
        "monitor-crlf-log",
        "run",
        "bad-file",
        "correct",
        (),
        _log("a.log", "tiny: step=1/2 loss=0.5\r\ntiny: step=2/2 loss=0.4\r\n"),
        check=_says("0.4 (started at 0.5)"),
        timeout=30,
    ),
    Case(
        "monitor-sparse-1gb-log",
        "run",
        "resource-exhaustion",
        "correct",
        (),
        _sparse_log,
        check=_says("only its last"),
        timeout=60,
    ),
    Case("monitor-log-is-a-fifo", "run", "hang", "clear-error", (), _fifo_log, timeout=30),
    Case("monitor-log-is-a-folder", "run", "bad-file", "clear-error", (), _dir_log, timeout=30),
    Case(
        "monitor-curve-nan-every-step",
        "run",
        "lying-tool",
        "refused",
        ["monitor", "--log", "a.log", "--curve", "c.png"],
        _nan_log,
        check=_says("nan at step 1"),
        may_change=("c.png",),
        timeout=60,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case, tmp_path: Path) -> None:
    run_case(case, tmp_path)
