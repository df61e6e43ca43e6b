"""The kernel benchmark report: Markdown that people read and `trainwright retro collect` parses
(`- **Key**: value` header fields, a sweep table, a peer table, What worked / What failed)."""

from __future__ import annotations

from typing import Any

SLOW_SHARE = 0.5  # a configuration under half the best bandwidth is listed as a failure


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _cfg(cfg: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in cfg.items())


def _failures(sweep: dict[str, Any]) -> list[str]:
    results = sweep["results"]
    best = results[sweep["best"]] if sweep.get("best") is not None else None
    out = []
    for r in results:
        label = _cfg(r["config"])
        if r["error"]:
            out.append(f"{label}: {r['error']}")
        elif r["correct"] is False:
            out.append(f"{label}: wrong output (max abs error {r['max_error']:.3g})")
        elif best and (r["bandwidth_gbs"] or 0) < SLOW_SHARE * best["bandwidth_gbs"]:
            share = 100 * (r["bandwidth_gbs"] or 0) / best["bandwidth_gbs"]
            why = [f"{share:.0f}% of the best bandwidth"]
            if r["spills"]:
                why.append(f"{r['spills']} register spills")
            if r["one_pass"] is False:
                why.append("two passes over each row")
            if r["occupancy"] is not None and r["occupancy"] < 0.25:
                why.append(f"occupancy {100 * r['occupancy']:.0f}%")
            out.append(f"{label}: {', '.join(why)}")
    return out


def render(sweep: dict[str, Any], command: str) -> str:
    dev = sweep["device"]
    shape = " x ".join(str(s) for s in sweep["shape"])
    peak = dev.get("peak_bandwidth_gbs")
    lines = [
        f"# Kernel benchmark: {sweep['operation']} on {dev['name']}",
        "",
        "- **Report kind**: kernel-benchmark",
        f"- **Date**: {sweep['date']}",
        f"- **Operation**: {sweep['operation']}",
        f"- **Kernel**: {sweep['module']} (Triton)",
        f"- **Memory pattern**: {sweep['memory_pattern']}",
        f"- **Shape**: {shape}",
        f"- **Dtype**: {sweep['dtype']}",
        f"- **Grid**: {tuple(sweep['results'][0]['grid']) if sweep['results'] else '—'}",
        f"- **Device**: {dev['name']}",
        f"- **Peak bandwidth**: {_num(peak, 0)} GB/s ({dev.get('peak_source', 'unknown')})",
        f"- **Bytes counted**: {sweep['bytes_per_call']:,} per call (one read and one write)",
        f"- **Triton**: {sweep['versions'].get('triton')}",
        f"- **Torch**: {sweep['versions'].get('torch')}",
        f"- **Command**: `{command}`",
        "",
        "## Sweep",
        "",
        "| BLOCK_SIZE | num_warps | one pass | time (ms) | bandwidth (GB/s) | % of peak "
        "| TFLOPS | registers | spills | occupancy | correct |",
        "|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in sweep["results"]:
        cfg = r["config"]
        occ = "—" if r["occupancy"] is None else f"{100 * r['occupancy']:.0f}%"
        correct = {True: "yes", False: "no", None: "—"}[r["correct"]]  # errors: What failed
        lines.append(
            f"| {cfg.get('BLOCK_SIZE', '—')} | {cfg.get('num_warps', '—')} "
            f"| {'yes' if r['one_pass'] else 'no'} | {_num(r['time_ms'], 4)} "
            f"| {_num(r['bandwidth_gbs'], 0)} | {_num(r['pct_peak'])} | {_num(r['tflops'], 2)} "
            f"| {'—' if r['registers'] is None else r['registers']} "
            f"| {'—' if r['spills'] is None else r['spills']} | {occ} | {correct} |"
        )
    peer = sweep.get("peer")
    if peer:
        lines += [
            "",
            "## Peer",
            "",
            "| Peer | time (ms) | bandwidth (GB/s) | % of peak |",
            "|---|---:|---:|---:|",
            f"| {peer['name']} | {_num(peer['time_ms'], 4)} | {_num(peer['bandwidth_gbs'], 0)} "
            f"| {_num(peer['pct_peak'])} |",
        ]
    lines += ["", "## What worked", ""]
    if sweep.get("best") is not None:
        b = sweep["results"][sweep["best"]]
        text = (
            f"- {_cfg(b['config'])}: {_num(b['time_ms'], 4)} ms, {_num(b['bandwidth_gbs'], 0)} GB/s"
        )
        if b["pct_peak"] is not None:
            text += f", {_num(b['pct_peak'])}% of peak"
        if peer:
            text += f"; {peer['time_ms'] / b['time_ms']:.2f}x the speed of {peer['name']}"
        lines.append(text + " (best of the sweep)")
    else:
        lines.append("- no configuration ran correctly")
    lines += ["", "## What failed", ""]
    lines += [f"- {f}" for f in _failures(sweep)] or ["- none"]
    return "\n".join(lines) + "\n"
