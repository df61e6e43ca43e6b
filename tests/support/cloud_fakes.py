"""Fake Vast.ai and RunPod servers on loopback, for the real SDKs and CLIs to talk to.

`FakeCloud` answers both: Vast's REST paths under /api/v0 and /api/v1 (point the SDK there with
VAST_URL / server_url, the CLI with --url) and RunPod's GraphQL at /graphql (RUNPOD_API_BASE_URL).
The reply shapes, and where each comes from, are in tests/data/cloud/shapes.json.

Faults, set on the object while it runs: `balance` (0: creating is refused for lack of credit),
`gone_offers` (offer ids that vanished between the listing and the create), `rate_limit`
(the next N calls answer 429), `destroy_delay` (seconds a destroyed instance is still listed,
stopping, before the provider forgets it), `ssh` ((host, port): the address every instance
reports, the tests' loopback sshd; None keeps the documented sample address) and `ssh_delay`
(seconds after the create before the address appears: the instance is still loading).
Vast reports the address as `public_ipaddr` with `ports["22/tcp"][0]["HostPort"]` (direct: the
sshd) and `ssh_host`/`ssh_port` (its ssh proxy: the documented sample, not reachable here);
RunPod as `runtime.ports[]` with `ip`, `publicPort`, `privatePort: 22`, `isIpPublic`, and
`runtime: null` while the pod starts. Shapes and sources: shapes.json's `ssh_address`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SHAPES = json.loads((Path(__file__).parent.parent / "data" / "cloud" / "shapes.json").read_text())
VAST_KEY = "vast-test-key-0123456789"
RUNPOD_KEY = "rp-test-key-0123456789"


class FakeCloud:
    def __init__(self) -> None:
        self.vast_key = VAST_KEY
        self.runpod_key = RUNPOD_KEY
        self.balance = 25.0
        self.gone_offers: set[str] = set()
        self.rate_limit = 0
        self.destroy_delay = 0.0
        self.ssh: tuple[str, int] | None = None
        self.ssh_delay = 0.0
        self.calls: list[tuple[str, str]] = []
        self.instances: dict[str, dict[str, Any]] = {}  # id -> row (provider in "_provider")
        self._destroyed_at: dict[str, float] = {}
        self._next = 7000100
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeCloud:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- state ---------------------------------------------------------------------------------
    def new_id(self) -> str:
        self._next += 1
        return str(self._next)

    def live(self, provider: str) -> dict[str, dict[str, Any]]:
        """Instances the provider still knows (a destroyed one until its delay has passed)."""
        now = time.monotonic()
        out = {}
        for iid, row in self.instances.items():
            if row["_provider"] != provider:
                continue
            gone = self._destroyed_at.get(iid)
            if gone is not None and now - gone >= self.destroy_delay:
                continue
            out[iid] = row
        return out

    def view(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row as the provider shows it now: the ssh address once the instance is up."""
        out = _public(row)
        if self.ssh is None:
            return out
        host, port = self.ssh
        up = time.monotonic() - row.get("_created", 0.0) >= self.ssh_delay
        if row["_provider"] == "vast":
            proxy = SHAPES["vast"]["ssh_address"]["reply"]  # not this machine: the direct one is
            out |= {
                "ssh_host": proxy["ssh_host"] if up else None,
                "ssh_port": proxy["ssh_port"] if up else None,
                "public_ipaddr": host if up else None,
                "ports": {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]} if up else {},
            }
            if not up and out.get("actual_status") == "running":
                out["actual_status"] = "loading"
            return out
        ports = [
            {"ip": host, "isIpPublic": True, "privatePort": 22, "publicPort": port, "type": "tcp"}
        ]
        out["runtime"] = {"ports": ports} if up else None
        return out

    def destroy(self, iid: str) -> bool:
        if iid not in self.live(self.instances.get(iid, {}).get("_provider", "")):
            return False
        row = self.instances[iid]
        self._destroyed_at.setdefault(iid, time.monotonic())
        if "actual_status" in row:
            row["actual_status"], row["cur_state"] = "exited", "stopped"
        else:
            row["desiredStatus"] = "TERMINATED"
        return True


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _handler(cloud: FakeCloud) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                return json.loads(raw or b"{}")
            except ValueError:
                return {}

        def _route(self, method: str) -> None:
            parts = urlsplit(self.path)
            cloud.calls.append((method, parts.path))
            body = self._body()
            with cloud.lock:
                if cloud.rate_limit > 0:
                    cloud.rate_limit -= 1
                    if parts.path == "/graphql":
                        return self._send(429, SHAPES["runpod"]["rate_limit"]["reply"])
                    return self._send(
                        429, SHAPES["vast"]["rate_limit"]["reply"], {"Retry-After": "0"}
                    )
                if parts.path == "/graphql":
                    return self._runpod(body)
                return self._vast(method, parts.path, parse_qs(parts.query), body)

        def do_GET(self) -> None:  # noqa: N802
            self._route("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._route("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._route("PUT")

        def do_DELETE(self) -> None:  # noqa: N802
            self._route("DELETE")

        # ---- Vast.ai -----------------------------------------------------------------------
        def _vast(self, method: str, path: str, query: dict, body: dict) -> None:
            shapes = SHAPES["vast"]
            if self.headers.get("Authorization") != f"Bearer {cloud.vast_key}":
                return self._send(401, shapes["unauthorized"]["reply"])
            if path == "/api/v0/users/current":
                return self._send(200, shapes["current_user"]["reply"] | {"credit": cloud.balance})
            if path == "/api/v0/gpu_names/unique/":
                return self._send(200, shapes["gpu_names"]["reply"])
            if path == "/api/v0/bundles/" and method == "POST":
                wanted = str(((body.get("gpu_name") or {}).get("eq")) or "")
                rows = [
                    o
                    for o in shapes["offers"]["reply"]["offers"]
                    if not wanted or o["gpu_name"] == wanted
                ]
                wanted_id = (body.get("id") or {}).get("eq")
                if wanted_id is not None:
                    rows = [o for o in rows if str(o["id"]) == str(wanted_id)]
                rows = [o for o in rows if str(o["id"]) not in cloud.gone_offers]
                return self._send(200, {"offers": rows})
            m = re.fullmatch(r"/api/v0/asks/(\d+)/", path)
            if m and method == "PUT":
                offer = m.group(1)
                known = {str(o["id"]): o for o in shapes["offers"]["reply"]["offers"]}
                if offer in cloud.gone_offers or offer not in known:
                    return self._send(404, shapes["offer_gone"]["reply"])
                if cloud.balance <= 0:
                    return self._send(402, shapes["no_balance"]["reply"])
                iid = cloud.new_id()
                o = known[offer]
                cloud.instances[iid] = shapes["instance"]["reply"]["instances"] | {
                    "id": int(iid),
                    "_provider": "vast",
                    "label": body.get("label"),
                    "gpu_name": o["gpu_name"],
                    "dph_total": o["dph_total"],
                    "machine_id": o["machine_id"],
                    "start_date": time.time(),
                    "_created": time.monotonic(),
                }
                return self._send(200, shapes["create"]["reply"] | {"new_contract": int(iid)})
            m = re.fullmatch(r"/api/v0/instances/(\d+)/", path)
            if m and method == "GET":
                row = cloud.live("vast").get(m.group(1))
                return self._send(200, {"instances": cloud.view(row) if row else None})
            if m and method == "DELETE":
                if not cloud.destroy(m.group(1)):
                    return self._send(404, shapes["destroy_unknown"]["reply"])
                return self._send(200, shapes["destroy"]["reply"])
            if path == "/api/v1/instances/" and method == "GET":
                rows = [cloud.view(r) for r in cloud.live("vast").values()]
                return self._send(200, shapes["instances"]["reply"] | {"instances": rows})
            return self._send(404, {"success": False, "error": "not_found", "msg": path})

        # ---- RunPod --------------------------------------------------------------------------
        def _runpod(self, body: dict) -> None:
            shapes = SHAPES["runpod"]
            if self.headers.get("Authorization") != f"Bearer {cloud.runpod_key}":
                return self._send(401, shapes["unauthorized"]["reply"])
            q = str(body.get("query", ""))
            gpu_types = shapes["gpu_type"]["reply"]["data"]["gpuTypes"]
            m = re.search(r'gpuTypes\(input:\s*\{id:\s*"([^"]+)"', q)
            if m:
                rows = [g for g in gpu_types if g["id"] == m.group(1)]
                return self._send(200, {"data": {"gpuTypes": rows}})
            if re.search(r"gpuTypes\s*\{", q):
                keep = ("id", "displayName", "memoryInGb")
                rows = [{k: g[k] for k in keep} for g in gpu_types]
                return self._send(200, {"data": {"gpuTypes": rows}})
            if "podFindAndDeployOnDemand" in q:
                gpu = re.search(r'gpuTypeId:\s*"([^"]+)"', q)
                cloud_type = re.search(r"cloudType:\s*(\w+)", q)
                name = re.search(r'name:\s*"([^"]*)"', q)
                gpu_id = gpu.group(1) if gpu else ""
                if f"{(cloud_type.group(1) if cloud_type else '').lower()}:{gpu_id}" in (
                    cloud.gone_offers
                ):
                    return self._send(200, shapes["offer_gone"]["reply"])
                if cloud.balance <= 0:
                    return self._send(200, shapes["no_balance"]["reply"])
                display = next((g["displayName"] for g in gpu_types if g["id"] == gpu_id), gpu_id)
                price = next((g["communityPrice"] for g in gpu_types if g["id"] == gpu_id), 0.5)
                iid = f"rp{cloud.new_id()}"
                cloud.instances[iid] = shapes["pod"]["reply"]["data"]["pod"] | {
                    "id": iid,
                    "_provider": "runpod",
                    "name": name.group(1) if name else "",
                    "costPerHr": price,
                    "machine": {"gpuDisplayName": display},
                    "_created": time.monotonic(),
                }
                reply = shapes["create"]["reply"]["data"]["podFindAndDeployOnDemand"]
                return self._send(200, {"data": {"podFindAndDeployOnDemand": reply | {"id": iid}}})
            m = re.search(r'podTerminate\(input:\s*\{\s*podId:\s*"([^"]+)"', q)
            if m:
                cloud.destroy(m.group(1))
                return self._send(200, shapes["terminate"]["reply"])
            m = re.search(r'pod\(input:\s*\{podId:\s*"([^"]+)"', q)
            if m:
                row = cloud.live("runpod").get(m.group(1))
                return self._send(200, {"data": {"pod": cloud.view(row) if row else None}})
            if re.search(r"myself\s*\{\s*pods", q):
                rows = [cloud.view(r) for r in cloud.live("runpod").values()]
                return self._send(200, {"data": {"myself": {"pods": rows}}})
            return self._send(200, {"errors": [{"message": f"fake: unknown query {q[:60]!r}"}]})

    return Handler
