"""Write the dataset parts of grimoire/training/<name>/dataset-report.md through the state layer.

Summary values are `- **Key**: value` fields; the prose parts (Diversity Assessment, Content-Style
Balance, Quality Issues, the decision's fixes) are tool-written blocks between markers, so what a
person writes around them survives every rerun. Writes are validated, locked and atomic.
"""

from __future__ import annotations

from trainwright.state.atomic import atomic_write_text, locked
from trainwright.state.document import read_document, set_block, set_fields
from trainwright.state.grimoire import Grimoire
from trainwright.state.schema import validate_document

KIND = "dataset-report"


def update_report(
    g: Grimoire,
    project: str,
    fields: dict[str, dict[str, object]] | None = None,
    blocks: dict[tuple[str, str], str] | None = None,
) -> None:
    """fields: {section: {key: value}}; blocks: {(section, block id): Markdown text}."""
    path = g.path_for(KIND, project)
    if not path.exists():
        from trainwright.errors import TrainwrightError

        raise TrainwrightError(
            f"project '{project}' has no dataset-report.md: start it with "
            f"'trainwright grimoire new {project}'"
        )
    with locked(path.parent):
        doc = read_document(path)
        validate_document(doc, KIND)
        if fields:
            doc = set_fields(doc, fields)
        for (section, block_id), text in (blocks or {}).items():
            doc = set_block(doc, section, block_id, text)
        validate_document(doc, KIND)
        atomic_write_text(path, doc.text())


def bullets(lines: list[str]) -> str:
    return "\n".join(f"- {ln}" for ln in lines) if lines else "- nothing to report"


def stamp(title: str, lines: list[str]) -> str:
    return f"_{title}_\n\n{bullets(lines)}"
