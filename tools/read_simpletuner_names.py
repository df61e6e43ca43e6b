"""Read SimpleTuner's option names, choices and data-backend keys from its own source.

    .venv/bin/pip download simpletuner==3.1.6 --no-deps -d /tmp/st
    .venv/bin/python tools/read_simpletuner_names.py /tmp/st/simpletuner-3.1.6-py3-none-any.whl

Writes resources/backends/simpletuner-names.yaml. With a second argument, the JSON that
tests/support/simpletuner_check.py prints when run with no project in SimpleTuner's own venv,
the option names and choices come from its built argument parser instead, which also holds the
options and choices the sources make in loops or at run time (text_encoder_N_precision, the
hyphenated model families, attention backends); the optimizer names stay the ones from
optimizer_param.py, which SimpleTuner checks at start although its parser takes any string:

    <venv>/bin/python tests/support/simpletuner_check.py | cut -d' ' -f2- > /tmp/parser.json
    .venv/bin/python tools/read_simpletuner_names.py /tmp/st/simpletuner-*.whl /tmp/parser.json

The wheel itself is read, not installed into the project's .venv: SimpleTuner 3.1.6 (the last
release for Python 3.11; 3.2+ need 3.12) requires torchao>=0.14.1, which cannot live beside
torchtune 0.6.1's torchao 0.10.0 in one environment, and importing its parser pulls in its whole web
service (fastapi, torchvision, ...). The names come from the same declarations its argument parser
is built from (simpletuner_sdk/server/services/field_registry/sections/*.py: every ConfigField's
arg_name and aliases; choices where they are literal lists), the optimizer names from
helpers/training/optimizer_param.py, and the data-backend keys from every `backend.get("key")` /
`backend["key"]` in helpers/data_backend/.
"""

from __future__ import annotations

import ast
import re
import sys
import zipfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "resources/backends/simpletuner-names.yaml"
FIELDS = "simpletuner/simpletuner_sdk/server/services/field_registry/sections/"
OPTIMIZERS = "simpletuner/helpers/training/optimizer_param.py"
BACKENDS = "simpletuner/helpers/data_backend/"
PRECISIONS = "simpletuner/helpers/training/__init__.py"
BACKEND_VARS = {"backend", "backend_dict", "backend_config", "data_backend_config"}


def _literal(node: ast.AST) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None


def config_fields(sources: dict[str, str]) -> tuple[dict[str, list[str]], list[str]]:
    """Option name -> literal choices (empty when dynamic), and every alias."""
    options: dict[str, list[str]] = {}
    aliases: list[str] = []
    for name, text in sources.items():
        if not name.startswith(FIELDS):
            continue
        for node in ast.walk(ast.parse(text)):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "ConfigField"):
                continue
            kw = {k.arg: k.value for k in node.keywords}
            arg = _literal(kw["arg_name"]) if "arg_name" in kw else None
            if not isinstance(arg, str) or not arg.startswith("--"):
                continue
            choices: list[str] = []
            raw = kw.get("choices")
            if isinstance(raw, ast.List):
                for el in raw.elts:
                    if isinstance(el, ast.Dict):
                        for k, v in zip(el.keys, el.values, strict=True):
                            if _literal(k) == "value" and isinstance(_literal(v), (str, int)):
                                choices.append(str(_literal(v)))
                    elif isinstance(_literal(el), str):
                        choices.append(str(_literal(el)))
            options[arg[2:]] = sorted(set(options.get(arg[2:], []) + choices))
            extra = _literal(kw["aliases"]) if "aliases" in kw else None
            if isinstance(extra, list):
                aliases += [a[2:] for a in extra if isinstance(a, str) and a.startswith("--")]
    return options, sorted(set(aliases))


def optimizer_names(text: str) -> list[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        target = None
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            target = node.targets[0]
            value = node.value
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "update":
            target = node.func.value
            value = node.args[0] if node.args else None
        else:
            continue
        if getattr(target, "id", "") != "optimizer_choices" or not isinstance(value, ast.Dict):
            continue
        names |= {k.value for k in value.keys if isinstance(k, ast.Constant)}
    return sorted(names)


def backend_keys(sources: dict[str, str]) -> list[str]:
    keys: set[str] = set()
    names = "|".join(BACKEND_VARS)
    get = re.compile(r"\b(?:" + names + r")\.get\(\s*\"([a-z0-9_]+)\"")
    sub = re.compile(r"\b(?:" + names + r")\[\s*\"([a-z0-9_]+)\"\s*\]")
    for name, text in sources.items():
        if name.startswith(BACKENDS):
            keys |= set(get.findall(text)) | set(sub.findall(text))
    return sorted(keys)


def model_families(sources: dict[str, str]) -> list[str]:
    found: set[str] = set()
    for name, text in sources.items():
        if name.startswith("simpletuner/helpers/models/"):
            found |= set(re.findall(r'ModelRegistry\.register\(\s*"([a-z0-9_]+)"', text))
    return sorted(found)


def named_lists(sources: dict[str, str]) -> dict[str, list[str]]:
    """Choices held in local lists (`lr_scheduler_choices = [...]`) in the field sections."""
    out: dict[str, list[str]] = {}
    for name, text in sources.items():
        if not name.startswith(FIELDS):
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
                target = getattr(node.targets[0], "id", "")
                value = _literal(node.value)
                if target.endswith("_choices") and isinstance(value, list):
                    out[target.removesuffix("_choices")] = [str(v) for v in value]
    return out


def precision_levels(text: str) -> list[str]:
    """quantised_precision_levels, with the entries it adds only when CUDA is present."""
    name = "quantised_precision_levels"
    found: list[str] = []
    for node in ast.walk(ast.parse(text)):
        values: list[ast.AST] = []
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == name:
            values = [node.value]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("append", "extend"):
            if getattr(node.func.value, "id", "") == name:
                values = list(node.args)
        for value in values:
            items = value.elts if isinstance(value, ast.List) else [value]
            found += [str(v) for v in map(_literal, items) if isinstance(v, str)]
    return list(dict.fromkeys(found))


def parser_options(
    path: Path, aliases: list[str], optimizers: list[str], levels: list[str]
) -> dict[str, list]:
    """The parser's options; precision choices widened to what a CUDA machine offers."""
    import json

    parser = json.loads(path.read_text())["parser"]
    options = {k: v for k, v in parser.items() if k != "help" and k not in aliases}
    options["optimizer"] = options["optimizer"] or optimizers
    for key, choices in options.items():
        if "no_change" in choices and set(choices) <= set(levels):
            options[key] = sorted(levels)
    return options


def main(wheel: Path, parser_json: Path | None = None) -> None:
    version = re.search(r"simpletuner-([0-9.]+)-", wheel.name)
    with zipfile.ZipFile(wheel) as zf:
        sources = {n: zf.read(n).decode() for n in zf.namelist() if n.endswith(".py")}
    options, aliases = config_fields(sources)
    options["model_family"] = model_families(sources)
    for key, values in named_lists(sources).items():
        if key in options and not options[key]:
            options[key] = values
    options["optimizer"] = optimizer_names(sources[OPTIMIZERS])
    read_from = f"{wheel.name} (PyPI), by tools/read_simpletuner_names.py"
    if parser_json is not None:
        levels = precision_levels(sources[PRECISIONS])
        options = parser_options(parser_json, aliases, options["optimizer"], levels)
        read_from += ", options and choices from its argument parser"
    data = {
        "tool": "SimpleTuner",
        "package": "simpletuner",
        "version": version.group(1) if version else "unknown",
        "read_from": read_from,
        "options": options,
        "aliases": aliases,
        "optimizers": optimizer_names(sources[OPTIMIZERS]),
        "data_backend_keys": backend_keys(sources),
    }
    head = (
        "# GENERATED by tools/read_simpletuner_names.py from the SimpleTuner wheel. Do not edit.\n"
    )
    OUT.write_text(head + yaml.safe_dump(data, sort_keys=False, width=100))
    print(
        f"wrote {OUT}: {len(options)} options, {len(data['optimizers'])} optimizers, "
        f"{len(data['data_backend_keys'])} data-backend keys"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
