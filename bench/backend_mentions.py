"""How many modules outside backends/ name a backend (the backends issue's measure).

    .venv/bin/python bench/backend_mentions.py [PACKAGE_DIR]

Two counts per module: `code`, a backend name in a string or a name that the program uses
(what makes the module know a backend), and `prose`, in a comment or a docstring only (help
texts are strings, so they count as code). The registry (backends/__init__.py) is inside
backends/ and so not counted. tests/test_backend_registry.py keeps `code` at zero.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from pathlib import Path

NAMES = re.compile(
    r"(?<![A-Za-z0-9_])(kohya|torchtune|simpletuner|ai[-_]toolkit|tiny|trl)(?![A-Za-z0-9_])", re.I
)


def docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    lines.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    return lines


def mentions(path: Path) -> tuple[list[str], list[str]]:
    """(code mentions, prose mentions) of one module, as `line: token` texts."""
    text = path.read_text(encoding="utf-8")
    docs = docstring_lines(ast.parse(text))
    code, prose = [], []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type not in (tokenize.NAME, tokenize.STRING, tokenize.COMMENT):
            if tok.type != getattr(tokenize, "FSTRING_MIDDLE", -1):
                continue
        for m in NAMES.finditer(tok.string):
            where = f"{tok.start[0]}: {m.group(0)}"
            if tok.type == tokenize.COMMENT or tok.start[0] in docs:
                prose.append(where)
            else:
                code.append(where)
    return code, prose


def survey(package: Path) -> dict[str, tuple[list[str], list[str]]]:
    out = {}
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel.startswith("backends/"):
            continue
        code, prose = mentions(path)
        if code or prose:
            out[rel] = (code, prose)
    return out


def main(argv: list[str]) -> int:
    package = Path(argv[1]) if len(argv) > 1 else Path(__file__).parents[1] / "scripts/trainwright"
    found = survey(package)
    with_code = {k: v for k, v in found.items() if v[0]}
    prose_only = {k: v for k, v in found.items() if not v[0]}
    print(f"package: {package}")
    print(f"modules outside backends/ naming a backend in code: {len(with_code)}")
    for rel, (code, _) in with_code.items():
        print(f"  {rel}: {len(code)} ({', '.join(code[:4])}{' ...' if len(code) > 4 else ''})")
    print(f"modules naming one in comments or docstrings only: {len(prose_only)}")
    for rel, (_, prose) in prose_only.items():
        print(f"  {rel}: {len(prose)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
