"""TensorBoard event files, read without TensorFlow or the tensorboard package.

An event file is a TFRecord stream: each record is `uint64 length, uint32 masked-crc32c(length),
bytes, uint32 masked-crc32c(bytes)`, and each record an `Event` protobuf (wall_time = 1, step =
2, summary = 5). A scalar is a `Summary.Value` (tag = 1) holding either `simple_value` (2, the old
style kohya's accelerate tracker writes) or a `tensor` (8, `add_scalar(new_style=True)`, which
torchtune's logger can write) with `float_val`, `double_val` or raw `tensor_content`. A record
cut off at the end of the file (a run still writing, or a copy interrupted) ends the read; a
record whose checksum does not match is skipped and counted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from trainwright.run.logs.common import LogState

MAGIC_NAME = "events.out.tfevents"
LOSS_TAGS = ("loss/current", "loss", "train/loss", "train_loss", "loss/average")
MEMORY_TAGS = ("peak_memory_reserved", "peak_memory_active", "peak_memory_alloc")


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@dataclass
class Scalars:
    series: dict[str, list[tuple[int, float, float]]] = field(
        default_factory=dict
    )  # tag -> (step, wall, v)
    records: int = 0
    bad_records: int = 0
    truncated: bool = False
    file_version: str | None = None


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("varint runs past the end")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes) -> list[tuple[int, int, object]]:
    """Decode one protobuf message into (field number, wire type, value) triples."""
    out: list[tuple[int, int, object]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: object
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ValueError("field runs past the end")
        out.append((number, wire, value))
    return out


_DTYPES = {1: ("<f", 4), 2: ("<d", 8), 3: ("<i", 4), 9: ("<q", 8), 19: ("<e", 2)}


def _tensor_value(buf: bytes) -> float | None:
    dtype, content = 1, b""
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 0:
            dtype = int(value)  # type: ignore[arg-type]
        elif number == 4 and wire == 2:
            content = value  # type: ignore[assignment]
        elif number == 5:  # float_val: packed (wire 2) or one fixed32 (wire 5)
            return struct.unpack_from("<f", value)[0]  # type: ignore[arg-type]
        elif number == 6:  # double_val
            return struct.unpack_from("<d", value)[0]  # type: ignore[arg-type]
    if content and dtype in _DTYPES:
        fmt, size = _DTYPES[dtype]
        if len(content) >= size:
            return float(struct.unpack_from(fmt, content)[0])
    return None


def _summary(buf: bytes, step: int, wall: float, out: Scalars) -> None:
    for number, wire, value in _fields(buf):
        if number != 1 or wire != 2:
            continue
        tag, scalar = None, None
        for n, w, v in _fields(value):  # type: ignore[arg-type]
            if n == 1 and w == 2:
                tag = bytes(v).decode("utf-8", errors="replace")  # type: ignore[arg-type]
            elif n == 2 and w == 5:
                scalar = struct.unpack("<f", v)[0]  # type: ignore[arg-type]
            elif n == 8 and w == 2:
                scalar = _tensor_value(v)  # type: ignore[arg-type]
        if tag is not None and scalar is not None:
            out.series.setdefault(tag, []).append((step, wall, float(scalar)))


def read_events(data: bytes, out: Scalars | None = None) -> Scalars:
    out = out or Scalars()
    pos = 0
    while pos < len(data):
        if pos + 12 > len(data):
            out.truncated = True
            break
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (len_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        if masked_crc(header) != len_crc:
            out.bad_records += 1
            out.truncated = True  # a broken length means the rest cannot be framed
            break
        end = pos + 12 + length + 4
        if end > len(data):
            out.truncated = True
            break
        body = data[pos + 12 : pos + 12 + length]
        (body_crc,) = struct.unpack("<I", data[end - 4 : end])
        pos = end
        if masked_crc(body) != body_crc:
            out.bad_records += 1
            continue
        out.records += 1
        try:
            _event(body, out)
        except (ValueError, struct.error):
            out.bad_records += 1
    return out


def _event(body: bytes, out: Scalars) -> None:
    wall, step, summary = 0.0, 0, None
    for number, wire, value in _fields(body):
        if number == 1 and wire == 1:
            wall = struct.unpack("<d", value)[0]  # type: ignore[arg-type]
        elif number == 2 and wire == 0:
            step = int(value)  # type: ignore[arg-type]
        elif number == 3 and wire == 2:
            out.file_version = bytes(value).decode("utf-8", errors="replace")  # type: ignore[arg-type]
        elif number == 5 and wire == 2:
            summary = value
    if summary is not None:
        _summary(summary, step, wall, out)  # type: ignore[arg-type]


def is_event_data(data: bytes) -> bool:
    """The first record of every event file is an Event with file_version 'brain.Event:N'."""
    return len(data) >= 12 and b"brain.Event:" in data[:64]


def event_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob(f"{MAGIC_NAME}*") if p.is_file())


def to_state(scalars: Scalars) -> LogState:
    st = LogState("tensorboard")
    tag = next((t for t in LOSS_TAGS if t in scalars.series), None)
    if tag is None:
        tag = next((t for t in sorted(scalars.series) if "loss" in t.lower()), None)
    if tag:
        series = scalars.series[tag]
        for step, _wall, value in series:
            st.add_point(step, value)
        walls = [w for _, w, _ in series if w > 0]
        if len(walls) >= 2:
            st.elapsed_s = walls[-1] - walls[0]
        st.notes.append(f"loss from tag '{tag}'")
    for mtag in MEMORY_TAGS:
        if mtag in scalars.series:
            st.vram_used_gib = round(scalars.series[mtag][-1][2], 2)
            break
    if scalars.truncated:
        st.notes.append("the event file is cut off at the end (still being written?)")
    if scalars.bad_records:
        st.notes.append(f"{scalars.bad_records} damaged record(s) skipped")
    st.attempts = 1 if scalars.records else 0
    return st


def parse_path(path: Path) -> LogState:
    scalars = Scalars()
    for file in event_files(path):
        read_events(file.read_bytes(), scalars)
    for series in scalars.series.values():
        series.sort(key=lambda r: (r[0], r[1]))
    return to_state(scalars)
