"""`trainwright audit`: each bad input gets a finding, the run completes, nothing changes."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from helpers import assert_one_line_error, run_cli
from trainwright.dataset.audit import audit_folder, plain_summary


def snapshot(folder: Path) -> dict[bytes, tuple]:
    """Every entry under folder (links not followed): name, type, mode, size, bytes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(bytes(folder)):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            data = None
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as fh:
                    data = fh.read()
            link = os.readlink(p) if os.path.islink(p) else None
            out[p] = (st.st_mode, st.st_size, st.st_mtime_ns, data, link)
    return out


def _jpeg(size: tuple[int, int] = (640, 480), colour: tuple = (120, 80, 200), **kw) -> bytes:
    im = Image.new("RGB", size, colour)
    for x in range(0, size[0], 16):  # some texture so the quality flags have edges to see
        im.paste((x % 255, 200, 40), (x, 0, x + 8, size[1]))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid PNG header claiming 900 Mpx with a tiny (never decoded) body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b"")
    )


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (64, 64), (i * 90, 255 - i * 90, 30)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def make_bad_folder(root: Path) -> Path:
    """One file per bad input the issue lists, plus two good images."""
    d = root / "ds"
    d.mkdir()
    (d / "good.jpg").write_bytes(_jpeg())
    (d / "zero.jpg").write_bytes(b"")
    full = _jpeg()
    (d / "truncated.jpg").write_bytes(full[: len(full) // 2])
    png = _png(Image.new("RGB", (300, 300), (10, 200, 30)))
    (d / "truncated.png").write_bytes(png[: len(png) - 40])
    (d / "notes.png").write_text("this is a text file, not a picture\n")
    (d / "bomb.png").write_bytes(_png_bomb())
    cmyk = io.BytesIO()
    Image.new("CMYK", (200, 200), (0, 120, 200, 10)).save(cmyk, "JPEG")
    (d / "print.jpg").write_bytes(cmyk.getvalue())
    deep = Image.new("I;16", (120, 90))
    deep.putdata([i * 7 % 65535 for i in range(120 * 90)])
    deep.save(d / "deep16.png")
    (d / "anim.gif").write_bytes(_animated_gif())
    (d / "locked.jpg").write_bytes(_jpeg())
    os.chmod(d / "locked.jpg", 0)
    os.symlink("loop_b.jpg", d / "loop_a.jpg")
    os.symlink("loop_a.jpg", d / "loop_b.jpg")
    (d / "caf\xe9-\U0001f3a8.jpg").write_bytes(_jpeg())
    os.close(os.open(bytes(d) + b"/latin1-\xe9.jpg", os.O_CREAT | os.O_WRONLY, 0o644))
    with open(bytes(d) + b"/latin1-\xe9.jpg", "wb") as fh:
        fh.write(_jpeg())
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: stored 640x480, shown 480x640
    (d / "rotated.jpg").write_bytes(_jpeg(exif=exif.tobytes()))
    (d / "png_named.jpg").write_bytes(_png(Image.new("RGB", (64, 64), (1, 2, 3))))
    (d / "dark.png").write_bytes(_png(Image.new("RGB", (64, 64), (5, 5, 5))))
    return d


@pytest.fixture()
def bad(tmp_path: Path) -> Path:
    d = make_bad_folder(tmp_path)
    yield d
    os.chmod(d / "locked.jpg", 0o644)


def _by_name(rep: dict) -> dict[str, dict]:
    return {im["path"]: im for im in rep["images"]}


def test_every_bad_input_gets_its_finding_and_nothing_changes(bad: Path) -> None:
    before = snapshot(bad)
    rep = audit_folder(bad, min_side=None, workers=2)
    assert snapshot(bad) == before
    im = _by_name(rep)
    assert im["good.jpg"]["ok"] and im["good.jpg"]["issues"] == []
    assert im["zero.jpg"]["issues"] == ["empty-file"]
    assert im["truncated.jpg"]["issues"] == ["truncated"] and not im["truncated.jpg"]["ok"]
    assert im["truncated.png"]["ok"] is False
    assert set(im["truncated.png"]["issues"]) & {"truncated", "corrupt"}
    assert im["notes.png"]["issues"] == ["not-an-image"]
    assert im["bomb.png"]["issues"] == ["decompression-bomb"]
    assert im["bomb.png"]["width"] == 30000
    assert "cmyk" in im["print.jpg"]["issues"] and im["print.jpg"]["ok"]
    assert "16-bit" in im["deep16.png"]["issues"]
    assert "animated" in im["anim.gif"]["issues"]
    assert im["loop_a.jpg"]["issues"] == ["symlink-loop"]
    assert im["caf\xe9-\U0001f3a8.jpg"]["ok"]
    assert im["latin1-\\xe9.jpg"]["ok"]  # non-UTF-8 byte shown escaped, file still checked
    assert (im["rotated.jpg"]["width"], im["rotated.jpg"]["height"]) == (480, 640)
    assert im["rotated.jpg"]["exif_orientation"] == 6
    assert im["png_named.jpg"]["issues"][0] == "wrong-extension"
    assert "dark" in im["dark.png"]["issues"] or "low-information" in im["dark.png"]["issues"]
    if os.geteuid() == 0:
        # root reads a chmod-000 file anyway: it is then simply a good image
        assert im["locked.jpg"]["ok"]
    else:
        assert im["locked.jpg"]["issues"] == ["unreadable"]
    s = rep["summary"]
    assert s["count"] == len(rep["images"])
    assert s["issues"]["truncated"] >= 1 and s["errors"] >= 6


def test_unreadable_file_is_reported_when_not_root(bad: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can read a chmod 000 file; the permission case needs a normal user")
    rep = audit_folder(bad)
    assert _by_name(rep)["locked.jpg"]["issues"] == ["unreadable"]


def test_min_side_for_the_model_and_plain_words(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    (d / "small.jpg").write_bytes(_jpeg((800, 600)))
    (d / "big.jpg").write_bytes(_jpeg((1200, 1100)))
    proc = run_cli("audit", str(d), "--model", "sdxl")
    assert proc.returncode == 1
    assert "1 image is below 1024 px on the short side: small.jpg" in proc.stdout
    proc = run_cli("audit", str(d), "--model", "sd15", "--json")
    data = json.loads(proc.stdout)
    assert proc.returncode == 0 and data["summary"]["ok"] == 2
    assert set(data["images"][0]) >= {"path", "ok", "format", "width", "height", "mode", "issues"}
    assert set(data["summary"]) >= {"count", "ok", "issues"}
    proc = run_cli("audit", str(d), "--min-side", "700", "--json")
    assert json.loads(proc.stdout)["summary"]["issues"] == {"below-min-resolution": 1}


def test_cli_exit_codes_and_json_on_bad_folder(bad: Path) -> None:
    proc = run_cli("audit", str(bad), "--json", "--workers", "2")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["summary"]["count"] == len(data["images"]) >= 15
    assert "Traceback" not in proc.stderr


def test_empty_folder_and_captions_without_images(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("audit", str(empty))
    assert proc.returncode == 1 and "No images were found" in proc.stdout
    caps = tmp_path / "caps"
    caps.mkdir()
    for i in range(500):
        (caps / f"{i:03d}.txt").write_text("mystyle, a cat")
    before = snapshot(caps)
    rep = audit_folder(caps)
    assert rep["summary"]["count"] == 0 and rep["summary"]["caption_files"] == 500
    assert "500 caption files but no images" in "\n".join(plain_summary(rep))
    assert snapshot(caps) == before


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["audit", "/no/such/folder"], "no such folder"),
        (["audit", "FILE"], "is a file"),
        (["audit", "DIR", "--model", "dalle9"], "unknown base model"),
        (["audit", "DIR", "--min-side", "0"], "--min-side"),
        (["audit", "DIR", "--workers", "0"], "--workers"),
    ],
)
def test_bad_usage_is_one_line_exit_2(tmp_path: Path, args: list[str], fragment: str) -> None:
    f = tmp_path / "f.jpg"
    f.write_bytes(_jpeg())
    args = [str(f) if a == "FILE" else str(tmp_path) if a == "DIR" else a for a in args]
    assert_one_line_error(run_cli(*args), fragment)


def test_writes_the_audit_part_of_the_report(tmp_path: Path) -> None:
    g = tmp_path / "grimoire"
    assert run_cli("--grimoire", str(g), "grimoire", "new", "p").returncode == 0
    d = tmp_path / "ds"
    d.mkdir()
    (d / "a.jpg").write_bytes(_jpeg((1100, 1100)))
    (d / "b.jpg").write_bytes(b"")
    proc = run_cli("--grimoire", str(g), "audit", str(d), "--model", "sdxl", "--project", "p")
    assert proc.returncode == 1
    text = (g / "training" / "p" / "dataset-report.md").read_text()
    assert "- **Images**: 2" in text and "- **Quality issues**: 1" in text
    assert "1 image is empty (0 bytes): b.jpg" in text
    assert "The specific files and problems found by the audit." in text  # template prose kept
