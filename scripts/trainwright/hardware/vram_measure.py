"""The --measure part of `trainwright vram`: the measured peak beside the estimate, in the same
report (JSON key `measured`), and the plain words when it does not fit or the GPU is busy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainwright.errors import TrainwrightError
from trainwright.hardware import measured
from trainwright.hardware.measured import Peak
from trainwright.output import emit


def summary(raw: dict[str, Any], est: Any, model: Any = None, setup: Any = None) -> dict[str, Any]:
    """The JSON `measured` block from a measurement (measure.measure's dict)."""
    out: dict[str, Any] = {
        "gpu": raw["gpu"],
        "steps": raw["steps"],
        "batch": raw["batch"],
        "fits": raw["fits"],
        "free_gib": round(raw["free_mib"] / 1024, 2),
        "total_gib": round(raw["total_mib"] / 1024, 2),
    }
    if not raw["fits"]:
        out["oom_batches"] = raw["oom_batches"]
        out["last_fitted_batch"] = raw["last_fitted_batch"]
    figures = raw if raw["fits"] else raw.get("fitted")
    _, busy = measured.budget_gib(out["total_gib"], out["free_gib"])
    out["busy"] = busy
    if model is not None and setup is not None:
        from trainwright.hardware.measure import ran

        out["ran"] = ran(model, setup)
    if not figures:
        return out
    peak = Peak(
        "cuda",
        allocated_mib=figures["allocated_mib"],
        reserved_mib=figures["reserved_mib"],
        gpu=raw["gpu"],
        total_mib=raw["total_mib"],
        free_mib=raw["free_mib"],
    )
    out["allocated_gib"] = round(figures["allocated_mib"] / 1024, 2)
    out["reserved_gib"] = round(figures["reserved_mib"] / 1024, 2)
    out["params"] = figures.get("params")
    if raw["fits"]:
        comp = measured.compare(peak, est, model, setup)
        if comp is not None:
            out["comparison"] = comp.as_dict()
    return out


def lines(m: dict[str, Any]) -> list[str]:
    out = [f"measured on {m['gpu']} ({m['steps']} real steps, random weights):"]
    if m.get("ran"):
        out.append(f"  steps: {m['ran']}")
    if m.get("busy"):
        out.append(f"  note: {m['busy']}")
    if not m["fits"]:
        tried = ", ".join(str(b) for b in m["oom_batches"])
        last = m["last_fitted_batch"]
        out.append(
            f"  DOES NOT FIT: out of memory at batch {tried}"
            + (f"; batch {last} last fitted" if last else "; not even batch 1 fitted")
        )
    if "reserved_gib" in m:
        out.append(
            f"  peak {m['reserved_gib']:.2f} GiB reserved, {m['allocated_gib']:.2f} GiB "
            "allocated (torch)" + (f" at batch {m['last_fitted_batch']}" if not m["fits"] else "")
        )
    comp = m.get("comparison")
    if comp:
        words = (
            "the estimate was low" if comp["over_estimate"] else "within 5% or below the estimate"
        )
        out.append(
            f"  estimate {comp['estimate_gib']:.2f} GiB reserved: measured/estimated "
            f"{comp['ratio']:.2f} ({words})"
        )
        if comp["over_budget"]:
            out.append(
                f"  it leaves less than the margin free ({comp['budget_gib']:.1f} GiB usable)"
                + (f": batch {comp['fitting_batch']} fits" if comp["fitting_batch"] else "")
            )
    return out


def measure_into(
    data: dict[str, Any],
    model: Any,
    setup: Any,
    est: Any,
    as_json: bool,
    render: Callable[[dict[str, Any]], str],
) -> int:
    """Run the measurement and print it with the estimate; exit 2 (the estimate printed alone)
    when there is nothing the pack can measure on or build."""
    from trainwright.hardware.measure import buildable, cuda_problem, measure, unmeasurable

    problem = buildable(model) or unmeasurable(model, setup) or cuda_problem()
    if problem:
        data["measured"] = None
        emit(data, as_json, render)
        raise TrainwrightError(f"{problem}; the estimate above is printed alone")
    raw = measure(model, setup)
    data["measured"] = summary(raw, est, model, setup)
    emit(data, as_json, lambda d: "\n".join([render(d), *lines(d["measured"])]))
    return 0 if data["measured"]["fits"] else 1
