"""CLI: `trainwright audit`, `dedup`, `captions check|apply|sample`, `curate`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from trainwright.errors import TrainwrightError
from trainwright.numeric import Int
from trainwright.output import emit, json_option, wants_json

FOLDER = click.Path(path_type=Path)


def _grimoire(ctx: click.Context) -> Any:
    from trainwright.state.grimoire import Grimoire

    root = ctx.find_root().obj or {}
    return Grimoire(root.get("grimoire", Path("grimoire")))


@contextmanager
def _progress(total: int, as_json: bool, what: str) -> Any:
    if wants_json(as_json) or not sys.stderr.isatty() or total < 20:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=what, unit="img", file=sys.stderr, leave=False) as bar:
        yield bar.update


def _count_images(folder: Path) -> int:
    from trainwright.dataset.images import walk

    return sum(1 for e in walk(folder) if e.kind == "image")


def _workers(n: int | None) -> int:
    """--workers, capped at the cores this process may use (each worker is a forked process;
    more than the cores only costs memory). A cap is said on stderr, so --json stays clean."""
    from trainwright.dataset.search import default_workers

    if n is not None and n < 1:
        raise TrainwrightError("--workers must be at least 1")
    cores = default_workers()
    if n is not None and n > cores:
        click.echo(
            f"note: --workers {n} is more than the {cores} core(s) this machine gives us; "
            f"using {cores}",
            err=True,
        )
    return min(n or cores, cores)


def _min_side(model: str | None, min_side: int | None) -> int | None:
    from trainwright.dataset.data import min_side as lookup
    from trainwright.dataset.data import sizes

    if min_side is not None:
        if min_side < 1:
            raise TrainwrightError("--min-side must be a positive number of pixels")
        return min_side
    if model is None:
        return None
    side = lookup(model)
    if side is None:
        known = ", ".join(sizes()["min_side"])
        raise TrainwrightError(f"unknown base model {model!r}: one of {known}, or give --min-side")
    return side


def _project_intent(ctx: click.Context, project: str | None) -> dict[str, Any]:
    if not project:
        return {}
    g = _grimoire(ctx)
    _, data = g.read("intent", project)
    return data["sections"].get("", {})


# ------------------------------------------------------------------------------------ audit


@click.command("audit")
@click.argument("folder", type=FOLDER)
@click.option("--model", help="Base model family: sd15, sdxl, pony, flux, ... (sets --min-side).")
@click.option(
    "--min-side", type=Int(None, 65_536), help="Smallest acceptable short side in pixels."
)
@click.option("--project", help="Also write the results into this project's dataset-report.md.")
@click.option("--workers", type=int, help="Processes to use (default: all cores).")
@json_option
@click.pass_context
def audit_cmd(
    ctx: click.Context,
    folder: Path,
    model: str | None,
    min_side: int | None,
    project: str | None,
    workers: int | None,
    as_json: bool,
) -> int:
    """Check every image in FOLDER: decodes fully, size, colour mode, EXIF rotation, animation,
    wrong extensions, decompression bombs, and blur/exposure flags. Read-only.

    Exit 0 when every image is usable (warnings allowed), 1 when some are not or there are none.
    """
    from trainwright.dataset import audit

    intent = _project_intent(ctx, project)
    side = _min_side(model or intent.get("Base model") if not min_side else None, min_side)
    with _progress(_count_images(folder), as_json, "audit") as bar:
        used = _workers(workers)
        rep = audit.audit_folder(folder, side, used, bar)
    rep["workers"] = {"asked": workers, "used": used}
    if project:
        from trainwright.dataset.dataset_report import stamp, update_report

        s = rep["summary"]
        update_report(
            _grimoire(ctx),
            project,
            fields={
                "Summary": {
                    "Images": s["count"],
                    "Average resolution": s["average_resolution"] or "",
                    "Quality issues": sum(1 for im in rep["images"] if im["issues"]),
                }
            },
            blocks={
                ("Quality Issues", "quality-issues"): stamp(
                    "Found by trainwright audit", audit.plain_summary(rep)
                )
            },
        )

    emit(rep, as_json, lambda r: "\n".join(audit.plain_summary(r)))
    return 1 if rep["summary"]["errors"] or rep["summary"]["count"] == 0 else 0


# ------------------------------------------------------------------------------------ dedup


@click.command("dedup")
@click.argument("folder", type=FOLDER, required=False)
@click.option(
    "--method",
    type=click.Choice(["phash", "dhash", "whash", "ahash", "colorhash", "combined"]),
    default="combined",
    show_default=True,
    help="combined: several hash variants, then a pixel-level check of each candidate pair.",
)
@click.option(
    "--threshold",
    type=Int(0, 64),
    help="Hamming distance in bits (default 10; colorhash 4; combined 22 for whole images, "
    "6 fewer for crops, before the pixel check).",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default="cpu",
    show_default=True,
    help="cuda: all-pairs search as a Triton kernel (needs torch, triton and a GPU).",
)
@click.option("--sheet", type=click.Path(path_type=Path), help="Write a contact sheet PNG here.")
@click.option(
    "--quarantine",
    "qdir",
    type=click.Path(path_type=Path),
    help="Move the suggested drops here, with a manifest (nothing is deleted).",
)
@click.option("--undo", type=click.Path(path_type=Path), help="Restore from a quarantine manifest.")
@click.option("--dry-run", is_flag=True, help="With --quarantine: say what would move.")
@click.option("--project", help="Also record the counts in this project's dataset-report.md.")
@click.option("--workers", type=int, help="Processes to use (default: all cores).")
@json_option
@click.pass_context
def dedup_cmd(
    ctx: click.Context,
    folder: Path | None,
    method: str,
    threshold: int | None,
    device: str,
    sheet: Path | None,
    qdir: Path | None,
    undo: Path | None,
    dry_run: bool,
    project: str | None,
    workers: int | None,
    as_json: bool,
) -> int:
    """Find exact and near duplicates in FOLDER, grouped, each group with a suggested keeper
    (largest resolution, then least compressed) and the reason.

    Exit 0 when there are no duplicates (or all were quarantined), 1 when some remain.
    """
    from trainwright.dataset import quarantine as q

    if undo:
        if folder or qdir:
            raise TrainwrightError("--undo takes only the manifest; no FOLDER or --quarantine")
        res = q.undo(undo)

        def human_undo(d: dict[str, Any]) -> str:
            lines = [f"restored {len(d['restored'])} files (hashes checked)"]
            if d["already_in_place"]:
                lines.append(f"{len(d['already_in_place'])} were already back in place")
            lines += [f"problem: {p}" for p in d["problems"]]
            return "\n".join(lines)

        emit(res, as_json, human_undo)
        return 1 if res["problems"] else 0
    if folder is None:
        raise TrainwrightError("give the dataset FOLDER (or --undo MANIFEST)")
    from trainwright.dataset import dedup
    from trainwright.dataset.images import check_folder, display, list_images

    check_folder(folder)
    if qdir:
        q.check_target(folder, qdir)
    if sheet:
        from trainwright.state.safe_paths import check_output, png_is_pack_made

        check_output(sheet, "--sheet", folders=[folder], pack_made=png_is_pack_made)
    entries = list_images(folder)
    rel_of = {str(e.path): display(e.rel) for e in entries}
    with _progress(len(entries), as_json, "hash") as bar:
        res = dedup.find_duplicates(
            [e.path for e in entries], method, threshold, device, _workers(workers), bar
        )
    out = dedup.as_json(res, lambda p: rel_of.get(p, p))
    raw_rel = {str(e.path): e.rel for e in entries}
    if sheet:
        from trainwright.dataset.sheet import contact_sheet

        dist: dict[str, dict[str, str]] = {}
        for p in out["near"]:
            dist.setdefault(p["a"], {})[p["b"]] = f"{p['distance']} bits"
            dist.setdefault(p["b"], {})[p["a"]] = f"{p['distance']} bits"
        groups = []
        for c in out["clusters"]:
            groups.append(
                {
                    "keep": c["keep"],
                    "drop": c["drop"],
                    "distances": {
                        d: dist.get(c["keep"], {}).get(
                            d,
                            "identical"
                            if c["reason"].startswith("identical")
                            else "via another copy",
                        )
                        for d in c["drop"]
                    },
                }
            )
        out["sheet"] = contact_sheet(folder, _raw(groups, rel_of, raw_rel), sheet)["path"]
    moved = 0
    if qdir:
        man = q.quarantine(folder, qdir, _raw(out["clusters"], rel_of, raw_rel), dry_run)
        moved = man["moved"]
        out["quarantine"] = {
            "manifest": man["manifest"] if moved else None,
            "moved": moved,
            "dry_run": dry_run,
            "would_move": [m["original"] for m in man["files"]] if dry_run else [],
            "already_gone": man.get("gone", []),
        }
    if project:
        from trainwright.dataset.dataset_report import update_report

        fields: dict[str, object] = {
            "Duplicates found": sum(len(c["drop"]) for c in out["clusters"])
        }
        if moved:
            g = _grimoire(ctx)
            _, data = g.read("dataset-report", project)
            before = data["sections"].get("Summary", {}).get("Duplicates removed") or 0
            fields["Duplicates removed"] = before + sum(len(c["drop"]) for c in out["clusters"])
        update_report(_grimoire(ctx), project, fields={"Summary": fields})

    emit(out, as_json, _dedup_human)
    handled = moved or (qdir and out["quarantine"]["already_gone"])
    remaining = out["clusters"] and not (qdir and handled and not dry_run)
    return 1 if remaining else 0


def _raw(
    groups: list[dict[str, Any]], rel_of: dict[str, str], raw_rel: dict[str, str]
) -> list[dict[str, Any]]:
    """Map display names back to the real (possibly non-UTF-8) relative paths."""
    back = {rel_of[p]: raw_rel[p] for p in rel_of}
    out = []
    for g in groups:
        h = dict(g)
        h["keep"] = back.get(g["keep"], g["keep"])
        h["drop"] = [back.get(d, d) for d in g["drop"]]
        if "distances" in g:
            h["distances"] = {back.get(k, k): v for k, v in g["distances"].items()}
        out.append(h)
    return out


def _dedup_human(d: dict[str, Any]) -> str:
    lines = [f"{d['images']} images compared ({d['method']}, threshold {d['threshold']} bits)."]
    if not d["clusters"]:
        lines.append("No duplicates found.")
    else:
        extra = sum(len(c["drop"]) for c in d["clusters"])
        lines.append(
            f"{len(d['clusters'])} groups of duplicates, {extra} extra copies. Training on copies "
            "makes the model memorise those pictures instead of learning what they share."
        )
        for c in d["clusters"]:
            lines.append(f"  keep {c['keep']}  ({c['reason']})")
            lines += [f"    drop {x}" for x in c["drop"]]
    for e in d["errors"]:
        lines.append(f"could not read {e['path']}: {e['error']}")
    if d.get("sheet"):
        lines.append(f"contact sheet: {d['sheet']}")
    qd = d.get("quarantine")
    if qd:
        if qd["dry_run"]:
            lines.append(f"would move {len(qd['would_move'])} files (dry run)")
        elif qd["moved"]:
            lines.append(
                f"moved {qd['moved']} files; undo with: trainwright dedup --undo {qd['manifest']}"
            )
        if qd.get("already_gone"):
            lines.append(
                f"{len(qd['already_gone'])} of the copies were no longer in the folder (moved by "
                "another run?); left as they are"
            )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ captions


@click.group("captions")
def captions_group() -> None:
    """Caption files beside the images: check them, apply drafts and the trigger word, sample."""


@captions_group.command("check")
@click.argument("folder", type=FOLDER)
@click.option(
    "--ext",
    default=".txt",
    show_default=True,
    help="Caption extension (some trainers default to .caption).",
)
@click.option("--trigger", help="Trigger word every caption must contain.")
@click.option("--model", help="Base model, to check tag vs natural-language style.")
@click.option("--project", help="Take trigger/model from intent.md; record 'Captioned'.")
@json_option
@click.pass_context
def captions_check_cmd(
    ctx: click.Context,
    folder: Path,
    ext: str,
    trigger: str | None,
    model: str | None,
    project: str | None,
    as_json: bool,
) -> int:
    """Coverage, trigger word, empty / too long / non-UTF-8 captions, caption style.

    Exit 1 when an image lacks a usable caption or the trigger word.
    """
    from trainwright.dataset import captions

    intent = _project_intent(ctx, project)
    trigger = trigger or intent.get("Trigger word")
    model = model or intent.get("Base model")
    rep = captions.check(folder, ext, trigger, model)
    if project:
        from trainwright.dataset.dataset_report import update_report

        update_report(_grimoire(ctx), project, fields={"Summary": {"Captioned": rep.captioned}})
    data = rep.as_dict()
    data["trigger"] = trigger
    emit(data, as_json, lambda _: "\n".join(captions.plain_summary(rep, trigger)))
    blocking = any(rep.issues.get(k) for k in captions.BLOCKING)
    return 1 if blocking or rep.images == 0 else 0


@captions_group.command("apply")
@click.argument("folder", type=FOLDER)
@click.option("--trigger", help="Prepend this word to every caption that lacks it.")
@click.option(
    "--from",
    "drafts",
    type=click.Path(path_type=Path),
    help='JSON {"image.png": "caption", ...} written by the agent after approval.',
)
@click.option(
    "--ext",
    default=".txt",
    show_default=True,
    help="Caption extension (some trainers default to .caption).",
)
@click.option("--replace", is_flag=True, help="Overwrite captions that differ from the drafts.")
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@json_option
def captions_apply_cmd(
    folder: Path,
    trigger: str | None,
    drafts: Path | None,
    ext: str,
    replace: bool,
    dry_run: bool,
    as_json: bool,
) -> int:
    """Write drafted captions and/or prepend the trigger word. Idempotent; replaced captions
    are backed up to FOLDER/.trainwright-caption-backup/ first."""
    from trainwright.dataset import captions
    from trainwright.dataset.images import check_folder

    check_folder(folder)
    if not trigger and not drafts:
        raise TrainwrightError("nothing to apply: give --trigger WORD and/or --from FILE.json")
    res = captions.apply(
        folder, ext, trigger, captions.load_drafts(drafts) if drafts else None, replace, dry_run
    )

    def human(d: dict[str, Any]) -> str:
        verb = "would write" if d["dry_run"] else "wrote"
        lines = [f"{verb} {len(d['written'])} caption files"]
        if d["trigger_added"]:
            lines.append(f"trigger word added to {len(d['trigger_added'])}")
        if d["unchanged"]:
            lines.append(f"{len(d['unchanged'])} already up to date")
        lines += [f"kept {k}" for k in d["kept"]]
        return "\n".join(lines)

    emit(res, as_json, human)
    return 0


@captions_group.command("sample")
@click.argument("folder", type=FOLDER)
@click.argument("n", type=Int(1, 1000))
@click.option("--model", help="Base model family (sets --min-side), as for audit.")
@click.option(
    "--min-side", type=Int(None, 65_536), help="Smallest acceptable short side in pixels."
)
@click.option("--project", help="Read the base model from this project's intent.md.")
@click.option("--workers", type=int, help="Processes to use (default: all cores).")
@json_option
@click.pass_context
def captions_sample_cmd(
    ctx: click.Context,
    folder: Path,
    n: int,
    model: str | None,
    min_side: int | None,
    project: str | None,
    workers: int | None,
    as_json: bool,
) -> int:
    """Pick N varied images to caption first and show the person for approval.

    Never an image the audit calls unusable (truncated, corrupt, unreadable, below the minimum
    side with --model / --min-side / --project, as `trainwright audit` takes them): each pick is
    audited, and an unusable one is left out and replaced by the next most varied image.
    """
    from trainwright.dataset import audit, curate
    from trainwright.dataset.images import display, walk

    intent = _project_intent(ctx, project)
    side = _min_side(model or intent.get("Base model") if not min_side else None, min_side)
    feats = curate.collect(folder, _workers(workers))
    good = [f for f in feats if f.error is None]
    paths = {display(e.rel): e.path for e in walk(folder) if e.kind == "image"}
    skipped: list[str] = []
    usable: dict[str, bool] = {}

    def ok(rel: str) -> bool:
        if rel not in usable:
            usable[rel] = audit.audit_file(paths[rel], rel, side).ok
        return usable[rel]

    while True:
        if not good:
            raise TrainwrightError(f"{folder}: no usable images to sample")
        chosen = curate.k_center(curate.distance_matrix(good), min(n, len(good)))
        bad = {i for i in chosen if not ok(good[i].rel)}
        if not bad:
            break
        skipped += [good[i].rel for i in sorted(bad)]
        good = [f for i, f in enumerate(good) if i not in bad]
    picks = [good[i].rel for i in chosen]
    skipped += [f.rel for f in feats if f.error is not None]
    emit(
        {"folder": str(folder), "sample": picks, "skipped_unusable": sorted(skipped)},
        as_json,
        lambda d: (
            "Caption these first and show them for approval:\n"
            + "\n".join(f"  {p}" for p in d["sample"])
            + (
                "\nleft out, unusable (see trainwright audit): " + ", ".join(d["skipped_unusable"])
                if d["skipped_unusable"]
                else ""
            )
        ),
    )
    return 0


# ------------------------------------------------------------------------------------ curate


@click.command("curate")
@click.argument("folder", type=FOLDER)
@click.option("--target", type=Int(1, 100_000), help="How many images to keep.")
@click.option(
    "--type", "lora_type", type=click.Choice(["character", "style", "object"]), help="LoRA type."
)
@click.option("--project", help="Take the type from intent.md; write the Diversity Assessment.")
@click.option("--workers", type=int, help="Processes to use (default: all cores).")
@json_option
@click.pass_context
def curate_cmd(
    ctx: click.Context,
    folder: Path,
    target: int | None,
    lora_type: str | None,
    project: str | None,
    workers: int | None,
    as_json: bool,
) -> int:
    """Diversity of FOLDER from cheap features: clusters of very alike images, and the subset
    of --target images that covers the collection best (greedy k-center). Moves nothing."""
    from trainwright.dataset import curate
    from trainwright.dataset.data import size_range

    intent = _project_intent(ctx, project)
    lora_type = lora_type or intent.get("Type")
    rng = size_range(lora_type)
    if target is None and rng:
        target = rng[1]
    with _progress(_count_images(folder), as_json, "features") as bar:
        res = curate.analyse(curate.collect(folder, _workers(workers), bar), target)
    res["type"] = lora_type
    res["recommended_range"] = list(rng) if rng else None
    lines = curate.plain_summary(res, rng, lora_type)
    if project:
        from trainwright.dataset.dataset_report import stamp, update_report

        update_report(
            _grimoire(ctx),
            project,
            blocks={("Diversity Assessment", "diversity"): stamp("Measured by trainwright", lines)},
        )

    def human(d: dict[str, Any]) -> str:
        out = list(lines)
        if d["target"] and d["left_out"]:
            out.append("Keep:")
            out += [f"  {p}" for p in d["selected"]]
        return "\n".join(out)

    emit(res, as_json, human)
    return 0 if res["images"] else 1  # nothing to curate is a finding, as in audit


COMMANDS: list[Callable[..., Any]] = [audit_cmd, dedup_cmd, captions_group, curate_cmd]
