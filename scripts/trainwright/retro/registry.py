"""`.codex/skills/registry.json`: the retrospective's domain and paths, one file for both agents.

Paths are relative to the project root, the folder that holds `.codex/`; a path that leaves it
(absolute, `~`, `..`, or a symlink out) is refused. Switching domain rewrites the file atomically
and keeps every key this code does not know.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from trainwright.errors import TrainwrightError
from trainwright.state.atomic import atomic_write_text, locked

REGISTRY_REL = Path(".codex") / "skills" / "registry.json"
ENV = "TRAINWRIGHT_REGISTRY"
DEFAULT_PATHS = {"skills": ".codex/skills", "staging": ".trainwright/retro/proposals"}
REQUIRED_PATHS = ("reports", "experiment_log", "troubleshooting", "templates")
MAX_REGISTRY_BYTES = 256 * 1024


@functools.cache
def schema() -> dict[str, Any]:
    text = (resources.files("trainwright.retro") / "registry.schema.json").read_text("utf-8")
    data = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(data)
    return data


def domains_in_schema() -> list[str]:
    return list(schema()["properties"]["domain"]["enum"])


def find_registry(start: Path | None = None) -> Path:
    """`$TRAINWRIGHT_REGISTRY`, else `.codex/skills/registry.json` here or in a parent folder."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / REGISTRY_REL).is_file():
            return folder / REGISTRY_REL
    raise TrainwrightError(
        f"no {REGISTRY_REL} in {here} or above; run 'trainwright init' or pass --registry PATH"
    )


def root_of(registry_path: Path) -> Path:
    """The project root: the folder holding `.codex/` (else the registry's own folder)."""
    p = registry_path.resolve()
    if p.parent.name == "skills" and p.parent.parent.name == ".codex":
        return p.parent.parent.parent
    return p.parent


@dataclass
class Registry:
    path: Path
    root: Path
    data: dict[str, Any]

    @property
    def domain(self) -> str:
        return str(self.data["domain"])

    def paths(self, domain: str | None = None) -> dict[str, str]:
        """The paths in force (for `domain`: with that domain's overrides), defaults filled in."""
        out = {**DEFAULT_PATHS, **self.data["paths"]}
        if domain is not None and domain != self.domain:
            override = self.data.get("domains", {}).get(domain, {}).get("paths", {})
            out.update(override)
        return out

    def resolve(self, key: str, domain: str | None = None) -> Path:
        rel = self.paths(domain).get(key)
        if rel is None:
            raise TrainwrightError(f"{self.path}: paths.{key} is not set")
        return inside(self.root, rel, f"{self.path}: paths.{key}")

    def rel(self, path: Path) -> str:
        try:
            return _resolve(path).relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def _resolve(path: Path) -> Path:
    """resolve() that survives a symlink loop (Python 3.11 raises RuntimeError): the folder
    resolved, the looping name kept as it is."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return _resolve(path.parent) / path.name if path.parent != path else path


def inside(root: Path, rel: str, what: str) -> Path:
    """`root/rel`, refusing anything that would land outside `root`."""
    if rel.startswith("~") or os.path.isabs(rel) or "\x00" in rel:
        raise TrainwrightError(f"{what} = {rel!r} must be relative to the project root {root}")
    target = _resolve(root / rel)
    if target != root and root not in target.parents:
        raise TrainwrightError(f"{what} = {rel!r} points outside the project root {root}")
    return target


def problems(data: Any, root: Path, where: str) -> list[str]:
    """Every schema and path-safety problem of a parsed registry, as one-line messages."""
    validator = jsonschema.Draft202012Validator(schema())
    out = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        loc = ".".join(str(p) for p in err.absolute_path) or "top level"
        if err.validator == "enum":
            allowed = ", ".join(str(v) for v in err.validator_value)
            out.append(f"{where}: {loc} is {err.instance!r}; allowed: {allowed}")
        elif err.validator == "required":
            out.append(f"{where}: {loc}: {err.message}")
        else:
            out.append(f"{where}: {loc}: {err.message}")
    if isinstance(data, dict) and isinstance(data.get("paths"), dict):
        sources = [("paths", data["paths"])]
        for dom, entry in (data.get("domains") or {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("paths"), dict):
                sources.append((f"domains.{dom}.paths", entry["paths"]))
        for prefix, paths in sources:
            for key, rel in paths.items():
                if isinstance(rel, str) and rel:
                    try:
                        inside(root, rel, f"{where}: {prefix}.{key}")
                    except TrainwrightError as exc:
                        out.append(str(exc))
    return out


def read_raw(path: Path) -> Any:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise TrainwrightError(f"{path}: registry not found") from None
    if path.is_dir():
        raise TrainwrightError(f"{path}: is a folder, expected registry.json")
    if size > MAX_REGISTRY_BYTES:
        raise TrainwrightError(f"{path}: {size} bytes is too large for a registry")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise TrainwrightError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise TrainwrightError(
            f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})"
        ) from None


def load(path: Path | None = None) -> Registry:
    """Read and check the registry; raise TrainwrightError naming the first problem."""
    path = Path(path) if path else find_registry()
    data = read_raw(path)
    root = root_of(path)
    found = problems(data, root, str(path))
    if found:
        more = f" (and {len(found) - 1} more; run 'trainwright registry validate')"
        raise TrainwrightError(found[0] + (more if len(found) > 1 else ""))
    return Registry(path, root, data)


def switch(path: Path, domain: str) -> tuple[Registry, str, dict[str, str]]:
    """Set the domain (and that domain's path overrides); keep all other keys and their order."""
    if domain not in domains_in_schema():
        allowed = ", ".join(domains_in_schema())
        raise TrainwrightError(f"unknown domain {domain!r}; one of: {allowed}")
    with locked(root_of(path) / ".trainwright"):
        reg = load(path)
        before = reg.domain
        data = dict(reg.data)
        data["domain"] = domain
        override = data.get("domains", {}).get(domain, {}).get("paths", {})
        changed = {k: v for k, v in override.items() if reg.data["paths"].get(k) != v}
        data["paths"] = {**reg.data["paths"], **override}
        found = problems(data, reg.root, str(path))
        if found:
            raise TrainwrightError(found[0])
        if data != reg.data:
            atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return Registry(path, reg.root, data), before, changed
