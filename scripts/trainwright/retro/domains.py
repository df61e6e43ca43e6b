"""The domain focus (domains.yaml): which keys are parameters or metrics, and how headings read."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from trainwright.errors import TrainwrightError

_FOLD = re.compile(r"[\s_\-]+")
_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_STRIP = re.compile(r"[^\w%/.#µμ ]+")
_CLASSIFIED: dict[str, dict[str, tuple[str, str] | None]] = {}
MIN_CONTAINED = 4  # shorter aliases (r, bs, dim, lr) must match a whole key


@functools.cache
def _data() -> dict[str, Any]:
    text = (resources.files("trainwright.retro") / "domains.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def domain_names() -> list[str]:
    return list(_data()["domains"])


def norm_key(key: str) -> str:
    """Fold a key for matching: case, `_`/`-`/spaces, units in brackets and markup dropped."""
    key = _PAREN.sub(" ", key.replace("*", "").replace("`", ""))
    key = _STRIP.sub(" ", key.lower())
    return _FOLD.sub(" ", key).strip()


def norm_heading(text: str) -> str:
    text = re.sub(r"^[\d.)\s]+", "", text.lower().replace("'", "").replace("’", ""))
    return _FOLD.sub(" ", re.sub(r"[^\w\s]", " ", text)).strip()


@functools.lru_cache(maxsize=4096)
def _phrase_re(phrase: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(phrase)}(?!\w)")


def _phrase_in(phrase: str, text: str) -> bool:
    return _phrase_re(phrase).search(text) is not None


@functools.cache
def section_roles() -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(
        (role, tuple(norm_heading(p) for p in phrases))
        for role, phrases in _data()["sections"].items()
    )


@functools.lru_cache(maxsize=8192)
def role_of_heading(text: str) -> str | None:
    """The role of a heading (failed, worked, results, ...) or None for other headings."""
    heading = norm_heading(text)
    for role, phrases in section_roles():
        if any(_phrase_in(p, heading) for p in phrases):
            return role
    return None


def error_patterns() -> tuple[str, ...]:
    return tuple(str(w).lower() for w in _data()["error_patterns"])


@functools.lru_cache(maxsize=8192)
def is_role_phrase(text: str) -> bool:
    """True when `text` is exactly a role phrase (`What failed`), not a longer label."""
    heading = norm_heading(text)
    return any(heading in phrases for _, phrases in section_roles())


def _words(name: str) -> tuple[str, ...]:
    return tuple(norm_key(w) or w for w in _data()[name])


@functools.lru_cache(maxsize=8192)
def status_failed(value: str) -> bool | None:
    """True for a failing status (FAILED, OOM, ❌), False for a passing one, None if neither."""
    text = norm_key(value) or value.strip().lower()
    raw = value.strip().lower()
    for word in _words("failure_words"):
        if word and (text == word or raw == word or (len(word) > 2 and _phrase_in(word, text))):
            return True
        if word and not word.isascii() and word in raw:
            return True
    for word in _words("success_words"):
        if word and (text == word or raw == word or (len(word) > 2 and _phrase_in(word, text))):
            return False
        if word and not word.isascii() and word in raw:
            return False
    return None


@dataclass(frozen=True)
class Focus:
    """One domain's view: canonical parameter and metric names with their aliases."""

    name: str
    summary: str
    naming: str
    naming_example: str
    subject_keys: tuple[str, ...]
    default_finding: str
    skill_focus: str
    when: str
    headline: tuple[str, ...]
    groups: dict[str, tuple[str, ...]]
    parameters: dict[str, tuple[str, ...]]
    metrics: dict[str, tuple[str, ...]]
    better: dict[str, str] = field(default_factory=dict)
    percent_as: dict[str, str] = field(default_factory=dict)
    unit_metrics: dict[str, str] = field(default_factory=dict)

    def metric_by_unit(self, value: str) -> str | None:
        """`612 TFLOPS (...)` under an unknown key: a metric, known by its unit."""
        from trainwright.retro.values import NUMBER, comparable

        m = NUMBER.match(value.strip().lstrip("~≈"))
        got = comparable(value.strip().lstrip("~≈")) if m else None
        return self.unit_metrics.get(got[1]) if got else None

    def metric_name(self, canonical: str, value: str, key: str = "") -> str:
        """A metric given in % that means a share of peak (ncu's `Memory Throughput  %`)."""
        if canonical in self.percent_as and ("%" in value or "%" in key):
            return self.percent_as[canonical]
        return canonical

    @functools.cached_property
    def _aliases(self) -> list[tuple[str, str, str]]:
        """(alias, kind, canonical), longest alias first so specific names win."""
        out = []
        for canon, aliases in self.metrics.items():
            out += [(norm_key(a) or a.lower(), "metric", canon) for a in (canon, *aliases)]
        for canon, aliases in self.parameters.items():
            out += [(norm_key(a) or a.lower(), "parameter", canon) for a in (canon, *aliases)]
        return sorted(out, key=lambda t: -len(t[0]))

    def classify(self, key: str) -> tuple[str, str] | None:
        """('parameter'|'metric', canonical) for a report key, or None when outside the focus."""
        cache = _CLASSIFIED.setdefault(self.name, {})
        if key not in cache:
            cache[key] = self._classify(key)
        return cache[key]

    def _classify(self, key: str) -> tuple[str, str] | None:
        raw = key.lower()
        folded = norm_key(key)
        if not folded and not raw.strip():
            return None
        for alias, kind, canon in self._aliases:
            if folded == alias or folded == alias.replace(" ", ""):
                return kind, canon
        for alias, kind, canon in self._aliases:
            if len(alias) >= MIN_CONTAINED and _phrase_in(alias, folded):
                return kind, canon
            if not alias.isalnum() and len(alias) >= 2 and alias in raw:
                return kind, canon
        return None

    def group_of(self, canonical: str) -> str | None:
        for group, members in self.groups.items():
            if canonical in members:
                return group
        return None


def focus(domain: str) -> Focus:
    data = _data()["domains"]
    if domain not in data:
        raise TrainwrightError(f"unknown domain {domain!r}; one of: {', '.join(data)}")
    d = data[domain]
    metrics = {k: tuple(v.get("aliases", [])) for k, v in d["metrics"].items()}
    better = {k: v["better"] for k, v in d["metrics"].items() if v.get("better")}
    return Focus(
        name=domain,
        summary=" ".join(str(d["summary"]).split()),
        naming=d["naming"],
        naming_example=d["naming_example"],
        subject_keys=tuple(d["subject_keys"]),
        default_finding=d["default_finding"],
        skill_focus=" ".join(str(d["skill_focus"]).split()),
        when=" ".join(str(d["when"]).split()),
        headline=tuple(d["headline"]),
        groups={g: tuple(m or ()) for g, m in d["groups"].items()},
        parameters={k: tuple(v) for k, v in d["parameters"].items()},
        metrics=metrics,
        better=better,
        percent_as={k: v["percent_as"] for k, v in d["metrics"].items() if v.get("percent_as")},
        unit_metrics=dict(d.get("unit_metrics") or {}),
    )
