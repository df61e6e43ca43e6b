"""A local stand-in for a ComfyUI server, speaking its HTTP API as documented (for the tests).

Implements POST /prompt (with ComfyUI's validation answer: HTTP 400, "error" and "node_errors"),
GET /history/<id> (empty until the prompt has "run", after `delay` seconds), GET /view, GET
/object_info (the recorded copy beside this file, with this server's model and LoRA files), GET
/system_stats. Knobs make it fail the way real servers do: `fail_status` (HTTP 500 on /prompt),
`execution_error_on` (a prompt that fails while running), `die_after` (the server goes away after
N prompts), `slow` (answers /history after `slow` seconds), `never_finish`.

The "image" of a prompt is a PNG whose brightness follows the LoRA strength and whose hue follows
the prompt text, so tests can tell which cell holds which picture.
"""

from __future__ import annotations

import io
import json
import struct
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from PIL import Image

HERE = Path(__file__).resolve().parent


def write_lora(path: Path, rank: int = 4, metadata: dict[str, str] | None = None) -> Path:
    """A small but real LoRA .safetensors file (kohya key names, float32 zeros)."""
    tensors = {
        "lora_unet_mid_conv.lora_down.weight": (rank, 8),
        "lora_unet_mid_conv.lora_up.weight": (8, rank),
    }
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in tensors.items():
        n = shape[0] * shape[1] * 4
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["lora_unet_mid_conv.alpha"] = {
        "dtype": "F32",
        "shape": [],
        "data_offsets": [offset, offset + 4],
    }
    offset += 4
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))
    return path


def render(weight: float, text: str, size: int = 32) -> bytes:
    level = max(0, min(255, int(40 + weight * 100)))
    hue = zlib.crc32(text.encode()) % 200
    img = Image.new("RGB", (size, size), (level, hue, 255 - level))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class FakeComfyUI:
    def __init__(
        self,
        checkpoints: list[str] | None = None,
        loras: list[str] | None = None,
        delay: float = 0.3,
    ) -> None:
        info = json.loads((HERE / "object_info.json").read_text())
        info.pop("__source__", None)
        if checkpoints is not None:
            info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = checkpoints
        if loras is not None:
            info["LoraLoader"]["input"]["required"]["lora_name"][0] = loras
        self.object_info = info
        self.delay = delay
        self.fail_status: int | None = None
        self.execution_error_on: int | None = None
        self.die_after: int | None = None
        self.slow: float | None = None
        self.never_finish = False
        self.prompts: list[dict[str, Any]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.files: dict[str, bytes] = {}
        self.gone = False
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeComfyUI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if not self.gone:
            self.gone = True
            self.httpd.shutdown()
            self.httpd.server_close()

    # --- ComfyUI's validation, written independently of the client under test ---
    def validate(self, graph: dict[str, Any]) -> dict[str, Any]:
        node_errors: dict[str, Any] = {}
        for node_id, node in graph.items():
            cls = node.get("class_type")
            info = self.object_info.get(cls)
            errors = []
            if info is None:
                errors.append(
                    {
                        "type": "invalid_prompt",
                        "message": f"Cannot execute because node {cls} does not exist.",
                        "details": f"Node ID '#{node_id}'",
                    }
                )
            else:
                for name, spec in info["input"]["required"].items():
                    value = node.get("inputs", {}).get(name)
                    if value is None:
                        errors.append(
                            {
                                "type": "required_input_missing",
                                "message": "Required input is missing",
                                "details": name,
                            }
                        )
                    elif isinstance(spec[0], list) and value not in spec[0]:
                        errors.append(
                            {
                                "type": "value_not_in_list",
                                "message": "Value not in list",
                                "details": f"{name}: '{value}' not in {spec[0]}",
                            }
                        )
            if errors:
                node_errors[node_id] = {
                    "errors": errors,
                    "dependent_outputs": ["8"],
                    "class_type": cls,
                }
        return node_errors

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, code: int, data: Any) -> None:
                self._send(code, json.dumps(data).encode())

            def do_POST(self) -> None:  # noqa: N802
                if urlparse(self.path).path != "/prompt":
                    return self._json(404, {"error": "not found"})
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                graph = body["prompt"]
                with server._lock:
                    server.prompts.append(body)
                    number = len(server.prompts)
                if server.fail_status:
                    return self._send(server.fail_status, b"500 Internal Server Error")
                node_errors = server.validate(graph)
                if node_errors:
                    return self._json(
                        400,
                        {
                            "error": {
                                "type": "prompt_outputs_failed_validation",
                                "message": "Prompt outputs failed validation",
                                "details": "",
                                "extra_info": {},
                            },
                            "node_errors": node_errors,
                        },
                    )
                prompt_id = str(uuid.uuid4())
                lora = graph["2"]["inputs"]
                text = graph["3"]["inputs"]["text"]
                server.jobs[prompt_id] = {
                    "ready_at": time.monotonic() + server.delay,
                    "number": number,
                    "weight": lora["strength_model"],
                    "text": text,
                    "prefix": graph["8"]["inputs"]["filename_prefix"],
                    "graph": graph,
                }
                self._json(200, {"prompt_id": prompt_id, "number": number, "node_errors": {}})
                if server.die_after is not None and number >= server.die_after:
                    threading.Thread(target=server.stop, daemon=True).start()

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                if url.path == "/system_stats":
                    return self._json(
                        200,
                        {
                            "system": {"os": "posix", "comfyui_version": "0.3.x (fake)"},
                            "devices": [{"name": "cpu", "type": "cpu", "vram_total": 0}],
                        },
                    )
                if url.path == "/object_info":
                    return self._json(200, server.object_info)
                if url.path.startswith("/history/"):
                    if server.slow:
                        time.sleep(server.slow)
                    return self._json(200, server.history(url.path.split("/", 2)[2]))
                if url.path == "/view":
                    q = parse_qs(url.query)
                    name = q.get("subfolder", [""])[0] + "/" + q.get("filename", [""])[0]
                    if name not in server.files:
                        return self._json(404, {"error": "file not found"})
                    return self._send(200, server.files[name], "image/png")
                self._json(404, {"error": "not found"})

        return Handler

    def history(self, prompt_id: str) -> dict[str, Any]:
        job = self.jobs.get(prompt_id)
        if job is None or self.never_finish or time.monotonic() < job["ready_at"]:
            return {}
        if self.execution_error_on == job["number"]:
            status = {
                "status_str": "error",
                "completed": False,
                "messages": [
                    ["execution_start", {"prompt_id": prompt_id}],
                    [
                        "execution_error",
                        {
                            "prompt_id": prompt_id,
                            "node_id": "6",
                            "node_type": "KSampler",
                            "exception_message": "CUDA out of memory. Tried to allocate 2.00 GiB",
                            "exception_type": "torch.OutOfMemoryError",
                        },
                    ],
                ],
            }
            return {prompt_id: {"prompt": [], "outputs": {}, "status": status}}
        subfolder, _, stem = job["prefix"].rpartition("/")
        filename = f"{stem}_00001_.png"
        self.files[f"{subfolder}/{filename}"] = render(job["weight"], job["text"])
        outputs = {
            "8": {"images": [{"filename": filename, "subfolder": subfolder, "type": "output"}]}
        }
        status = {"status_str": "success", "completed": True, "messages": []}
        return {prompt_id: {"prompt": [], "outputs": outputs, "status": status}}
