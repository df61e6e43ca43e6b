"""The grimoire folder: eye.md, studio.md and one folder per training project."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

from trainwright import pack
from trainwright.errors import StateFileError, TrainwrightError
from trainwright.state.atomic import atomic_write_text, locked
from trainwright.state.document import Document, parse_document, read_document, set_fields
from trainwright.state.names import check_name
from trainwright.state.schema import check_assignments, validate_document

BASE_KINDS = ("eye", "studio")
PROJECT_KINDS = (
    "intent",
    "dataset-report",
    "config",
    "environment",
    "progress",
    "eval",
    "status",
)
ALL_KINDS = BASE_KINDS + PROJECT_KINDS


def kind_of(path: Path) -> str | None:
    """The state-file kind a path names (by its file name), or None for other Markdown."""
    stem = path.name.removesuffix(".md")
    if path.suffix != ".md":
        return None
    if stem in BASE_KINDS:
        return stem
    if stem in PROJECT_KINDS and path.parent.parent.name == "training":
        return stem
    return None


def check_kind(kind: str) -> str:
    if kind not in ALL_KINDS:
        raise TrainwrightError(f"unknown state file kind {kind!r}; one of: {', '.join(ALL_KINDS)}")
    return kind


def update_file(
    path: Path, kind: str, updates: dict[str, dict[str, object]], known_only: bool = False
) -> dict[str, Any]:
    """Set fields in a state file. The file must be valid before and after; else it is untouched.

    known_only: refuse sections and fields the schema does not know, and non-dates in date
    fields (for what a person sets by hand through `grimoire set`).
    """
    with locked(path.parent):
        doc = read_document(path)
        validate_document(doc, kind)
        if known_only:
            for section, fields in updates.items():
                check_assignments(kind, section, fields)
        new = set_fields(doc, updates)
        data = validate_document(new, kind)
        atomic_write_text(path, new.text())
    return data


class Grimoire:
    """All reads and writes of grimoire files go through here: validated, atomic, locked."""

    def __init__(self, root: Path | str) -> None:
        # Absolute at once: trainers and supervisors run in other working folders, so a path
        # derived from a relative --grimoire would name another file there. abspath, not
        # resolve: a symlinked project keeps the path the person typed.
        self.root = Path(os.path.abspath(Path(root).expanduser()))

    @property
    def project_root(self) -> Path:
        """The folder that holds grimoire/: relative paths in state files are relative to it."""
        return self.root.parent

    def resolve(self, raw: str | os.PathLike[str]) -> Path:
        """A path as written in a state file, made absolute against the project root."""
        path = Path(os.path.expanduser(str(raw).strip()))
        return path if path.is_absolute() else Path(os.path.normpath(self.project_root / path))

    def dataset_folder(self, project: str) -> Path | None:
        """intent.md's Dataset folder, absolute (None when it names none)."""
        _, intent = self.read("intent", project)
        raw = intent["sections"].get("", {}).get("Dataset folder")
        return self.resolve(raw) if raw and str(raw).strip() else None

    def project_dir(self, project: str) -> Path:
        return self.root / "training" / check_name(project)

    def path_for(self, kind: str, project: str | None = None) -> Path:
        check_kind(kind)
        if kind in BASE_KINDS:
            return self.root / f"{kind}.md"
        if not project:
            raise TrainwrightError(f"'{kind}' belongs to a training project: give --project NAME")
        return self.project_dir(project) / f"{kind}.md"

    def projects(self) -> list[str]:
        folder = self.root / "training"
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    def read(self, kind: str, project: str | None = None) -> tuple[Document, dict[str, Any]]:
        doc = read_document(self.path_for(kind, project))
        return doc, validate_document(doc, kind)

    def update(
        self,
        kind: str,
        updates: dict[str, dict[str, object]],
        project: str | None = None,
    ) -> dict[str, Any]:
        return update_file(self.path_for(kind, project), kind, updates)

    def ensure_base(self) -> list[Path]:
        """Create eye.md and studio.md from the templates where they do not exist yet."""
        created = []
        with locked(self.root):
            for kind in BASE_KINDS:
                path = self.root / f"{kind}.md"
                if not path.exists():
                    atomic_write_text(path, pack.read_text(f"grimoire/{kind}.md"))
                    created.append(path)
        return created

    def new_project(self, project: str, today: _dt.date | None = None) -> dict[str, list[Path]]:
        """Create the per-project files from templates; existing files are kept as they are."""
        folder = self.project_dir(project)
        date = (today or _dt.date.today()).isoformat()
        created, kept = [], []
        with locked(folder):
            for kind in PROJECT_KINDS:
                path = folder / f"{kind}.md"
                if path.exists():
                    kept.append(path)
                    continue
                text = pack.read_text(f"grimoire/templates/training/{kind}.md")
                text = text.replace("{name}", project).replace("{date}", date)
                validate_document(parse_document(text, path), kind)
                atomic_write_text(path, text)
                created.append(path)
        return {"created": created, "kept": kept}

    def validate_all(self, project: str | None = None) -> list[dict[str, Any]]:
        """Check every state file that exists; return one result per file."""
        paths: list[tuple[str, Path]] = []
        if project is None:
            paths += [(k, self.root / f"{k}.md") for k in BASE_KINDS]
            projects = self.projects()
        else:
            projects = [project]
        for name in projects:
            paths += [(k, self.path_for(k, name)) for k in PROJECT_KINDS]
        results = []
        for kind, path in paths:
            if not path.exists():
                results.append({"path": str(path), "kind": kind, "ok": None, "error": "missing"})
                continue
            try:
                validate_document(read_document(path), kind)
                results.append({"path": str(path), "kind": kind, "ok": True, "error": None})
            except StateFileError as exc:
                results.append(
                    {
                        "path": str(path),
                        "kind": kind,
                        "ok": False,
                        "error": exc.one_line(),
                        "line": exc.line,
                    }
                )
        return results
