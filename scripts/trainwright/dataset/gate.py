"""Gate 1, the dataset: GO / NO-GO from the audit, duplicates, captions and size.

Registered in trainwright.state.gates; `trainwright gate check NAME --gate 1` calls check() and
records the decision bound to binding(): the content hash of the dataset folder (images and
captions). Adding, removing or editing any of them afterwards makes the GO stale.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainwright.dataset import audit as audit_mod
from trainwright.dataset import captions as cap_mod
from trainwright.dataset import curate as curate_mod
from trainwright.dataset import dedup as dedup_mod
from trainwright.dataset import text_gate
from trainwright.dataset.data import min_side, size_range
from trainwright.dataset.dataset_report import stamp, update_report
from trainwright.dataset.images import check_folder, walk
from trainwright.dataset.search import default_workers
from trainwright.errors import TrainwrightError
from trainwright.state.content_hash import content_hash
from trainwright.state.gates import GO, NO_GO, GateResult
from trainwright.state.grimoire import Grimoire
from trainwright.state.hints import shown_path


@dataclass
class Intent:
    folder: Path
    type: str | None
    model: str | None
    trigger: str | None
    text: bool = False  # an LLM's rows (dataset/text_gate.py), not images


def intent(g: Grimoire, project: str) -> Intent:
    _, data = g.read("intent", project)
    top = data["sections"].get("", {})
    raw = top.get("Dataset folder")
    if not raw:
        raise TrainwrightError(
            f"intent.md of '{project}' names no dataset folder: record the folder of images as "
            f"Dataset folder (see: trainwright grimoire set intent --project {project} --help)"
        )
    folder = g.resolve(raw)
    text = text_gate.is_text_dataset(
        text_gate.existing(folder), top.get("Type"), _language_model(top.get("Base model"))
    )
    if not text and not folder.is_dir():
        raise TrainwrightError(
            f"{folder}: neither a folder of images nor a text dataset "
            "(.jsonl, .json, .csv or .parquet)"
        )
    if not text:
        check_folder(folder)
    return Intent(folder, top.get("Type"), top.get("Base model"), top.get("Trigger word"), text)


def _language_model(name: str | None) -> bool:
    from trainwright.hardware import catalog

    try:
        return bool(name) and not catalog.load().get(str(name)).is_image
    except TrainwrightError:
        return False


def is_text_project(g: Grimoire, project: str) -> bool:
    """Whether Gate 1 reads this project's dataset as text rows (False when it cannot tell)."""
    try:
        return intent(g, project).text
    except (TrainwrightError, OSError):
        return False


def binding(g: Grimoire, project: str) -> str:
    return content_hash(intent(g, project).folder).digest


def caption_ext(folder: Path) -> str:
    """.txt unless the captions here are all .caption (kohya's default)."""
    exts = {e.path.suffix for e in walk(folder) if e.kind == "caption"}
    return ".caption" if exts == {".caption"} else ".txt"


def _article(word: str | None) -> str:
    if not word:
        return "a"
    return ("an " if word[0] in "aeiou" else "a ") + word


def _content_style(rep: cap_mod.CaptionReport) -> list[str]:
    if not rep.terms:
        return ["No captions to assess yet."]
    lines = []
    heavy = [(t, s) for t, s in rep.terms if s >= 0.6]
    for t, s in heavy[:5]:
        lines.append(
            f"'{t}' is in {round(s * 100)}% of the captions: if it is the subject of nearly every "
            "image, the LoRA may learn it as part of the style; vary the subjects or caption it."
        )
    spread = ", ".join(f"{t} ({round(s * 100)}%)" for t, s in rep.terms[:8])
    lines.append(f"Most frequent caption terms: {spread}.")
    return lines


def check(g: Grimoire, project: str) -> GateResult:
    it = intent(g, project)
    if it.text:
        return text_gate.check(g, project, it.folder, it.type)
    digest = content_hash(it.folder).digest
    workers = default_workers()
    side = min_side(it.model)
    audit = audit_mod.audit_folder(it.folder, side, workers)
    ok_paths = [it.folder / im["path"] for im in audit["images"] if im["ok"]]
    dups = dedup_mod.find_duplicates(ok_paths, "combined", workers=workers)
    dj = dedup_mod.as_json(dups, lambda p: Path(p).relative_to(it.folder).as_posix())
    ext = caption_ext(it.folder)
    caps = cap_mod.check(it.folder, ext, it.trigger, it.model)
    cur = curate_mod.analyse(curate_mod.collect(it.folder, workers), None)
    s = audit["summary"]
    n_images = s["count"]
    rng = size_range(it.type)

    reasons: list[str] = []
    fixes: list[str] = []
    blocking = False

    def block(reason: str, fix: str) -> None:
        nonlocal blocking
        blocking = True
        reasons.append(reason)
        fixes.append(fix)

    if n_images == 0:
        block(
            "the dataset folder has no images",
            f"put the training images in {it.folder} "
            "(or point 'Dataset folder' in intent.md at them)",
        )
    if s["errors"]:
        bad = [im["path"] for im in audit["images"] if not im["ok"]]
        kinds = sorted(
            {
                i
                for im in audit["images"]
                if not im["ok"]
                for i in im["issues"]
                if audit_mod.SEVERITY[i] == "error"
            }
        )
        block(
            f"{s['errors']} images cannot be used ({', '.join(kinds)})",
            "re-export or remove: " + ", ".join(bad[:8]) + (" ..." if len(bad) > 8 else ""),
        )
    if not it.trigger:
        block(
            "intent.md has no trigger word",
            "choose one with the person, then record it as Trigger word "
            f"(see: trainwright grimoire set intent --project {project} --help)",
        )
    for key, what in (
        ("missing", "images have no caption"),
        ("empty", "captions are empty"),
        ("not-utf8", "captions are not UTF-8 text"),
        ("unreadable", "captions cannot be read"),
        ("missing-trigger", "captions lack the trigger word"),
    ):
        n = caps.issues.get(key, 0)
        if n:
            fix = (
                f"trainwright captions apply {shown_path(it.folder)} --trigger "
                f"{shlex.quote(it.trigger or '')}"
                if key == "missing-trigger"
                else f"fix the {ext} captions (see: trainwright captions check "
                f"{shown_path(it.folder)})"
            )
            block(f"{n} {what}", fix)
    dup_files = sum(len(c["drop"]) for c in dj["clusters"])
    if dj["clusters"]:
        block(
            f"{len(dj['clusters'])} groups of duplicates ({dup_files} extra copies)",
            f"review them (trainwright dedup {shown_path(it.folder)} --sheet dups.png) and move "
            "the extra "
            "copies out with --quarantine",
        )
    usable = s["ok"] - dup_files
    if rng and n_images:
        lo, hi = rng
        if usable < lo:
            block(
                f"{usable} usable images; {_article(it.type)} LoRA needs at least {lo}",
                f"add {lo - usable} or more images (resources/dataset/dataset-sizes.md)",
            )
        elif usable > hi:
            reasons.append(
                f"{usable} images is more than the {lo}-{hi} usual for {_article(it.type)} LoRA "
                "(not blocking; trainwright curate suggests a subset)"
            )
    warn = s["warnings"]
    if warn:
        reasons.append(f"{warn} images have warnings (see Quality Issues; not blocking)")
    if caps.issues.get("format-mismatch"):
        reasons.append(
            f"{caps.issues['format-mismatch']} captions are not {caps.expected_format}-style "
            "as this base model expects (not blocking)"
        )
    if not blocking:
        reasons.insert(
            0, f"{usable} usable images, all captioned with the trigger word, no duplicates"
        )

    quality = audit_mod.plain_summary(audit) + cap_mod.plain_summary(caps, it.trigger)
    diversity = curate_mod.plain_summary(cur, rng, it.type)
    if blocking:
        decision_text = "### If NO-GO\n\n" + "\n".join(f"- {f}" for f in fixes)
    else:
        limits = [r for r in reasons[1:]] or ["none found by the checks"]
        decision_text = (
            "### If GO\n\n"
            f"- Ready to train {_article(it.type)} LoRA on {usable} images with trigger "
            f"'{it.trigger}'.\n- Known limitations: " + "; ".join(limits)
        )
    update_report(
        g,
        project,
        blocks={
            ("Quality Issues", "quality-issues"): stamp("Found by trainwright", quality),
            ("Diversity Assessment", "diversity"): stamp("Measured by trainwright", diversity),
            ("Content-Style Balance", "content-style"): stamp(
                "From the captions (the agent adds what it sees)", _content_style(caps)
            ),
            ("Gate 1 Decision", "gate-1-fixes"): decision_text,
        },
    )
    summary: dict[str, Any] = {
        "Images": n_images,
        "Captioned": caps.captioned,
        "Average resolution": s["average_resolution"] or "",
        "Duplicates found": dup_files,
        "Quality issues": sum(1 for im in audit["images"] if im["issues"]),
    }
    return GateResult(
        NO_GO if blocking else GO,
        reasons,
        digest,
        fixes=fixes,
        updates={"Summary": summary},
        details={
            "folder": str(it.folder),
            "audit": s,
            "duplicates": {"groups": len(dj["clusters"]), "extra_copies": dup_files},
            "captions": {k: v for k, v in caps.as_dict().items() if k != "files"},
        },
    )
