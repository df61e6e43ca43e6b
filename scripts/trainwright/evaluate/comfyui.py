"""A small client for ComfyUI's HTTP API: queue a workflow, wait for it, fetch its images.

Endpoints: POST /prompt {"prompt", "client_id"} -> {"prompt_id", "number", "node_errors"} (400
with "error" and "node_errors" when the workflow is invalid); GET /history/<id> -> {} until the
prompt has run, then {<id>: {"outputs": {<node>: {"images": [...]}}, "status": {...}}};
GET /view?filename=&subfolder=&type= -> image bytes; GET /object_info; GET /system_stats.
Polling /history is enough for a grid (no websocket needed); it backs off from 0.2 s to 2 s.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from trainwright.errors import TrainwrightError


class ComfyUIError(Exception):
    """Something ComfyUI did or did not do; `str()` is one line for the person."""


class Unreachable(ComfyUIError):
    """No answer: nothing listening, connection dropped, or slower than the request timeout."""


class Rejected(ComfyUIError):
    """ComfyUI refused the workflow (HTTP 400) and said why in node_errors."""

    def __init__(self, message: str, node_errors: dict[str, Any]) -> None:
        super().__init__(message)
        self.node_errors = node_errors


class ServerError(ComfyUIError):
    """ComfyUI answered with an HTTP error other than a validation failure (e.g. 500)."""


class ExecutionFailed(ComfyUIError):
    """The workflow was accepted but failed while running (an execution_error in history)."""


class TimedOut(ComfyUIError):
    """The workflow did not finish within the time allowed for one image."""


def check_url(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise TrainwrightError(
            f"--comfyui {url!r} is not an http(s) URL; give one like http://127.0.0.1:8188"
        )
    return url.rstrip("/")


def _first_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def describe_node_errors(node_errors: dict[str, Any]) -> str:
    parts = []
    for node_id, info in sorted(node_errors.items()):
        cls = info.get("class_type", "?") if isinstance(info, dict) else "?"
        errors = info.get("errors", []) if isinstance(info, dict) else []
        msgs = [
            e.get("details") or e.get("message", "") for e in errors if isinstance(e, dict)
        ] or ["invalid"]
        parts.append(f"node {node_id} ({cls}): {'; '.join(m for m in msgs if m)}")
    return _first_line(" | ".join(parts), 400)


class ComfyUIClient:
    def __init__(
        self,
        url: str,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = check_url(url)
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex
        self._sleep = sleep
        self._clock = clock

    def _request(
        self, path: str, body: dict[str, Any] | None = None, query: dict[str, str] | None = None
    ) -> bytes:
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            if exc.code == 400 and path == "/prompt":
                raise self._rejection(raw) from None
            detail = _first_line(raw.decode("utf-8", "replace")) if raw else exc.reason
            raise ServerError(f"ComfyUI answered HTTP {exc.code} to {path}: {detail}") from None
        except TimeoutError:
            raise Unreachable(
                f"ComfyUI at {self.url} did not answer {path} within {self.timeout:g} s"
            ) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise Unreachable(
                    f"ComfyUI at {self.url} did not answer {path} within {self.timeout:g} s"
                ) from None
            raise Unreachable(f"ComfyUI at {self.url} is not reachable ({reason})") from None
        except (ConnectionError, OSError, http.client.HTTPException) as exc:
            raise Unreachable(f"ComfyUI at {self.url} dropped the connection ({exc})") from None

    def _json(self, path: str, body: dict[str, Any] | None = None) -> Any:
        raw = self._request(path, body)
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ServerError(f"ComfyUI sent something that is not JSON for {path}") from None

    @staticmethod
    def _rejection(raw: bytes) -> Rejected:
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return Rejected(f"ComfyUI rejected the workflow: {_first_line(raw.decode())}", {})
        node_errors = data.get("node_errors") or {}
        error = data.get("error") or {}
        head = error.get("message", "invalid workflow") if isinstance(error, dict) else str(error)
        detail = describe_node_errors(node_errors) if node_errors else ""
        if not detail and isinstance(error, dict):
            detail = error.get("details", "")
        return Rejected(
            _first_line(
                f"ComfyUI rejected the workflow: {head}" + (f": {detail}" if detail else "")
            ),
            node_errors,
        )

    def system_stats(self) -> dict[str, Any]:
        return self._json("/system_stats")

    def object_info(self) -> dict[str, Any]:
        return self._json("/object_info")

    def queue(self, graph: dict[str, Any]) -> str:
        data = self._json("/prompt", {"prompt": graph, "client_id": self.client_id})
        node_errors = data.get("node_errors") or {}
        if node_errors:
            raise Rejected(
                f"ComfyUI rejected the workflow: {describe_node_errors(node_errors)}", node_errors
            )
        prompt_id = data.get("prompt_id")
        if not prompt_id:
            raise ServerError("ComfyUI accepted the workflow but returned no prompt_id")
        return str(prompt_id)

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        data = self._json(f"/history/{urllib.parse.quote(prompt_id)}")
        entry = data.get(prompt_id) if isinstance(data, dict) else None
        return entry if isinstance(entry, dict) else None

    def wait(self, prompt_id: str, timeout: float) -> dict[str, Any]:
        """Poll /history until the prompt is done; return its entry or raise why it is not."""
        deadline = self._clock() + timeout
        delay = 0.2
        while True:
            entry = self.history(prompt_id)
            if entry is not None:
                status = entry.get("status") or {}
                if status.get("status_str") == "error":
                    raise ExecutionFailed(_execution_error(status))
                if status.get("completed", True) and entry.get("outputs") is not None:
                    return entry
            if self._clock() >= deadline:
                raise TimedOut(f"ComfyUI did not finish prompt {prompt_id} within {timeout:g} s")
            self._sleep(delay)
            delay = min(delay * 1.5, 2.0)

    def view(self, image: dict[str, Any]) -> bytes:
        query = {
            "filename": str(image.get("filename", "")),
            "subfolder": str(image.get("subfolder", "")),
            "type": str(image.get("type", "output")),
        }
        return self._request("/view", query=query)


def _execution_error(status: dict[str, Any]) -> str:
    for message in status.get("messages", []):
        if isinstance(message, list) and len(message) == 2 and message[0] == "execution_error":
            info = message[1] if isinstance(message[1], dict) else {}
            where = f"node {info.get('node_id', '?')} ({info.get('node_type', '?')})"
            what = info.get("exception_message") or info.get("exception_type") or "failed"
            return _first_line(f"ComfyUI failed while running {where}: {what}")
    return "ComfyUI reported an error while running the workflow"


def output_images(entry: dict[str, Any], node_id: str) -> list[dict[str, Any]]:
    images = (entry.get("outputs") or {}).get(node_id, {}).get("images", [])
    return [i for i in images if isinstance(i, dict) and i.get("filename")]
