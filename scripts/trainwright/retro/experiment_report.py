"""One report as the retrospective sees it: setup, parameters, metrics, runs, what worked/failed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Failure:
    what: str
    why: str | None
    line: int | None = None
    lesson: str | None = None


@dataclass
class Run:
    label: str
    line: int | None
    parameters: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    other: dict[str, str] = field(default_factory=dict)
    status: str | None = None
    failed: bool = False
    why: str | None = None


@dataclass
class Report:
    path: str
    format: str
    title: str
    date: str | None = None
    date_source: str | None = None
    setup: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)
    worked: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    lessons: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    quirks: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    decision: str | None = None
    focus_found: list[str] = field(default_factory=list)
    focus_missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Passages no rule could structure ({start, end, heading, text}): the agent reads them.
    read_these_yourself: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def is_empty(self) -> bool:
        return not any(
            (
                self.setup,
                self.parameters,
                self.metrics,
                self.runs,
                self.tried,
                self.worked,
                self.findings,
                self.failed,
                self.lessons,
                self.questions,
                self.quirks,
                self.other,
                self.decision,
                self.read_these_yourself,
            )
        )
