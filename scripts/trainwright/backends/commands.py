"""`trainwright config`: write a trainer's own config files for a project, sized to its GPU."""

from __future__ import annotations

from typing import Any

import click

from trainwright.backends.configure import generate
from trainwright.numeric import Positive
from trainwright.output import emit, json_option


def _human(d: dict[str, Any]) -> str:
    verb = "would write" if d["dry_run"] else "wrote"
    lines = [f"{d['backend']} config for '{d['project']}' ({d['model']}): {verb}"]
    lines += [f"  {p}" for p in d["files"].values()]
    lines.append(f"key parameters: {d['key_parameters']}")
    lines.append(f"VRAM: {d['estimated_vram']}")
    lines.append(f"time: {d['estimated_time']}")
    lines += [f"note: {n}" for n in d["notes"]]
    lines += [f"WARNING: {w}" for w in d["warnings"]]
    if d["backups"]:
        lines.append("your previous versions were kept: " + ", ".join(d["backups"]))
    if d["dry_run"] and d["contents"]:
        for name, text in d["contents"].items():
            lines += ["", f"--- {name}", text.rstrip()]
    lines.append("")
    lines.append("what each setting does:")
    lines += [f"  {k}: {v}" for k, v in d["explanations"].items()]
    lines.append("next: trainwright gate check " + d["project"] + " --gate 2")
    return "\n".join(lines)


@click.command("config")
@click.option("--project", required=True, help="The training project (grimoire/training/NAME).")
@click.option(
    "--backend",
    "backend_name",
    required=True,
    help="kohya | ai-toolkit | simpletuner | torchtune | tiny.",
)
@click.option(
    "--preset",
    type=click.Choice(["quick", "standard", "thorough"]),
    default="standard",
    show_default=True,
    help="Quick 5 epochs, Standard 15, Thorough 25 (image models).",
)
@click.option("--model", "model_id", help="Catalog model id; default: intent.md's Base model.")
@click.option(
    "--optimizer",
    default="adamw",
    show_default=True,
    help="prodigy | adamw | adamw8bit | lion (each backend's own name is written).",
)
@click.option("--gpu", "gpu_name", help="GPU from studio.md or the table; default: studio.md's.")
@click.option("--vram", "vram_gb", type=Positive(65536), help="Available GPU memory in GB.")
@click.option("--dry-run", is_flag=True, help="Show the files; write nothing.")
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@json_option
@click.pass_context
def config_cmd(ctx: click.Context, overrides: tuple[str, ...], as_json: bool, **opts: Any) -> int:
    """Write the backend's own config files for a project into grimoire/training/NAME/.

    kohya: training TOML + dataset TOML + the accelerate launch line; ai-toolkit: its job YAML;
    simpletuner: config/config.json + config/multidatabackend.json; torchtune: finetune.yaml;
    tiny (the embedded trainer, model tiny): tiny.yaml, checked against system RAM when no GPU
    is found.
    Starts from the preset and the optimizer's learning rate, then KEY=VALUE overrides (neutral
    names such as learning_rate, epochs, rank, alpha, batch_size, resolution, repeats, seq_len,
    method, or the backend's own keys). Values outside their hard limits are refused (exit 2);
    outside the safe range they are written with a warning, and Gate 2 says NO-GO until fixed.
    The batch size is lowered (with gradient accumulation to keep the effective batch) until the
    VRAM estimate fits the GPU with a 20% margin. config.md records the result and the files'
    hash. Exit 0, or 1 when the estimate does not fit even at batch 1.

    \b
    Example:
      trainwright config --project mara-style --backend kohya --preset standard \\
          --model pony-v6 --optimizer prodigy --gpu "RTX 4090" network_dim=32
    """
    from trainwright.backends.training_plan import parse_overrides

    result = generate(
        ctx.find_root().obj["grimoire"],
        opts["project"],
        opts["backend_name"],
        opts["model_id"],
        opts["preset"],
        opts["optimizer"],
        parse_overrides(overrides),
        opts["gpu_name"],
        opts["vram_gb"],
        opts["dry_run"],
    )
    emit(result, as_json, _human)
    return 1 if result["fits"] is False else 0
