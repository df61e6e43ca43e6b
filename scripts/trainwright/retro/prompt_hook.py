"""The UserPromptSubmit hook: a prompt that starts with `<retrospective>` gets routed for certain.

Claude Code and Codex send the prompt as JSON on stdin. For a `<retrospective>` prompt the hook
prints `hookSpecificOutput.additionalContext` naming the skill, the domain, its paths and what
`retro collect` finds, and asks the agent to confirm those inputs with the person first. Any
other prompt, and any input it cannot read, gets no output and exit 0: the hook never blocks.

After the tag: an optional domain (a bare first word, or `domain=NAME`), a date or date range
(`2026-01-01`, `2026-01-01..2026-03-31`, `since 2026-01-01`) and a match text (quoted, or the
remaining words of the first line).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TAG = re.compile(r"^\s*<retrospective>", re.I)
CLOSE = re.compile(r"</retrospective>", re.I)
DATE = r"\d{4}-\d{2}-\d{2}"
RANGE = re.compile(rf"(?:since\s+|from\s+)?({DATE})(?:\s*(?:\.\.|to|until|-|–)\s*({DATE}))?", re.I)
EXPLICIT_DOMAIN = re.compile(r"(?:--domain[\s=]+|domain\s*[=:]\s*)(\S+)", re.I)
QUOTED = re.compile(r"\"([^\"]+)\"|'([^']+)'|“([^”]+)”")
SKILL = ".codex/skills/domain-retrospective/SKILL.md"
MAX_MATCH_WORDS = 5
MAX_INPUT = 1 << 22


@dataclass
class Request:
    """What the words after the tag ask for."""

    domain: str | None = None
    unknown_domain: str | None = None
    since: str | None = None
    until: str | None = None
    match: str | None = None
    notes: list[str] = field(default_factory=list)


def parse(prompt: str, domains: list[str]) -> Request | None:
    """The request in a `<retrospective>` prompt, or None when the prompt is not one."""
    if not TAG.match(prompt):
        return None
    rest = CLOSE.sub(" ", TAG.sub("", prompt, count=1))
    first = rest.strip().split("\n", 1)[0].strip()
    req = Request()
    m = EXPLICIT_DOMAIN.search(first)
    if m:
        first = (first[: m.start()] + first[m.end() :]).strip()
        name = m.group(1).strip(".,;").lower()
        if name in domains:
            req.domain = name
        else:
            req.unknown_domain = m.group(1)
    m = RANGE.search(first)
    if m:
        req.since, req.until = m.group(1), m.group(2)
        first = (first[: m.start()] + first[m.end() :]).strip()
    words = first.split()
    if words and req.domain is None and req.unknown_domain is None:
        head = words[0].strip(".,;:").lower()
        if head in domains:
            req.domain = head
            words = words[1:]
        elif len(words) == 1 and head.isalpha():
            req.unknown_domain = words[0]
    rest_line = " ".join(words)
    q = QUOTED.search(rest_line)
    if q:
        req.match = next(g for g in q.groups() if g)
    elif 0 < len(words) <= MAX_MATCH_WORDS:
        req.match = rest_line
    elif words:
        req.notes.append(
            "the request is longer than a match text; choose --match words from it yourself"
        )
    return req


def _cwd(event: dict[str, Any]) -> Path:
    import os

    for value in (event.get("cwd"), os.environ.get("CLAUDE_PROJECT_DIR")):
        if isinstance(value, str) and value and Path(value).is_dir():
            return Path(value)
    return Path.cwd()


def context(req: Request, start: Path) -> str:
    """The text added to the agent's context for one `<retrospective>` prompt."""
    from trainwright.errors import TrainwrightError
    from trainwright.retro import registry as regmod

    lines = [
        "trainwright: this prompt starts with <retrospective>. Follow the domain-retrospective "
        f"skill: read {SKILL} now and follow it step by step."
    ]
    try:
        reg = regmod.load(regmod.find_registry(start))
    except TrainwrightError as exc:
        lines.append(f"The retrospective registry cannot be read: {exc.one_line()}.")
        lines.append(
            "Tell the person; 'trainwright registry validate' names the problem and "
            "'trainwright init' installs a registry. Do not summarise until it is fixed."
        )
        return "\n".join(lines)
    domains = regmod.domains_in_schema()
    if req.unknown_domain:
        lines.append(
            f"'{req.unknown_domain}' is not a retrospective domain; the domains are: "
            f"{', '.join(domains)}. If the person meant a domain, ask which one (the "
            f"registry's active domain is {reg.domain}) and run nothing that writes until they "
            "answer."
        )
    dom = req.domain or reg.domain
    how = "asked for in the prompt" if req.domain else "active in the registry"
    lines.append(f"Domain: {dom} ({how}; domains: {', '.join(domains)}).")
    if req.domain and req.domain != reg.domain:
        lines.append(
            f"The registry's active domain is {reg.domain}: pass --domain {dom} to each retro "
            f"command, or run 'trainwright registry use {dom}' only if the person agrees."
        )
    paths = reg.paths(dom)
    lines.append("Paths: " + ", ".join(f"{k}={v}" for k, v in paths.items()) + ".")
    lines.append(_found(reg, req, dom))
    if req.until:
        lines.append(f"The prompt asks for sources up to {req.until}: leave out later ones.")
    lines += req.notes
    lines.append(
        "Before summarising, confirm the inputs with the person: the domain, the date range, "
        "the match text and the list of sources (path, title, date). Write no summary, skill or "
        "troubleshooting entry they have not agreed to."
    )
    return "\n".join(lines)


def _found(reg: Any, req: Request, dom: str) -> str:
    import datetime as _dt

    from trainwright.errors import TrainwrightError
    from trainwright.retro.collect import collect

    since = _dt.date.fromisoformat(req.since) if req.since else None
    args = [f"--domain {dom}"]
    if req.since:
        args.append(f"--since {req.since}")
    if req.match:
        args.append(f'--match "{req.match}"')
    cmd = "trainwright retro collect " + " ".join(args)
    try:
        coll = collect(reg, since, req.match, None, dom)
    except (TrainwrightError, OSError, ValueError) as exc:
        return f"'{cmd}' failed: {exc}."
    reports = coll.reports
    text = f"'{cmd}' found {len(reports)} source(s)"
    dated = [r for r in reports if r.date]
    if dated:
        newest = max(dated, key=lambda r: r.date or "")
        text += f"; newest: {newest.path} ({newest.date}, {newest.title!r})"
    if coll.skipped:
        text += f"; {len(coll.skipped)} file(s) could not be read"
    if coll.excluded:
        text += f"; {coll.excluded} left out by the date or match filter"
    if not reports:
        text += f". Reports folder: {coll.reports_dir}; say so rather than summarise nothing"
    return text + "."


def run(raw: bytes) -> str | None:
    """The hook's stdout for one event (None: print nothing). Never raises on bad input."""
    try:
        event = json.loads(raw[:MAX_INPUT].decode("utf-8", errors="replace"))
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("prompt"), str):
        return None
    from trainwright.retro.registry import domains_in_schema

    req = parse(event["prompt"], domains_in_schema())
    if req is None:
        return None
    out = {
        "hookSpecificOutput": {
            "hookEventName": "UserPromptSubmit",
            "additionalContext": context(req, _cwd(event)),
        }
    }
    return json.dumps(out, ensure_ascii=False)
