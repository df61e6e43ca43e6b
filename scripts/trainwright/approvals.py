"""Commands the agent must not approve for the person: one list, turned into agent rules.

Each entry is a command that takes an approval flag the agent could type itself, spends money, or
overwrites a person's work. `trainwright init` merges the Claude Code `permissions.ask` rules into
a project's `.claude/settings.json` (the person's own rules stay), and the pack ships the same
list as Codex rules in `.codex/rules/trainwright.rules` (`decision = "prompt"`). A command added
here (the cloud commands, say) reaches both agents; tests check the shipped files match.
"""

from __future__ import annotations

ASK_COMMANDS: tuple[tuple[str, str], ...] = (
    ("retro apply", "writes a result skill or troubleshooting entry; --approved is the person's"),
    ("ticket archive", "closes a ticket; --user-verified is the person's"),
    ("register", "registers a trained result as the one to use"),
    ("launch", "starts a training run on GPU time the person pays for"),
    ("runs launch", "submits jobs that spend cluster or cloud time"),
    ("captions apply", "writes captions, and with --replace overwrites the person's own"),
    ("cloud up", "rents a GPU instance: spends money"),
    ("cloud down", "destroys a rented instance and anything on it not pulled back"),
)

# Other programs the pack's skills name that spend money or destroy work (`cloud sky` writes a
# task for SkyPilot; the person launches it).
OTHER_ASK_COMMANDS: tuple[tuple[str, str], ...] = (
    ("sky launch", "rents a cluster through SkyPilot: spends money"),
    ("sky down", "destroys a SkyPilot cluster and anything on it not copied back"),
)

# How the command is typed: the console script, the project's venv, or the module.
CLAUDE_PREFIXES = (
    "trainwright",
    ".venv/bin/trainwright",
    "python -m trainwright",
    "python3 -m trainwright",
    ".venv/bin/python -m trainwright",
)


def claude_ask_rules() -> list[str]:
    """`permissions.ask` entries for `.claude/settings.json`, in a stable order."""
    ours = [f"Bash({p} {cmd}:*)" for cmd, _ in ASK_COMMANDS for p in CLAUDE_PREFIXES]
    return ours + [f"Bash({cmd}:*)" for cmd, _ in OTHER_ASK_COMMANDS]


def merge_ask(settings: dict[str, object]) -> bool:
    """Add the pack's ask rules to a parsed settings object; False if its shape is not a map."""
    perms = settings.setdefault("permissions", {})
    if not isinstance(perms, dict):
        return False
    ask = perms.setdefault("ask", [])
    if not isinstance(ask, list):
        return False
    ask.extend(rule for rule in claude_ask_rules() if rule not in ask)
    return True


def codex_rules() -> str:
    """The Starlark rules file Codex reads from `.codex/rules/` (prefix_rule, prompt)."""
    lines = [
        "# trainwright: commands Codex must ask the person before running (decision = prompt).",
        "# Generated from scripts/trainwright/approvals.py; edit the list there, not here.",
        "",
    ]
    heads = (
        '["trainwright", ".venv/bin/trainwright"], ',
        '["python", "python3", ".venv/bin/python"], "-m", "trainwright", ',
    )
    rules = [(head, cmd, f"trainwright {cmd} {why}") for cmd, why in ASK_COMMANDS for head in heads]
    rules += [("", cmd, f"{cmd} {why}") for cmd, why in OTHER_ASK_COMMANDS]
    for head, cmd, justification in rules:
        words = ", ".join(f'"{w}"' for w in cmd.split())
        lines += [
            "prefix_rule(",
            f"    pattern = [{head}{words}],",
            '    decision = "prompt",',
            f'    justification = "{justification}",',
            ")",
            "",
        ]
    return "\n".join(lines)
