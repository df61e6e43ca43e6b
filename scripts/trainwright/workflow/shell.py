"""Which files a shell command would write: the Bash side of the edit lock.

A best-effort reader of POSIX shell, tuned to catch the ways an agent writes a file without an
edit tool: redirections (`>`, `>>`, `&>`, `>|`), `tee`, in-place editors (`sed -i`, `perl -i`,
`awk -i inplace`), `cp`/`mv`/`install`/`ln`/`rsync`/`dd of=`, `rm`/`touch`/`truncate`,
interpreter one-liners and heredocs that open files for writing (`python -c`, `python - <<EOF`,
`node -e`, `perl -e`), nested shells (`bash -c`, `eval`, `$(...)`), `find -exec`/`xargs`,
`git` commands that rewrite the working tree, downloads (`curl -o`, `wget -O`) and Codex's
`apply_patch`. A write whose target cannot be read off the command (a variable, a file list
from stdin, `git checkout BRANCH`) is reported with `path=None`, and the lock treats it as a
write to wherever the command runs.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ShellWrite:
    path: str | None  # as the command names it, resolved against cwd; None: cannot tell
    cwd: Path
    via: str


REDIRECT_OUT = {">", ">>", ">|", "&>", "&>>", "<>", ">&", "&>|"}
REDIRECT_OTHER = {"<", "<<", "<<<", "<&", "<<-"}
_HEREDOC = re.compile(r"(?<!<)<<(-?)[ \t]*(['\"]?)([A-Za-z_][A-Za-z0-9_.-]*)\2")
_FD_PREFIX = re.compile(r"(?<![\w/.$-])\d+(?=[<>])")
_SUBST = re.compile(r"\$\(|`")
_HEREDOC_KEY = re.compile(r"^__TW_HEREDOC_\d+__$")
MAX_DEPTH = 6

_WRAPPER_VALUES = {
    "sudo": {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U"},
    "doas": {"-u", "-C"},
    "nice": {"-n"},
    "ionice": {"-c", "-n", "-p"},
    "timeout": {"-s", "-k", "--signal", "--kill-after"},
    "stdbuf": {"-i", "-o", "-e"},
    "env": {"-u", "-C", "-S"},
    "chrt": set(),
    "taskset": set(),
    "nohup": set(),
    "time": {"-f", "-o"},
    "command": set(),
    "exec": {"-a"},
    "builtin": set(),
}
_WRAPPER_POSITIONALS = {"timeout": 1, "taskset": 1, "chrt": 1}
_RUNNERS = {"uv", "poetry", "pipenv", "conda", "mamba", "micromamba", "pixi", "hatch", "pdm"}

_WRITE_CODE = re.compile(
    r"""open\s*\(.*?,\s*(?:mode\s*=\s*)?['"][rbt]*[wax+][rbt+]*['"]"""
    r"""|\.open\s*\(\s*(?:mode\s*=\s*)?['"][rbt]*[wax+]"""
    r"""|\.write_(?:text|bytes)\s*\("""
    r"""|\bshutil\.(?:copy\w*|move|rmtree)\s*\("""
    r"""|\bos\.(?:remove|unlink|rename|replace|rmdir|truncate|removedirs)\s*\("""
    r"""|\.(?:unlink|touch|rename|rmdir)\s*\("""
    r"""|\b(?:np|numpy|torch)\.save\s*\(|\.to_(?:csv|json|parquet)\s*\(|\.save_pretrained\s*\("""
    r"""|\b(?:write|append)File(?:Sync)?\s*\(|\bcreateWriteStream\s*\("""
    r"""|\b(?:rename|unlink|rm|copyFile|cp)Sync\s*\("""
    r"""|\bFile\.(?:write|open|delete|rename)\b"""
    r"""|\bopen\s*\(?\s*(?:my\s+)?[$\w]*\s*,\s*['"]\s*(?:\+?[>]|\+<)"""
    r"""|\b(?:unlink|rename)\s*\(?\s*['"$]""",
    re.S,
)
_LITERAL = re.compile(r"""(['"])((?:(?!\1)[^\n])+)\1""")
_PATHLIKE = re.compile(r"[\w./~+@-]+")
_PATCH_FILE = re.compile(r"^\*\*\* (?:Add|Update|Delete) File: (.+)$|^\*\*\* Move to: (.+)$", re.M)

_GIT_REWRITES = {
    "apply",
    "am",
    "checkout",
    "cherry-pick",
    "merge",
    "pull",
    "rebase",
    "reset",
    "restore",
    "revert",
    "switch",
    "stash",
}


def patch_paths(patch: str) -> list[str]:
    """The files an apply_patch envelope (`*** Begin Patch`) adds, updates, deletes or moves to."""
    return [(a or b).strip() for a, b in _PATCH_FILE.findall(patch)]


def code_writes(code: str) -> list[str | None] | None:
    """Paths a snippet of Python/Node/Perl/Ruby may write: None when it writes nothing we see;
    [None] when it writes but names no literal path."""
    if not _WRITE_CODE.search(code):
        return None
    paths = [
        lit
        for _, lit in _LITERAL.findall(code)
        if _PATHLIKE.fullmatch(lit) and ("/" in lit or re.search(r"\.\w{1,8}$", lit))
    ]
    return list(paths) or [None]


def _split_heredocs(text: str) -> tuple[str, dict[str, str]]:
    lines = text.split("\n")
    out: list[str] = []
    bodies: dict[str, str] = {}
    i = 0
    while i < len(lines):
        pending: list[tuple[str, str, bool]] = []

        def keep(m: re.Match[str], pending: list[tuple[str, str, bool]] = pending) -> str:
            key = f"__TW_HEREDOC_{len(bodies) + len(pending)}__"
            pending.append((key, m.group(3), m.group(1) == "-"))
            return f"<< {key}"

        out.append(_HEREDOC.sub(keep, lines[i]))
        i += 1
        for key, delim, strip_tabs in pending:
            body = []
            while i < len(lines):
                line = lines[i]
                i += 1
                if (line.lstrip("\t") if strip_tabs else line) == delim:
                    break
                body.append(line)
            bodies[key] = "\n".join(body)
    return "\n".join(out), bodies


def _substitutions(text: str) -> tuple[str, list[str]]:
    """Pull out `$(...)` and backtick bodies (analysed as commands of their own)."""
    found: list[str] = []
    out: list[str] = []
    i = 0
    while True:
        m = _SUBST.search(text, i)
        if not m:
            out.append(text[i:])
            break
        out.append(text[i : m.start()])
        if m.group() == "`":
            end = text.find("`", m.end())
            end = len(text) if end < 0 else end
            found.append(text[m.end() : end])
            i = end + 1
        else:
            depth, j = 1, m.end()
            while j < len(text) and depth:
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
            found.append(text[m.end() : j - 1])
            i = j
        out.append("__TW_SUBST__")
    return "".join(out), found


def _tokens(text: str) -> list[str]:
    lex = shlex.shlex(_FD_PREFIX.sub("", text), posix=True, punctuation_chars=";&|<>()\n")
    lex.whitespace = " \t\r"
    lex.whitespace_split = True
    return list(lex)


def _is_operator(token: str) -> bool:
    return bool(token) and all(c in ";&|<>()\n" for c in token)


def _commands(tokens: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for tok in tokens:
        if _is_operator(tok) and tok not in REDIRECT_OUT | REDIRECT_OTHER:
            if ">" in tok and "(" in tok:  # >(cmd): process substitution writing through cmd
                out.append([])
            elif out[-1]:
                out.append([])
            continue
        out[-1].append(tok)
    return [c for c in out if c]


class _Reader:
    def __init__(self, cwd: Path, depth: int = 0, cwd_known: bool = True) -> None:
        self.cwd = cwd
        self.cwd_known = cwd_known  # False after `cd $VAR`: relative targets cannot be placed
        self.depth = depth
        self.writes: list[ShellWrite] = []

    def add(self, path: str | None, via: str) -> None:
        if path is not None and "{}" in path:
            path = None
        if path is not None:
            path = os.path.expanduser(os.path.expandvars(path))
            if "$" in path or "__TW_SUBST__" in path or "`" in path:
                path = None
        if path is not None and not os.path.isabs(path) and not self.cwd_known:
            path, via = None, f"{via} (after cd to a folder the lock cannot tell)"
        if path is not None and any(c in path for c in "*?["):
            hits = glob.glob(os.path.join(self.cwd, path))
            for hit in hits:
                self.writes.append(ShellWrite(hit, self.cwd, via))
            if hits:
                return
        if path is not None and not os.path.isabs(path):
            path = os.path.join(self.cwd, path)
        self.writes.append(ShellWrite(path, self.cwd, via))

    def unknown(self, via: str) -> None:
        self.writes.append(ShellWrite(None, self.cwd, via))

    def nested(self, command: str, via: str) -> None:
        if self.depth >= MAX_DEPTH:
            self.unknown(f"{via} (nested too deep)")
            return
        inner = _Reader(self.cwd, self.depth + 1, self.cwd_known)
        inner.read(command)
        self.writes += [ShellWrite(w.path, w.cwd, f"{via}: {w.via}") for w in inner.writes]

    def read(self, command: str) -> None:
        text, bodies = _split_heredocs(command)
        text, substs = _substitutions(text)
        for sub in substs:
            self.nested(sub, "$(...)")
        try:
            tokens = _tokens(text)
        except ValueError:
            self.unknown("a command the lock cannot parse (unbalanced quotes)")
            return
        for words in _commands(tokens):
            self.simple(words, bodies)

    def simple(self, tokens: list[str], bodies: dict[str, str]) -> None:
        words: list[str] = []
        heredoc: str | None = None
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok in REDIRECT_OUT and _is_operator(tok):
                target = tokens[i + 1] if i + 1 < len(tokens) else None
                i += 2
                if target is None or (tok == ">&" and (target.isdigit() or target == "-")):
                    continue
                if target.startswith("/dev/") or _is_operator(target):
                    continue
                self.add(target, f"redirection {tok}")
                continue
            if tok in REDIRECT_OTHER and _is_operator(tok):
                target = tokens[i + 1] if i + 1 < len(tokens) else ""
                if tok == "<<" and _HEREDOC_KEY.match(target):
                    heredoc = bodies.get(target, "")
                i += 2
                continue
            words.append(tok)
            i += 1
        words = self.unwrap(words)
        if words:
            self.dispatch(words, heredoc)

    def unwrap(self, words: list[str]) -> list[str]:
        while words:
            if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                words = words[1:]
                continue
            name = os.path.basename(words[0])
            if name in _RUNNERS and len(words) > 1 and words[1] in ("run", "exec"):
                rest = words[2:]
                while rest and rest[0].startswith("-"):
                    rest = rest[2:] if rest[0] in ("-n", "--name", "-p", "--prefix") else rest[1:]
                words = rest
                continue
            if name not in _WRAPPER_VALUES:
                return words
            takes_value = _WRAPPER_VALUES[name]
            rest = words[1:]
            while rest and (rest[0].startswith("-") or (name == "env" and "=" in rest[0])):
                rest = rest[2:] if rest[0] in takes_value else rest[1:]
            words = rest[_WRAPPER_POSITIONALS.get(name, 0) :]
        return words

    def dispatch(self, words: list[str], heredoc: str | None) -> None:
        name = os.path.basename(words[0])
        args = words[1:]
        plain = [a for a in args if not a.startswith("-") or a == "-"]
        if re.fullmatch(r"python[\d.]*|pypy[\d.]*", name):
            self.python(args, heredoc)
        elif name in ("cd", "pushd"):
            target = os.path.expanduser(plain[0] if plain else "~")
            if "$" in target or "__TW_SUBST__" in target or target == "-":
                self.cwd_known = False
            else:
                self.cwd = Path(os.path.normpath(os.path.join(self.cwd, target)))
        elif name == "tee":
            for a in plain:
                self.add(a, "tee")
        elif name in ("sed", "gsed"):
            self.sed(args)
        elif name == "perl":
            self.perl(args)
        elif name in ("awk", "gawk"):
            if "inplace" in args:
                files = [a for a in plain if a != "inplace"][1:]
                self.targets(files, f"{name} -i inplace")
        elif name in ("cp", "install", "rsync", "scp"):
            self.copy(name, args, keep_sources=True)
        elif name == "mv":
            self.copy(name, args, keep_sources=False)
        elif name == "ln":
            self.copy(name, args, keep_sources=True)
        elif name in ("rm", "unlink", "shred", "rmdir", "touch", "truncate"):
            values = {"-s", "--size", "-r", "--reference", "-d", "--date", "-t", "-n"}
            self.targets(_skip_values(args, values), name)
        elif name in ("chmod", "chown", "chgrp", "chattr", "setfacl"):
            self.metadata(name, args)
        elif name == "dd":
            for a in args:
                if a.startswith("of="):
                    self.add(a[3:], "dd of=")
        elif name in ("vi", "vim", "nvim", "nano", "emacs", "ed", "ex", "code"):
            self.targets(plain, name)
        elif name in ("curl", "wget"):
            flags = {"-o", "--output"} if name == "curl" else {"-O", "--output-document"}
            for a, b in zip(args, args[1:], strict=False):
                if a in flags:
                    self.add(b, f"{name} {a}")
        elif name == "git":
            self.git(args)
        elif name in ("patch",):
            self.unknown("patch")
        elif name in ("tar", "unzip"):
            extracting = name == "unzip" or any(
                a == "--extract" or re.fullmatch(r"-?[A-Za-z]*x[A-Za-z]*", a) for a in args[:1]
            )
            if extracting:
                self.unknown(f"{name} extracting files")
        elif name in ("node", "deno", "bun", "ruby"):
            for a, b in zip(args, args[1:], strict=False):
                if a in ("-e", "--eval", "-p", "--print"):
                    self.code(b, f"{name} {a}")
        elif name in ("bash", "sh", "zsh", "dash", "ksh"):
            self.shell(name, args, heredoc)
        elif name == "eval":
            self.nested(" ".join(args), "eval")
        elif name == "find":
            self.find(args)
        elif name == "xargs":
            inner = self.unwrap(_after_options(args, _XARGS_VALUES))
            if inner:
                before = len(self.writes)
                self.dispatch(inner, None)
                if len(self.writes) > before or _is_writer(inner[0]):
                    self.unknown(f"xargs {os.path.basename(inner[0])} (file names from stdin)")
        elif name in ("apply_patch", "applypatch"):
            patch = heredoc if heredoc is not None else (args[0] if args else "")
            self.targets(patch_paths(patch), "apply_patch")

    def targets(self, paths: list[str], via: str) -> None:
        if not paths:
            self.unknown(f"{via} (file names not given)")
        for p in paths:
            self.add(p, via)

    def metadata(self, name: str, args: list[str]) -> None:
        """chmod/chown and kin change who may read or write a file: a write to the lock."""
        plain = _skip_values(args, {"--reference", "-m", "-x", "-M", "-X"})
        if not any(a.startswith("--reference") for a in args) and name != "setfacl":
            plain = plain[1:]  # the mode, owner or attribute comes first
        self.targets(plain, name)

    def code(self, code: str, via: str) -> None:
        found = code_writes(code)
        for path in found or []:
            if path:
                self.add(path, via)
            else:
                self.unknown(f"{via} writes a file it does not name")

    def python(self, args: list[str], heredoc: str | None) -> None:
        i = 0
        while i < len(args):
            a = args[i]
            if a == "-c" and i + 1 < len(args):
                self.code(args[i + 1], "python -c")
                return
            if a.startswith("-c") and len(a) > 2:
                self.code(a[2:], "python -c")
                return
            if a == "-m" or not a.startswith("-") or a == "-":
                break
            i += 1
        script = args[i] if i < len(args) else None
        if heredoc is not None and script in (None, "-"):
            self.code(heredoc, "python heredoc")

    def shell(self, name: str, args: list[str], heredoc: str | None) -> None:
        for i, a in enumerate(args):
            if a.startswith("-") and not a.startswith("--") and "c" in a[1:]:
                if i + 1 < len(args):
                    self.nested(args[i + 1], f"{name} -c")
                return
            if not a.startswith("-"):
                return  # runs a script file: executing is not editing
        if heredoc is not None:
            self.nested(heredoc, f"{name} heredoc")

    def sed(self, args: list[str]) -> None:
        inplace, script_given, files = False, False, []
        i = 0
        while i < len(args):
            a = args[i]
            if a in ("-e", "--expression", "-f", "--file"):
                script_given = True
                i += 2
                continue
            if a.startswith("--in-place") or (
                a.startswith("-") and not a.startswith("--") and "i" in a[1:].split("e")[0]
            ):
                inplace = True
            elif a.startswith("-") and a != "-":
                pass
            elif not script_given:
                script_given = True
            else:
                files.append(a)
            i += 1
        if inplace:
            self.targets(files, "sed -i")

    def perl(self, args: list[str]) -> None:
        inplace, files, i = False, [], 0
        while i < len(args):
            a = args[i]
            if a in ("-e", "-E"):
                if i + 1 < len(args):
                    self.code(args[i + 1], "perl -e")
                i += 2
                continue
            if a.startswith("-") and not a.startswith("--"):
                switches = a[1:]
                if "i" in switches:
                    inplace = True
                if switches.endswith("e") and i + 1 < len(args):
                    self.code(args[i + 1], "perl -e")
                    i += 2
                    continue
            else:
                files.append(a)
            i += 1
        if inplace:
            self.targets(files, "perl -i")

    def copy(self, name: str, args: list[str], keep_sources: bool) -> None:
        values = {"-t", "--target-directory", "-S", "--suffix", "-m", "--mode", "-o", "-g", "-e"}
        target_dir = None
        for a, b in zip(args, args[1:], strict=False):
            if a in ("-t", "--target-directory"):
                target_dir = b
        for a in args:
            if a.startswith("--target-directory="):
                target_dir = a.split("=", 1)[1]
        paths = _skip_values(args, values)
        if target_dir is None:
            if len(paths) < 2:
                if name == "ln" and paths:
                    self.add(os.path.basename(paths[0].rstrip("/")), name)
                else:
                    self.unknown(f"{name} (destination not given)")
                return
            *sources, dest = paths
        else:
            sources, dest = paths, target_dir
        full = Path(os.path.join(self.cwd, os.path.expanduser(dest)))
        if target_dir is not None or full.is_dir() or dest.endswith("/"):
            for src in sources:
                self.add(os.path.join(dest, os.path.basename(src.rstrip("/"))), f"{name} into")
            if not sources:
                self.add(dest, name)
        else:
            self.add(dest, name)
        if not keep_sources:
            for src in sources:
                self.add(src, f"{name} (moves away)")

    def git(self, args: list[str]) -> None:
        i = 0
        while i < len(args) and args[i].startswith("-"):
            i += 2 if args[i] in ("-C", "-c", "--git-dir", "--work-tree") else 1
        if i >= len(args):
            return
        sub, rest = args[i], args[i + 1 :]
        if sub in ("mv", "rm"):
            self.targets([a for a in rest if not a.startswith("-")], f"git {sub}")
        elif sub in ("checkout", "restore") and "--" in rest:
            self.targets(rest[rest.index("--") + 1 :], f"git {sub} --")
        elif sub in _GIT_REWRITES:
            if sub == "stash" and rest[:1] in ([], ["list"], ["show"], ["push"], ["save"]):
                if rest[:1] in ([], ["push"], ["save"]):
                    self.unknown("git stash (reverts tracked files)")
                return
            self.unknown(f"git {sub} (rewrites tracked files)")

    def find(self, args: list[str]) -> None:
        for i, a in enumerate(args):
            if a in ("-exec", "-execdir", "-ok", "-okdir"):
                end = next(
                    (j for j in range(i + 1, len(args)) if args[j] in (";", "+", "\\;")), len(args)
                )
                inner = args[i + 1 : end]
                if inner:
                    before = len(self.writes)
                    self.dispatch(self.unwrap(inner), None)
                    if len(self.writes) > before or _is_writer(inner[0]):
                        self.unknown(f"find {a} {os.path.basename(inner[0])}")
            elif a == "-delete":
                self.unknown("find -delete")
            elif a in ("-fprint", "-fprint0", "-fprintf", "-fls") and i + 1 < len(args):
                self.add(args[i + 1], f"find {a}")


_WRITERS = {"sed", "perl", "tee", "cp", "mv", "rm", "touch", "truncate", "install", "ln", "dd"}


def _is_writer(argv0: str) -> bool:
    return os.path.basename(argv0) in _WRITERS


_XARGS_VALUES = {"-I", "-n", "-P", "-L", "-s", "-d", "-E", "-a", "--arg-file", "--delimiter"}


def _after_options(args: list[str], takes_value: set[str]) -> list[str]:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in takes_value else 1
    return args[i:]


def _skip_values(args: list[str], takes_value: set[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in takes_value:
            skip = True
        elif a == "--" or (a.startswith("-") and a != "-"):
            continue
        else:
            out.append(a)
    return out


READ_ONLY = {
    "ls",
    "cat",
    "head",
    "tail",
    "less",
    "more",
    "grep",
    "egrep",
    "fgrep",
    "rg",
    "ag",
    "wc",
    "pwd",
    "echo",
    "printf",
    "true",
    "false",
    "which",
    "type",
    "file",
    "stat",
    "du",
    "df",
    "tree",
    "diff",
    "cmp",
    "sort",
    "uniq",
    "cut",
    "tr",
    "column",
    "nl",
    "od",
    "xxd",
    "hexdump",
    "md5sum",
    "sha1sum",
    "sha256sum",
    "basename",
    "dirname",
    "realpath",
    "readlink",
    "date",
    "whoami",
    "id",
    "uname",
    "hostname",
    "nproc",
    "free",
    "nvidia-smi",
    "jq",
    "test",
    "[",
    "sleep",
    "ps",
    "env",
    "printenv",
    "find",
}
_HARMLESS_REDIRECT = re.compile(r"(?:\d|&)?>>?\s*/dev/null\b|\d?>&\d")
_READ_ONLY_GIT = {
    "status",
    "diff",
    "log",
    "show",
    "branch",
    "rev-parse",
    "ls-files",
    "blame",
    "describe",
    "remote",
    "shortlog",
    "grep",
    "config",
}


def read_only(command: str) -> bool:
    """True for a command line recognisably read-only: only listing/reading tools, no redirection
    into a file, no `find -exec/-delete`, only reading git subcommands. Anything else is
    bracketed by the lock's before/after check."""
    text, _bodies = _split_heredocs(command)
    text = _HARMLESS_REDIRECT.sub(" ", text)
    if _bodies or _SUBST.search(text) or ">" in text:
        return False
    try:
        tokens = _tokens(text)
    except ValueError:
        return False
    reader = _Reader(Path("/"))
    for words in _commands(tokens):
        words = [w for w in words if w not in REDIRECT_OTHER]
        if not words:
            continue
        name = os.path.basename(words[0])
        if name == "git":
            sub = [w for w in words[1:] if not w.startswith("-")]
            if not sub or sub[0] not in _READ_ONLY_GIT or "-C" in words:
                return False
            if sub[0] in ("branch", "remote", "config") and len(sub) > 1 and sub[0] != "config":
                return False
            if sub[0] == "config" and not any(w in ("--get", "--list", "-l") for w in words):
                return False
            continue
        if name not in READ_ONLY or (name == "env" and len(words) > 1):
            return False
        if name == "find" and any(
            w.startswith(("-exec", "-ok", "-delete", "-fprint", "-fls")) for w in words
        ):
            return False
        reader.dispatch(words, None)
    return not reader.writes


def shell_writes(command: str, cwd: Path) -> list[ShellWrite]:
    """Every write `command` would make, run in `cwd`; unknown targets have path=None."""
    reader = _Reader(Path(cwd))
    reader.read(command)
    return reader.writes
