"""The evaluate room: eval-grid, diagnose and register against missing projects and files, bad
weights and prompt files, and a ComfyUI that is down or answers garbage."""

from __future__ import annotations

import http.server
import os
import threading

import pytest
from harness import Case, cli, run_case
from room_kit import params, said, training_project, write


class _Garbage(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = b"<html>\x00\xff not json at all"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


def _garbage_url() -> str:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


GARBAGE = _garbage_url()
DOWN = "http://127.0.0.1:9"
LORA = "lora.safetensors"


def _safetensors() -> bytes:
    """A one-tensor kohya-style SDXL LoRA: enough to pass the file checks and reach ComfyUI."""
    import json
    import struct

    key = "lora_unet_input_blocks_4_1_proj_in.lora_down.weight"
    header = json.dumps({key: {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, 4]}})
    return struct.pack("<Q", len(header)) + header.encode() + b"\0\0\0\0"


def _lora(p):
    training_project(p)
    cli(p, "grimoire", "set", "intent", "--project", "t1", "Base model=sdxl")
    write(p / LORA, os.urandom(4096))


def _good_lora(p):
    _lora(p)
    write(p / LORA, _safetensors())


G = ["eval-grid", "t1", "--lora", LORA, "--model", "sdxl.safetensors"]
E = ["grimoire/training/t1/*"]
CASES = [
    Case("grid-missing-project", "evaluate", "corrupt-state", "clear-error", ["eval-grid", "nope"]),
    Case("grid-dotdot-project", "evaluate", "hostile-name", "clear-error", ["eval-grid", "../t1"]),
    Case(
        "grid-lora-missing",
        "evaluate",
        "path-escape",
        "clear-error",
        ["eval-grid", "t1", "--lora", "no/such.safetensors", "--model", "x"],
        setup=lambda p: training_project(p),
        may_change=E,
    ),
    Case(
        "grid-lora-garbage",
        "evaluate",
        "bad-file",
        "clear-error",
        [*G, "--comfyui", DOWN],
        setup=_lora,
        may_change=E,
    ),
    Case(
        "grid-comfyui-down",
        "evaluate",
        "lying-tool",
        "refused",
        [*G, "--comfyui", DOWN],
        setup=_good_lora,
        may_change=E,
        check=said("workflows"),
    ),
    Case(
        "grid-comfyui-garbage",
        "evaluate",
        "lying-tool",
        "refused",
        [*G, "--comfyui", GARBAGE],
        setup=_good_lora,
        may_change=E,
        check=said("workflows"),
        timeout=60,
    ),
    Case(
        "grid-weights-text",
        "evaluate",
        "bad-file",
        "clear-error",
        [*G, "--weights", "abc"],
        setup=_lora,
        may_change=E,
    ),
    Case(
        "grid-weights-huge",
        "evaluate",
        "silent-nonsense",
        "clear-error",
        [*G, "--weights", "5,9"],
        setup=_lora,
        may_change=E,
    ),
    Case(
        "grid-prompts-binary",
        "evaluate",
        "bad-file",
        "clear-error",
        [*G, "--prompts-file", "p.txt"],
        setup=lambda p: (_lora(p), write(p / "p.txt", os.urandom(500))) and None,
        may_change=E,
    ),
    Case(
        "grid-prompts-missing",
        "evaluate",
        "path-escape",
        "clear-error",
        [*G, "--prompts-file", "no.txt"],
        setup=_lora,
        may_change=E,
    ),
    Case("diagnose-unknown", "evaluate", "bad-file", "clear-error", ["diagnose", "banana"]),
    Case(
        "diagnose-missing-project",
        "evaluate",
        "corrupt-state",
        "clear-error",
        ["diagnose", "blurry", "--project", "nope"],
    ),
    Case(
        "register-missing-project", "evaluate", "corrupt-state", "clear-error", ["register", "nope"]
    ),
    Case(
        "register-bad-date",
        "evaluate",
        "silent-nonsense",
        "clear-error",
        ["register", "t1", "--file", LORA, "--date", "notadate"],
        setup=_lora,
        may_change=E,
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_case(case: Case, tmp_path) -> None:
    run_case(case, tmp_path)
