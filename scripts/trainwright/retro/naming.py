"""Result-skill names by the domain's convention: {task}-{finding}, {model}-{config},
{operation}-{optimization}."""

from __future__ import annotations

import re
from collections import Counter

from trainwright.errors import TrainwrightError
from trainwright.retro.domains import Focus
from trainwright.retro.experiment_report import Report

NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)+$")


def slug(text: str, limit: int = 48) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:limit].rstrip("-")


def short_subject(value: str) -> str:
    """A model or operation as a name part: `Llama-3 8B` -> `llama3`, `GPT-2 small` -> `gpt2`."""
    first = re.split(r"[\s(/,:]+", value.strip().lower())[0]
    parts = [p for p in re.split(r"[-_.]+", first) if p]
    if not parts:
        return ""
    out = parts[0]
    for p in parts[1:]:
        if not p.isdigit():
            break
        out += p
    return re.sub(r"[^a-z0-9]", "", out)


def subject_of(reports: list[Report], focus: Focus) -> str | None:
    for key in focus.subject_keys:
        found = [short_subject(r.parameters[key]) for r in reports if key in r.parameters]
        found = [f for f in found if f]
        if found:
            return Counter(found).most_common(1)[0][0]
    return None


def check_skill_name(name: str, focus: Focus) -> str:
    if not NAME.match(name) or len(name) > 64:
        raise TrainwrightError(
            f"skill name {name!r} must be lowercase words joined by single hyphens, at least two "
            f"words, at most 64 characters, following {focus.naming} (e.g. {focus.naming_example})"
        )
    return name


def skill_name(
    reports: list[Report],
    focus: Focus,
    name: str | None = None,
    subject: str | None = None,
    finding: str | None = None,
) -> tuple[str, str]:
    """(name, subject) for the result skill; raise when no subject can be found."""
    if name:
        name = check_skill_name(name, focus)
        return name, subject or name.split("-")[0]
    subj = slug(subject) if subject else subject_of(reports, focus)
    if not subj:
        keys = " or ".join(focus.subject_keys)
        raise TrainwrightError(
            f"no report names a {keys}, so no skill name can be made; pass --name following "
            f"{focus.naming} (e.g. {focus.naming_example}) or --subject"
        )
    full = slug(f"{subj}-{finding or focus.default_finding}", 64)
    return check_skill_name(full, focus), subj
