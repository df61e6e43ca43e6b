"""Fill the retrospective's templates: `{placeholder}` words, YAML-quoted inside frontmatter."""

from __future__ import annotations

import json
import re
from pathlib import Path

from trainwright.errors import TrainwrightError

SKILL_TEMPLATE = "skills/result-skill-template.md"
ENTRY_TEMPLATE = "references/troubleshooting-entry-template.md"
REQUIRED = {SKILL_TEMPLATE: ("name", "description"), ENTRY_TEMPLATE: ("title",)}
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def read_template(folder: Path, rel: str, shown: str) -> str:
    path = folder / rel
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrainwrightError(
            f"template {shown}/{rel} is missing; restore it (trainwright init) or fix "
            "paths.templates in the registry"
        ) from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as exc:
        raise TrainwrightError(f"template {shown}/{rel} cannot be read ({exc})") from None
    lacking = [k for k in REQUIRED.get(rel, ()) if "{" + k + "}" not in text]
    if lacking:
        raise TrainwrightError(
            f"template {shown}/{rel} has no {{{lacking[0]}}} placeholder; it is needed"
        )
    return text


def yaml_quote(text: str) -> str:
    """A one-line double-quoted YAML scalar (JSON's escaping is valid YAML)."""
    return json.dumps(" ".join(str(text).split()), ensure_ascii=False)


def fill(template: str, values: dict[str, str]) -> str:
    """Replace known placeholders; values in the `---` frontmatter are quoted as YAML strings."""
    front, body = "", template
    if template.startswith("---\n"):
        end = template.find("\n---", 4)
        if end != -1:
            front, body = template[: end + 4], template[end + 4 :]

    def sub(text: str, quote: bool) -> str:
        def repl(m: re.Match[str]) -> str:
            key = m.group(1)
            if key not in values:
                return m.group(0)
            return yaml_quote(values[key]) if quote else values[key]

        return PLACEHOLDER.sub(repl, text)

    return sub(front, True) + sub(body, False)


def cell(text: str | None) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join((text or "—").replace("|", "\\|").split())


def safe(text: str) -> str:
    """Skill descriptions may not contain angle brackets."""
    return text.replace("<", "‹").replace(">", "›")
