"""Pick the best value of a metric across reports and runs, comparing like units with like."""

from __future__ import annotations

from dataclasses import dataclass

from trainwright.retro.domains import Focus
from trainwright.retro.experiment_report import Report, Run
from trainwright.retro.extract import names_value
from trainwright.retro.values import comparable


@dataclass
class Best:
    metric: str
    value: str
    source: int  # 1-based index of the report
    run: Run | None
    report: Report


Candidate = tuple[float, str, str, int, "Run | None"]  # value, unit kind, raw text, source, run


def _candidates(reports: list[Report], metric: str) -> list[Candidate]:
    out = []
    for n, rep in enumerate(reports, start=1):
        rows: list[tuple[str, Run | None]] = []
        if metric in rep.metrics:
            rows.append((rep.metrics[metric], None))
        rows += [(r.metrics[metric], r) for r in rep.runs if metric in r.metrics and not r.failed]
        for raw, run in rows:
            got = comparable(raw)
            if got is not None:
                out.append((got[0], got[1], raw, n, run))
    kinds = {c[1] for c in out}
    if "percent" in kinds and "" in kinds:  # 0.913 next to 92.0 %: a fraction, as a percentage
        out = [
            (v * 100, "percent", *rest) if k == "" and v <= 1 else (v, k, *rest)
            for v, k, *rest in out
        ]
    return out


def best_of(reports: list[Report], focus: Focus, metric: str) -> Best | None:
    direction = focus.better.get(metric)
    if direction is None:
        return None
    cands = _candidates(reports, metric)
    if not cands:
        return None
    counts: dict[str, int] = {}
    for c in cands:
        counts[c[1]] = counts.get(c[1], 0) + 1
    kind = max(counts, key=lambda k: counts[k])
    same = [c for c in cands if c[1] == kind]
    pick = max(same, key=lambda c: c[0]) if direction == "higher" else min(same, key=lambda c: c[0])
    return Best(metric, pick[2], pick[3], pick[4], reports[pick[3] - 1])


LABELS = {
    "pct_peak": "% of peak",
    "val_loss": "validation loss",
    "eval_loss": "eval loss",
    "peak_memory": "peak memory",
    "tflops": "TFLOPS",
    "learning_rate": "lr",
}


def label(canonical: str) -> str:
    return LABELS.get(canonical, canonical.replace("_", " "))


def describe_run(run: Run) -> str:
    extra = ", ".join(
        f"{k}={v}" for k, v in run.parameters.items() if not names_value(run.label, v)
    )
    return f"{run.label} ({extra})" if extra else run.label
