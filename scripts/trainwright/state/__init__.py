"""The state layer: grimoire and ticket Markdown files, parsed, validated, written atomically."""

from trainwright.state.atomic import atomic_write_text, locked
from trainwright.state.document import Document, Field, parse_document, read_document
from trainwright.state.grimoire import Grimoire
from trainwright.state.names import check_name

__all__ = [
    "Document",
    "Field",
    "Grimoire",
    "atomic_write_text",
    "check_name",
    "locked",
    "parse_document",
    "read_document",
]
