"""Run inside SimpleTuner's own venv (never imported by the test suite): check a project's
config/config.json and config/multidatabackend.json with SimpleTuner's own code.

    <venv>/bin/python simpletuner_check.py PROJECT_DIR...

Loads config.json the way `simpletuner train` does (CONFIG_BACKEND=json, json_file.
load_json_config), lists the flags its argument parser does not know, parses them with
parse_cmdline_args, then builds and validates each data backend with SimpleTuner's
create_backend_config(...).validate(args), which needs no model. Prints one JSON object:
{"unknown": [...], "parse_error": str|null, "backends": [{"id", "error"}]} per project folder,
plus "parser": every option string its parser defines -> its choices (as strings; [] when free).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

NMS_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"


def _declare_torchvision_ops() -> None:
    """PyPI's torchvision wheels are CUDA builds: with the CPU torch their C ops do not load,
    and torchvision 0.28 then fails at import registering fakes for nms/qnms. The parser never
    calls them; declaring the two schemas lets `import torchvision` succeed."""
    import torch

    for name in ("nms", "qnms"):
        with contextlib.suppress(RuntimeError):
            torch.library.define(
                f"torchvision::{name}",
                "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            )


def parser_options() -> dict[str, list[str]]:
    from simpletuner.helpers.configuration.cmd_args import get_argument_parser

    out: dict[str, list[str]] = {}
    for action in get_argument_parser()._actions:
        for flag in action.option_strings:
            if flag.startswith("--"):
                out[flag[2:]] = sorted(str(c) for c in action.choices or [])
    return out


def check(project: Path) -> dict:
    from simpletuner.helpers.configuration import json_file
    from simpletuner.helpers.configuration.cmd_args import get_argument_parser, parse_cmdline_args
    from simpletuner.helpers.data_backend.config import create_backend_config

    os.chdir(project)
    flags = json_file.load_json_config()
    _, unknown = get_argument_parser().parse_known_args(flags)
    result: dict = {"project": str(project), "unknown": unknown, "parse_error": None,
                    "backends": []}  # fmt: skip
    try:
        args = parse_cmdline_args(flags, exit_on_error=True)
    except (Exception, SystemExit) as exc:  # its parser exits on unknown flags
        result["parse_error"] = f"{type(exc).__name__}: {exc}"
        return result
    settings = vars(args)
    for backend in json.loads(Path(settings["data_backend_config"]).read_text()):
        error = None
        try:
            create_backend_config(dict(backend), settings).validate(settings)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            error = f"{type(exc).__name__}: {exc}"
        result["backends"].append({"id": backend.get("id"), "error": error})
    return result


def main(projects: list[Path]) -> dict:
    os.environ["CONFIG_BACKEND"] = "json"
    _declare_torchvision_ops()
    with contextlib.redirect_stdout(io.StringIO()):
        import simpletuner.helpers.configuration.cmd_args  # noqa: F401 - its import chatter

        return {"parser": parser_options(), "projects": [check(p.resolve()) for p in projects]}


if __name__ == "__main__":
    print("SIMPLETUNER-CHECK " + json.dumps(main([Path(a) for a in sys.argv[1:]])))
