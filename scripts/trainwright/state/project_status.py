"""Where a /train project stands, and the one command to run next (for resuming a session)."""

from __future__ import annotations

from typing import Any

from trainwright.errors import StateFileError, TrainwrightError
from trainwright.state import gates, hints
from trainwright.state.grimoire import Grimoire

INTENT_FIELDS = ("Type", "Base model", "Trigger word", "Dataset folder")
GATE_NEXT = {
    1: "trainwright audit {folder} --project {name}; trainwright dedup {folder} --project {name};"
    " trainwright captions check {folder} --project {name}; then trainwright gate check {name}"
    " --gate 1",
    2: "{config}; then trainwright gate check {name} --gate 2",
    3: "trainwright env check {name}",
    4: "trainwright dry-run {name}",
}


def _read(g: Grimoire, kind: str, name: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        _, data = g.read(kind, name)
        return data, None
    except StateFileError as exc:
        return None, exc.one_line()


def _text_dataset(g: Grimoire, name: str) -> bool:
    from trainwright.dataset.gate import is_text_project

    return is_text_project(g, name)


def project_status(g: Grimoire, name: str) -> dict[str, Any]:
    folder = g.project_dir(name)
    if not folder.is_dir():
        known = ", ".join(g.projects()) or "none yet"
        raise TrainwrightError(f"no training project '{name}' in {g.root} (projects: {known})")
    problems: list[str] = []
    intent, err = _read(g, "intent", name)
    if err:
        problems.append(err)
    top = (intent or {}).get("sections", {}).get("", {})
    missing_intent = [k for k in INTENT_FIELDS if not top.get(k)]
    text = bool(top.get("Dataset folder")) and _text_dataset(g, name)
    if text:  # an LLM's rows: SFT unless Type says otherwise, and no trigger word
        missing_intent = [k for k in missing_intent if k not in ("Type", "Trigger word")]
    try:
        gate_info = gates.status(g, name)
    except StateFileError as exc:
        problems.append(exc.one_line())
        gate_info = {"ready": False, "gates": []}
    progress, err = _read(g, "progress", name)
    if err:
        problems.append(err)
    run = (progress or {}).get("sections", {}).get("", {})
    evaluation, err = _read(g, "eval", name)
    if err:
        problems.append(err)
    st, err = _read(g, "status", name)
    if err:
        problems.append(err)
    overall = (st or {}).get("sections", {}).get("", {}).get("Status")
    weight = (evaluation or {}).get("sections", {}).get("", {}).get("Recommended weight")

    fmt = {"name": name, "folder": hints.dataset_arg(g, name), "config": ""}
    if problems:
        phase, nxt = "repair", "fix the state file named above, then trainwright grimoire validate"
    elif missing_intent:
        phase = "intent"
        nxt = (  # the values are the person's to give: the hint shows how, not a guess
            f"trainwright grimoire set intent --project {name} --help, then set "
            f"{', '.join(missing_intent)} to what the person says"
        )
    elif overall == "COMPLETE":
        phase, nxt = "complete", None
    elif run.get("Status") == "RUNNING":
        phase, nxt = "training", f"trainwright monitor {name} --follow"
    elif run.get("Status") == "COMPLETE" and weight is None:
        lora = hints.final_lora(g, name)
        phase = "evaluation"
        nxt = (
            f"trainwright eval-grid {name} --lora {hints.shown_path(lora)}"
            if lora
            else f"trainwright checkpoints {name} (the run left no checkpoint to evaluate)"
        )
    elif run.get("Status") == "COMPLETE":
        phase, nxt = "registration", f"trainwright register {name}"
    else:
        first_bad = next((x for x in gate_info["gates"] if not x["ok"]), None)
        if first_bad is None:
            phase, nxt = "ready", f"trainwright launch {name}"
        else:
            phase = f"gate {first_bad['gate']}"
            if first_bad["gate"] == 2:
                fmt["config"] = hints.config_command(g, name)
            nxt = GATE_NEXT[first_bad["gate"]].format(**fmt)
            if first_bad["gate"] == 1 and text:
                nxt = f"trainwright gate check {name} --gate 1"
    return {
        "project": name,
        "phase": phase,
        "status": overall,
        "missing_intent": missing_intent,
        "gates": gate_info["gates"],
        "ready": gate_info["ready"],
        "run": {k: run.get(k) for k in ("Status", "Current epoch", "Current step", "Loss")},
        "recommended_weight": weight,
        "problems": problems,
        "next": nxt,
    }


def render(d: dict[str, Any]) -> str:
    lines = [f"{d['project']}: phase {d['phase']}" + (f" ({d['status']})" if d["status"] else "")]
    for p in d["problems"]:
        lines.append(f"  problem: {p}")
    if d["missing_intent"]:
        lines.append("  intent still needs: " + ", ".join(d["missing_intent"]))
    for gt in d["gates"]:
        state = "STALE (inputs changed)" if gt["stale"] else gt["decision"]
        lines.append(f"  Gate {gt['gate']} {gt['name']:<12} {state}")
    if d["run"].get("Status") and d["run"]["Status"] != "PENDING":
        r = d["run"]
        lines.append(
            f"  run: {r['Status']}, epoch {r['Current epoch'] or '?'}, loss {r['Loss'] or '?'}"
        )
    if d["recommended_weight"] is not None:
        lines.append(f"  recommended weight: {d['recommended_weight']}")
    lines.append(f"  next: {d['next']}" if d["next"] else "  nothing left to do")
    return "\n".join(lines)
