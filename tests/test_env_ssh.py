"""`env check --ssh HOST`: the Gate 3 probe over a real ssh connection to a local sshd, judged by
the same rules as the local check (same facts, same findings), ssh failures as a NO-GO naming the
host, and host strings that could smuggle ssh options refused before ssh runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import assert_one_line_error, run_cli
from support.fake_smi import fake_smi
from support.ssh_server import SSHServer, free_port, ssh_server  # noqa: F401 - a fixture
from support.tiny_project import make_project
from trainwright.errors import TrainwrightError
from trainwright.hardware.remote_probe import check_host

FACT_KEYS = (
    "gpus",
    "gpu_error",
    "driver",
    "driver_cuda",
    "torch",
    "python",
    "backend",
    "backend_ok",
    "backend_detail",
    "backend_fingerprint",
)


def over_ssh(server: SSHServer, *args: str, **env: str) -> Any:
    return run_cli(
        "env",
        "check",
        "--ssh",
        server.host,
        "--remote-python",
        sys.executable,
        *args,
        env={"TRAINWRIGHT_SSH_OPTS": server.options(), **env},
    )


def cut_clone_folder(text: str) -> str:
    """The absolute folder of a default sd-scripts clone cut to its name: each side resolves
    ./sd-scripts against its own working folder (here the test's, there the login's); both must
    name an absolute path."""
    if "sd-scripts not found at" not in text:
        return text
    match = re.search(r" at (/\S*/)sd-scripts", text)
    assert match, text
    return text.replace(match.group(1), "<folder>/")


def texts(out: dict[str, Any]) -> dict[str, str]:
    """Each finding's text by check, without disk (free space moves between two probes)."""
    found = out["findings"]
    return {f["check"]: cut_clone_folder(f["text"]) for f in found if f["check"] != "disk"}


def same_place(facts: dict[str, Any]) -> dict[str, Any]:
    out = {k: facts[k] for k in FACT_KEYS}
    if isinstance(out.get("backend_detail"), str):
        out["backend_detail"] = cut_clone_folder(out["backend_detail"])
    return out


@pytest.mark.slow  # a real sshd
@pytest.mark.parametrize("backend,decision", [("tiny", "GO"), ("kohya", "NO-GO")])
def test_remote_facts_equal_the_local_ones(
    ssh_server: SSHServer,  # noqa: F811
    tmp_path: Path,
    backend: str,
    decision: str,
) -> None:
    remote = over_ssh(
        ssh_server, "--backend", backend, "--remote-dir", str(tmp_path / "not-yet"), "--json"
    )
    local = run_cli(
        "env",
        "check",
        "--backend",
        backend,
        "--json",
        cwd=tmp_path,
        env={"TRAINWRIGHT_NVIDIA_SMI": ""},
    )
    r, lo = json.loads(remote.stdout), json.loads(local.stdout)
    assert remote.returncode == local.returncode == (0 if decision == "GO" else 1), remote.stderr
    assert r["decision"] == lo["decision"] == decision
    assert r["host"] == ssh_server.host and lo["host"] is None
    assert same_place(r["facts"]) == same_place(lo["facts"])
    assert r["facts"]["disk_path"] == str(tmp_path)  # the nearest folder that exists
    assert texts(r) == texts(lo)
    if backend == "kohya":
        assert "No NVIDIA GPU found" in texts(r)["gpu"]


@pytest.mark.slow  # a real sshd
def test_a_recorded_gpu_on_the_remote_side(ssh_server: SSHServer, tmp_path: Path) -> None:  # noqa: F811
    smi = fake_smi(tmp_path, "h200")
    opts = f"-o SetEnv=TRAINWRIGHT_NVIDIA_SMI={smi}"  # the remote side honours it like here
    remote = over_ssh(ssh_server, "--backend", "kohya", "--ssh-option", opts, "--json")
    local = run_cli(
        "env",
        "check",
        "--backend",
        "kohya",
        "--json",
        cwd=tmp_path,
        env={"TRAINWRIGHT_NVIDIA_SMI": str(smi)},
    )
    r, lo = json.loads(remote.stdout), json.loads(local.stdout)
    assert remote.returncode == 1, remote.stdout + remote.stderr
    assert r["facts"]["gpus"][0]["name"] == "NVIDIA H200" and r["facts"]["driver_cuda"] == "12.6"
    assert same_place(r["facts"]) == same_place(lo["facts"])
    assert texts(r) == texts(lo)
    assert "CPU-only build" in texts(r)["torch"]


@pytest.mark.slow  # a real sshd
def test_gate_3_over_ssh_records_the_host(ssh_server: SSHServer, tmp_path: Path) -> None:  # noqa: F811
    g = make_project(tmp_path)
    proc = run_cli(
        "--grimoire",
        str(g.root),
        "env",
        "check",
        "demo",
        "--ssh",
        ssh_server.host,
        "--ssh-option",
        ssh_server.options(),
        "--remote-python",
        sys.executable,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Environment for demo on {ssh_server.host} (over ssh): GO" in proc.stdout
    _, doc = g.read("environment", "demo")
    assert doc["sections"][""]["Checked on"] == f"{ssh_server.host} (over ssh)"
    assert doc["sections"][""]["Backend"].startswith("tiny: installed")
    assert doc["sections"]["Gate 3 Decision"]["Decision"] == "GO"
    local = run_cli("--grimoire", str(g.root), "env", "check", "demo")
    assert local.returncode == 0
    _, doc = g.read("environment", "demo")
    assert doc["sections"][""]["Checked on"] == "this machine"


@pytest.mark.slow  # a real sshd
def test_no_python_there_falls_back_to_sh(ssh_server: SSHServer, tmp_path: Path) -> None:  # noqa: F811
    proc = over_ssh(
        ssh_server,
        "--backend",
        "tiny",
        "--remote-python",
        "/nonexistent/python3",
        "--remote-dir",
        str(tmp_path),
        "--json",
    )
    out = json.loads(proc.stdout)
    assert proc.returncode == 1
    found = {f["check"]: f for f in out["findings"]}
    assert found["python"]["severity"] == "error" and "No Python 3" in found["python"]["text"]
    assert found["backend"]["severity"] == "error"
    assert out["facts"]["disk_path"] == str(tmp_path) and out["facts"]["disk_free_bytes"] > 0


@pytest.mark.slow  # a real sshd
def test_a_refused_key_is_a_no_go_naming_the_host(ssh_server: SSHServer, tmp_path: Path) -> None:  # noqa: F811
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    opts = ssh_server.options().replace(str(ssh_server.key), str(other))
    proc = run_cli(
        "env", "check", "--ssh", ssh_server.host, "--json", env={"TRAINWRIGHT_SSH_OPTS": opts}
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    problem = json.loads(proc.stdout)["problems"][0]
    assert problem["check"] == "ssh" and ssh_server.host in problem["text"]
    assert "Permission denied" in problem["text"]


def test_an_unreachable_host_is_a_no_go(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    opts = f"-p {port} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    proc = run_cli("env", "check", "--ssh", "127.0.0.1", env={"TRAINWRIGHT_SSH_OPTS": opts})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "Environment on 127.0.0.1 (over ssh): NO-GO" in proc.stdout
    assert "Could not check 127.0.0.1 over ssh" in proc.stdout
    assert "Connection refused" in proc.stdout and "fix:" in proc.stdout
    g = make_project(tmp_path)
    proc = run_cli(
        "--grimoire",
        str(g.root),
        "env",
        "check",
        "demo",
        "--ssh",
        "127.0.0.1",
        "--json",
        env={"TRAINWRIGHT_SSH_OPTS": opts},
    )
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["decision"] == "NO-GO" and out["host"] == "127.0.0.1"
    _, doc = g.read("environment", "demo")
    assert doc["sections"][""]["Checked on"] == "127.0.0.1 (over ssh)"
    assert doc["sections"]["Gate 3 Decision"]["Decision"] == "NO-GO"
    assert "Connection refused" in doc["sections"]["Gate 3 Decision"]["Reason"]


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--ssh", "-oProxyCommand=touch /tmp/tw-pwned"], "not a host name"),
        (["--ssh", "host name"], "not a host name"),
        (["--ssh", "host;reboot"], "not a host name"),
        (["--ssh", "$(id)"], "not a host name"),
        (["--ssh", "user@-p22"], "not a host name"),
        (["--ssh", ""], "not a host name"),
        (["--ssh", "h", "--remote-python", "python3;id"], "not a program path"),
        (["--ssh", "h", "--ssh-option", "'unclosed"], "--ssh-option"),
        (["--ssh-option", "-p 22"], "need --ssh HOST"),
        (["--remote-dir", "/tmp"], "need --ssh HOST"),
    ],
)
def test_bad_ssh_requests(tmp_path: Path, args: list[str], fragment: str) -> None:
    g = make_project(tmp_path)
    before = (g.project_dir("demo") / "environment.md").read_bytes()
    proc = run_cli("--grimoire", str(g.root), "env", "check", "demo", *args)
    assert_one_line_error(proc, fragment)
    assert (g.project_dir("demo") / "environment.md").read_bytes() == before
    assert not Path("/tmp/tw-pwned").exists()


@pytest.mark.parametrize("host", ["gpu-box", "root@1.2.3.4", "me@node_7.example.org", "fe80::1"])
def test_ordinary_host_names_pass(host: str) -> None:
    assert check_host(host) == host


@pytest.mark.parametrize("host", ["-p", "a@b@c", "h`id`", "h\nx", "h\n", "h|x"])
def test_host_names_that_could_inject_are_refused(host: str) -> None:
    with pytest.raises(TrainwrightError, match="not a host name"):
        check_host(host)
