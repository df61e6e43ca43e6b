"""Typed, schema-checked views of grimoire documents.

Each kind of state file has a JSON Schema in `schemas/<kind>.schema.json` over the object
`{"title": str, "sections": {heading: {key: value}}}` ("" is the part under the title).
Values are text in the file; a field's schema type says how to read it (integers, numbers and
booleans as YAML scalars, arrays as a YAML flow list or comma-separated), and an empty value is
null. Errors point at the line of the offending field.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from trainwright.errors import StateFileError, TrainwrightError
from trainwright.state.document import Document, read_document

SCHEMA_PACKAGE = "trainwright.state"


@functools.cache
def load_schema(kind: str) -> dict[str, Any]:
    try:
        text = (resources.files(SCHEMA_PACKAGE) / "schemas" / f"{kind}.schema.json").read_text()
    except FileNotFoundError:
        raise TrainwrightError(f"no schema for state file kind '{kind}'") from None
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def known_kinds() -> list[str]:
    folder = resources.files(SCHEMA_PACKAGE) / "schemas"
    return sorted(
        p.name.removesuffix(".schema.json")
        for p in folder.iterdir()
        if p.name.endswith(".schema.json")
    )


def _field_schema(section_schema: dict[str, Any], key: str) -> dict[str, Any] | None:
    props = section_schema.get("properties", {})
    if key in props:
        return props[key]
    for pattern, sub in section_schema.get("patternProperties", {}).items():
        if re.search(pattern, key):
            return sub
    extra = section_schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def _section_schema(schema: dict[str, Any], title: str) -> dict[str, Any]:
    sections = schema.get("properties", {}).get("sections", {})
    sub = _field_schema(sections, title)
    return sub or {}


def _types(field_schema: dict[str, Any]) -> list[str]:
    if "type" not in field_schema:
        enum = field_schema.get("enum", [])
        return ["string", "null"] if None in enum else ["string"]
    t = field_schema["type"]
    return [t] if isinstance(t, str) else list(t)


_READABLE = {
    "integer": "a whole number",
    "number": "a number",
    "boolean": "yes or no",
    "array": "a list",
    "string": "text",
    "null": "empty",
}


def coerce(raw: str, field_schema: dict[str, Any] | None) -> Any:
    """Read a field's text as the type its schema asks for; raise ValueError with the reason."""
    raw = raw.strip()
    if field_schema is None:
        return raw
    types = _types(field_schema)
    if raw == "":
        if "null" in types:
            return None
        if "string" in types:
            return ""
        raise ValueError("is empty")
    if "string" in types and not ({"integer", "number", "boolean", "array"} & set(types)):
        return raw
    if "array" in types:
        if raw.startswith("["):
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise ValueError(f"is not a valid list ({_yaml_problem(exc)})") from None
            if not isinstance(value, list):
                raise ValueError("is not a valid list")
            return value
        items = [s.strip() for s in raw.split(",") if s.strip()]
        item_schema = field_schema.get("items")
        return [coerce(s, item_schema) for s in items]
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ValueError(f"cannot be read ({_yaml_problem(exc)})") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"is {raw!r}, not a finite number")
    if "boolean" in types and isinstance(value, bool):
        return value
    if "integer" in types and isinstance(value, int) and not isinstance(value, bool):
        return value
    if "number" in types and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if "string" in types:
        return raw
    wanted = " or ".join(_READABLE.get(t, t) for t in types if t != "null")
    raise ValueError(f"should be {wanted}, got {raw!r}")


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return str(problem)


def typed_data(doc: Document, schema: dict[str, Any]) -> dict[str, Any]:
    where = doc.path or "<text>"
    sections: dict[str, dict[str, Any]] = {}
    for title, sec in doc.sections.items():
        sec_schema = _section_schema(schema, title)
        out: dict[str, Any] = {}
        for key, fld in sec.fields.items():
            try:
                out[key] = coerce(fld.value, _field_schema(sec_schema, key))
            except ValueError as exc:
                raise StateFileError(where, f"'{key}' {exc}", fld.line) from None
        sections[title] = out
    return {"title": doc.title, "sections": sections}


def validate_document(doc: Document, kind: str) -> dict[str, Any]:
    """Return the typed data of `doc`, or raise StateFileError naming the first problem's line."""
    schema = load_schema(kind)
    data = typed_data(doc, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), e.message))
    if errors:
        raise _explain(doc, errors[0])
    return data


def _explain(doc: Document, err: jsonschema.ValidationError) -> StateFileError:
    where = doc.path or "<text>"
    path = list(err.absolute_path)
    last_line = len(doc.lines)
    if path == ["title"] or (not path and err.validator == "required" and "title" in err.message):
        return StateFileError(
            where,
            f"the first line should be a '# ' title matching {err.schema.get('pattern', '')!r}"
            if path
            else "the file has no '# ' title line",
            doc.title_line or 1,
        )
    if path == ["sections"] and err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return StateFileError(
            where,
            f"heading '## {missing}' is missing (file ends at line {last_line}; truncated?)",
            last_line,
        )
    if len(path) == 2 and path[0] == "sections":
        title = str(path[1])
        sec = doc.sections.get(title)
        line = sec.line if sec else last_line
        if err.validator == "required":
            missing = err.message.split("'")[1] if "'" in err.message else err.message
            label = f"under '## {title}'" if title else "under the title"
            return StateFileError(where, f"'- **{missing}**:' is missing {label}", line or 1)
        if err.validator == "additionalProperties":
            return StateFileError(where, f"unexpected field under '{title}': {err.message}", line)
    if len(path) >= 3 and path[0] == "sections":
        title, key = str(path[1]), str(path[2])
        sec = doc.sections.get(title)
        line = sec.fields[key].line if sec and key in sec.fields else None
        return StateFileError(where, f"'{key}' {_human(err)}", line)
    return StateFileError(where, err.message, None)


def _human(err: jsonschema.ValidationError) -> str:
    if err.validator == "enum":
        allowed = ", ".join(str(v) for v in err.validator_value if v is not None)
        return f"is {err.instance!r}; allowed: {allowed}"
    if err.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"is {err.instance!r}, out of range ({err.validator} {err.validator_value})"
    return err.message


def _pattern_label(pattern: str) -> str:
    """'^GPU: ' -> 'GPU: NAME', as a person would type the heading."""
    text = pattern.removeprefix("^").removesuffix("$").replace(".+", "NAME")
    text = text.replace("\\d+", "N").replace("[0-8]", "N")
    return text + "NAME" if text.endswith(": ") else text


def known_sections(kind: str) -> list[str]:
    """The headings a kind's fields may sit under ('' is the part under the title)."""
    sections = load_schema(kind).get("properties", {}).get("sections", {})
    return list(sections.get("properties", {})) + [
        _pattern_label(p) for p in sections.get("patternProperties", {})
    ]


def _section_label(title: str) -> str:
    return "the top (no --section)" if title == "" else repr(title)


def _check_format(key: str, value: object, fmt: str | None) -> None:
    if fmt not in ("date", "date-time") or value is None or str(value).strip() == "":
        return
    text = str(value).strip()
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.+\-Z]+)?", text, re.ASCII):
            raise ValueError
        if fmt == "date" and len(text) != 10:
            raise ValueError
        _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        want = "a date YYYY-MM-DD" if fmt == "date" else "a date or time, YYYY-MM-DD[THH:MM:SS]"
        raise TrainwrightError(f"{key}={text!r} is not {want}") from None


def check_assignments(kind: str, section: str, fields: dict[str, object]) -> None:
    """Refuse fields the schema does not know for `section`, and dates that are not dates.

    Only what a command sets is checked this way: a person's own lines in the file stay theirs.
    """
    schema = load_schema(kind)
    sections = schema.get("properties", {}).get("sections", {})
    sec_schema = _field_schema(sections, section)
    if sec_schema is None:
        names = ", ".join(_section_label(t) for t in known_sections(kind))
        raise TrainwrightError(f"{kind}.md has no section {section!r}; its sections: {names}")
    known = list(sec_schema.get("properties", {}))
    for key, value in fields.items():
        field_schema = _field_schema(sec_schema, key)
        if field_schema is None:
            where = _section_label(section)
            hint = f"; known fields: {', '.join(known)}" if known else "; it takes no fields"
            raise TrainwrightError(f"{kind}.md has no field {key!r} under {where}{hint}")
        _check_format(key, value, field_schema.get("format"))


def validate_file(path: Path | str, kind: str) -> dict[str, Any]:
    return validate_document(read_document(path), kind)
