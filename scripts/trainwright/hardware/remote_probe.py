"""Gate 3 over ssh: gather a remote machine's raw facts with a self-contained probe, judge locally.

The remote machine needs no trainwright: `ssh -o BatchMode=yes [options] -- HOST 'python3 -'`
gets the probe below on stdin and prints one JSON object (nvidia-smi output, the PyTorch build
read from its files, Python, free disk, which trainer packages and folders are there). A machine
without python3 gets a few `sh` commands instead. The facts then go through the same
`env_check.evaluate` as a local check, so the findings and fixes read the same.
Extra ssh options: `--ssh-option` on the command line, or TRAINWRIGHT_SSH_OPTS (shell words).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from typing import Any

from trainwright.errors import TrainwrightError
from trainwright.hardware import env_check
from trainwright.hardware.gpu import ENV_OVERRIDE, GPU, QUERY, parse_query_csv

SSH_OPTS_ENV = "TRAINWRIGHT_SSH_OPTS"
CONNECT_TIMEOUT_S = 10
PROBE_TIMEOUT_S = 300
SH_MARKER = "#trainwright-sh-probe"
_HOST = re.compile(r"^(?:[A-Za-z0-9._+-]+@)?[A-Za-z0-9][A-Za-z0-9._:-]*$")

# Runs on the remote machine under any Python 3.6+; standard library only.
PROBE = r"""
import glob, json, os, platform, re, shutil, subprocess, sys
import importlib.util
CONFIG = json.loads(%(config)s)

def run(argv, cwd=None, timeout=15):
    try:
        p = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except Exception as exc:
        return None, "", str(exc)

def last_line(rc, err):
    lines = [l for l in err.strip().splitlines() if l.strip()]
    return lines[-1] if lines else "exit %%s" %% rc

def version_of(dist):
    try:
        from importlib import metadata
        return metadata.version(dist)
    except Exception:
        return None

def torch_cuda_in(site):
    try:
        with open(os.path.join(site, "torch", "version.py")) as fh:
            m = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([\d.]+)['\"]", fh.read(), re.M)
        return m.group(1) if m else None
    except OSError:
        return None

def torch_here():
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return {"version": None, "cuda": None, "python": sys.executable}
    site = os.path.dirname(list(spec.submodule_search_locations)[0])
    return {"version": version_of("torch"), "cuda": torch_cuda_in(site),
            "python": sys.executable}

def torch_in_venv(python):
    venv = os.path.dirname(os.path.dirname(python))
    for site in sorted(glob.glob(os.path.join(venv, "lib", "python3*", "site-packages"))):
        dists = sorted(glob.glob(os.path.join(site, "torch-*.dist-info")))
        if dists:
            name = os.path.basename(dists[-1])[len("torch-"):-len(".dist-info")]
            return {"version": name, "cuda": torch_cuda_in(site), "python": python}
    return {"version": None, "cuda": None, "python": python}

out = {"python": platform.python_version(), "executable": sys.executable}
smi = os.environ.get("%(smi_env)s") or shutil.which("nvidia-smi")
out["smi"] = None
if smi:
    rc, so, se = run([smi, "--query-gpu=%(query)s", "--format=csv,noheader,nounits"])
    out["smi"] = {"binary": smi, "rc": rc, "stdout": so, "stderr": se}
    m = re.search(r"CUDA Version:\s*([\d.]+)", run([smi])[1])
    out["smi_cuda"] = m.group(1) if m else None
names = list(CONFIG.get("packages") or []) + ["torch", "trainwright"]
out["modules"] = {n: importlib.util.find_spec(n) is not None for n in names}
out["versions"] = {n: version_of(n) for n in names}
here = os.path.dirname(sys.executable)
out["which"] = {e: shutil.which(e, path=here) or shutil.which(e)
                for e in CONFIG.get("executables") or []}
out["bundled"] = None
if CONFIG.get("bundled") and out["modules"]["trainwright"]:
    pkg = list(importlib.util.find_spec("trainwright").submodule_search_locations)[0]
    path = os.path.join(pkg, *CONFIG["bundled"].split("/"))
    out["bundled"] = path if os.path.isfile(path) else None
torch = torch_here()
clone = CONFIG.get("clone")
if clone:
    folder = os.path.abspath(os.path.expanduser(os.environ.get(clone["env"], clone["default"])))
    info = {"folder": folder, "found": os.path.isfile(os.path.join(folder, clone["marker"]))}
    python = None
    parent = os.path.dirname(os.path.abspath(folder))
    for cand in ("venv", ".venv"):
        for base in (folder, parent):
            exe = os.path.join(base, cand, "bin", "python")
            if python is None and os.path.exists(exe):
                python = exe
    info["python"] = python or sys.executable
    info["import_error"] = None
    if info["found"] and CONFIG.get("deep"):
        rc, so, se = run([info["python"], "-c", "import " + clone["modules"]], cwd=folder,
                         timeout=300)
        info["import_error"] = None if rc == 0 else last_line(rc, se)
    if info["found"]:
        torch = torch_here() if python is None else torch_in_venv(python)
    out["clone"] = info
gpus_listed = bool(out["smi"] and out["smi"]["rc"] == 0 and out["smi"]["stdout"].strip())
torch["usable"], torch["error"] = None, None
if CONFIG.get("deep") and gpus_listed and torch["version"] and torch["cuda"]:
    code = "import torch; torch.zeros(1, device='cuda'); print(torch.cuda.get_device_name(0))"
    rc, so, se = run([torch["python"], "-c", code], timeout=180)
    torch["usable"] = rc == 0
    torch["error"] = None if rc == 0 else last_line(rc, se)
out["torch"] = torch
folder = os.path.abspath(os.path.expanduser(CONFIG.get("folder") or "~"))
while not os.path.exists(folder) and folder != os.path.dirname(folder):
    folder = os.path.dirname(folder)
out["disk_path"] = folder
out["disk_free_bytes"] = shutil.disk_usage(folder).free
print(json.dumps(out))
"""

# Runs when the remote machine has no python3: the GPU and disk facts, from sh.
SH_PROBE = (
    f"echo '{SH_MARKER}'; "
    "if command -v nvidia-smi >/dev/null 2>&1; then "
    f"echo '@@smi'; nvidia-smi --query-gpu={QUERY} --format=csv,noheader,nounits 2>&1; "
    "echo \"@@rc $?\"; echo '@@header'; nvidia-smi 2>/dev/null | grep 'CUDA Version'; fi; "
    "echo '@@df'; cd %(folder)s 2>/dev/null || cd; pwd; df -Pk . | tail -n 1"
)


@dataclass
class Target:
    host: str
    options: list[str]
    python: str = "python3"
    folder: str | None = None  # the folder whose free disk counts; the remote home by default


class SSHFailure(Exception):
    """ssh did not run the probe: the host, and what went wrong in ssh's own words."""


def check_host(host: str) -> str:
    """The host as given, or exit 2: no spaces, shell characters or a leading '-'."""
    if not _HOST.fullmatch(host or ""):
        raise TrainwrightError(
            f"'{host}' is not a host name for ssh: use HOST, USER@HOST or an address "
            "(letters, digits, '.', '-', '_', ':'; not starting with '-'); put ports and keys "
            f"in --ssh-option or {SSH_OPTS_ENV}"
        )
    return host


def check_python(python: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_./~+-]+", python) or python.startswith("-"):
        raise TrainwrightError(f"'{python}' is not a program path for the remote Python")
    return python


def ssh_options(extra: tuple[str, ...] | list[str], env: dict[str, str]) -> list[str]:
    try:
        from_env = shlex.split(env.get(SSH_OPTS_ENV, ""))
    except ValueError as exc:
        raise TrainwrightError(f"{SSH_OPTS_ENV} is not valid shell words: {exc}") from None
    opts = from_env
    for item in extra:
        try:
            opts += shlex.split(item)
        except ValueError as exc:
            raise TrainwrightError(f"--ssh-option {item!r} is not valid: {exc}") from None
    return opts


def remote_command(target: Target) -> str:
    folder = shlex.quote(target.folder) if target.folder else '"$HOME"'
    py = target.python
    py_word = py if py.startswith("~") else shlex.quote(py)
    return f"if command -v {py_word} >/dev/null 2>&1; then exec {py_word} -; fi; " + SH_PROBE % {
        "folder": folder
    }


def probe_script(backend: str | None, folder: str | None, deep: bool) -> str:
    config: dict[str, Any] = {"folder": folder, "deep": deep, "clone": None}
    if backend:
        from trainwright.backends import install_probe

        config.update(
            install_probe.request(install_probe.spec_of(env_check.backend_module(backend)))
        )
    return PROBE % {"config": repr(json.dumps(config)), "query": QUERY, "smi_env": ENV_OVERRIDE}


def run_probe(
    target: Target, backend: str | None, *, deep: bool = True, timeout: float = PROBE_TIMEOUT_S
) -> dict[str, Any]:
    """The remote machine's raw facts; SSHFailure when ssh itself fails."""
    argv = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={CONNECT_TIMEOUT_S}",
        *target.options,
        "--",
        target.host,
        remote_command(target),
    ]
    try:
        proc = subprocess.run(
            argv,
            input=probe_script(backend, target.folder, deep),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise SSHFailure("the ssh client is not installed on this machine") from None
    except subprocess.TimeoutExpired:
        raise SSHFailure(f"no answer within {timeout:g} s") from None
    err = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    if proc.returncode == 255:
        raise SSHFailure(err[-1] if err else "ssh failed (exit 255)")
    text = proc.stdout.strip()
    if text.startswith(SH_MARKER):
        return parse_sh(text)
    try:
        return json.loads(text.splitlines()[-1])
    except (ValueError, IndexError):
        why = err[-1] if err else f"exit {proc.returncode}, no output"
        raise SSHFailure(f"the probe printed no result ({why})") from None


def parse_sh(text: str) -> dict[str, Any]:
    """The sh fallback's sections, in the probe's JSON shape (no Python, no PyTorch)."""
    parts: dict[str, list[str]] = {}
    key = ""
    rc = None
    for line in text.splitlines()[1:]:
        if line.startswith("@@rc "):
            rc = int(line.split()[1])
        elif line.startswith("@@"):
            key = line[2:].strip()
            parts[key] = []
        elif key:
            parts[key].append(line)
    raw: dict[str, Any] = {"python": None, "executable": None, "smi": None, "modules": {}}
    if "smi" in parts:
        raw["smi"] = {"binary": "nvidia-smi", "rc": rc, "stdout": "\n".join(parts["smi"])}
        raw["smi"]["stderr"] = raw["smi"]["stdout"] if rc else ""
        m = re.search(r"CUDA Version:\s*([\d.]+)", "\n".join(parts.get("header", [])))
        raw["smi_cuda"] = m.group(1) if m else None
    df = parts.get("df", [])
    raw["disk_path"] = df[0] if df else "?"
    fields = df[-1].split() if len(df) > 1 else []
    raw["disk_free_bytes"] = int(fields[3]) * 1024 if len(fields) > 3 else 0
    raw["torch"] = {"version": None, "cuda": None, "python": None}
    return raw


def _gpus(raw: dict[str, Any]) -> tuple[list[GPU], str | None]:
    smi = raw.get("smi")
    if not smi:
        return [], "nvidia-smi not found (no NVIDIA driver on this machine)"
    if smi.get("rc") is None:
        return [], f"nvidia-smi could not run: {smi.get('stderr')}"
    if smi["rc"] != 0:
        msg = (smi.get("stderr") or smi.get("stdout") or "").strip().splitlines()
        return [], f"nvidia-smi failed: {msg[0] if msg else 'exit ' + str(smi['rc'])}"
    try:
        gpus = parse_query_csv(smi.get("stdout") or "")
    except ValueError as exc:
        return [], str(exc)
    return gpus, None if gpus else "nvidia-smi listed no GPUs"


def _backend(raw: dict[str, Any], name: str) -> tuple[bool, str, str]:
    """(installed, what was found or the fix, fingerprint): the same rule as here
    (backends/install_probe.py), judged on the remote machine's facts."""
    from trainwright.backends import install_probe, module_name

    module = env_check.backend_module(name)
    key = module_name(module.NAME)
    ok, detail, fingerprint, _ = install_probe.verdict(
        key, install_probe.spec_of(module), raw, remote=True
    )
    return ok, detail, fingerprint


def facts_from(raw: dict[str, Any], backend: str | None) -> env_check.EnvFacts:
    gpus, gpu_error = _gpus(raw)
    t = raw.get("torch") or {}
    torch = env_check.TorchFacts(
        t.get("version"), t.get("cuda"), t.get("usable"), t.get("error"), t.get("python")
    )
    ok, detail, fingerprint = (None, "", "")
    if backend:
        ok, detail, fingerprint = _backend(raw, backend)
    return env_check.EnvFacts(
        gpus=gpus,
        gpu_error=gpu_error,
        gpu_source="nvidia-smi" if gpus else (raw.get("smi") or {}).get("binary"),
        driver=gpus[0].driver_version if gpus else None,
        driver_cuda=raw.get("smi_cuda") if gpus else None,
        torch=torch,
        python=raw.get("python") or "not found",
        backend=backend,
        backend_ok=ok,
        backend_detail=detail,
        backend_fingerprint=fingerprint,
        disk_path=str(raw.get("disk_path")),
        disk_free_bytes=int(raw.get("disk_free_bytes") or 0),
    )


def gather(target: Target, backend: str | None, *, deep: bool = True) -> env_check.EnvFacts:
    return facts_from(run_probe(target, backend, deep=deep), backend)


def ssh_finding(target: Target, why: str) -> env_check.Finding:
    return env_check.Finding(
        "ssh",
        "error",
        f"Could not check {target.host} over ssh: {why}.",
        f"check that `ssh {target.host}` logs in without a password prompt (a key in ssh-agent "
        f"or --ssh-option '-i KEY'; the port with --ssh-option '-p PORT' or {SSH_OPTS_ENV}), "
        "that the machine is running, then check again",
    )
