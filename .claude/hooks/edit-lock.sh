#!/bin/sh
# trainwright source-edit lock: the PreToolUse and PostToolUse hook for Claude Code
# (.claude/settings.json) and Codex (.codex/hooks.json). Usage: edit-lock.sh claude|codex, the
# tool call as JSON on stdin.
#
# It finds the project (the outermost folder with tickets at or above CLAUDE_PROJECT_DIR, else
# the current folder; else the nearest one with tickets/ or .git) and runs `trainwright ticket
# hook`, which exits 0 (allow) or 2 (block, reason on stderr). It fails closed: while a ticket is
# active, a missing or crashing trainwright blocks the write (exit 2) instead of letting it
# through. trainwright is looked up as $TRAINWRIGHT_BIN, then on PATH, then in the project's
# .venv/ or venv/.
agent=${1:-claude}

start=${CLAUDE_PROJECT_DIR:-$(pwd)}
root=$start
d=$start
while [ "$d" != "/" ] && [ -n "$d" ]; do
  if [ -d "$d/tickets" ] || [ -e "$d/.git" ]; then root=$d; break; fi
  d=$(dirname "$d")
done
# A repository nested inside a project does not hide the project's tickets: the outermost
# folder above with tickets/in-progress or tickets/done wins.
d=$start
while [ "$d" != "/" ] && [ -n "$d" ]; do
  if [ -d "$d/tickets/in-progress" ] || [ -d "$d/tickets/done" ]; then root=$d; fi
  d=$(dirname "$d")
done

# Tickets live in the main checkout; a linked worktree's .git file leads there.
home=$root
if [ -f "$root/.git" ]; then
  common=$(git -C "$root" rev-parse --path-format=absolute --git-common-dir 2>/dev/null) &&
    [ "$(basename "$common")" = ".git" ] && home=$(dirname "$common")
fi

active=no
for f in "$home"/tickets/in-progress/*; do
  [ -d "$f" ] && { active=yes; break; }
done
# An open before/after check (a shell call in flight) must be closed even if the call removed
# the tickets.
for f in "$home"/.trainwright/edit-lock/open/*.json; do
  [ -f "$f" ] && { active=yes; break; }
done
# No active ticket: the lock is off, and the hook costs one directory listing.
[ "$active" = no ] && [ "$home" = "$root" ] && exit 0

exe=${TRAINWRIGHT_BIN:-}
if [ -z "$exe" ]; then
  for candidate in "$(command -v trainwright 2>/dev/null)" "$root/.venv/bin/trainwright" \
    "$root/venv/bin/trainwright" "$home/.venv/bin/trainwright" "$home/venv/bin/trainwright"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then exe=$candidate; break; fi
  done
fi

if [ -z "$exe" ] || [ ! -x "$exe" ]; then
  [ "$active" = no ] && exit 0
  echo "trainwright edit lock: blocked to be safe: a ticket is active in $home/tickets/in-progress but the trainwright command was not found (not on PATH, not in .venv/ or venv/). Install it, or set TRAINWRIGHT_BIN to its path in the agent's environment." >&2
  exit 2
fi

"$exe" ticket hook --agent "$agent" --root "$root"
rc=$?
if [ "$rc" -eq 0 ] || [ "$rc" -eq 2 ]; then exit "$rc"; fi
[ "$active" = no ] && exit 0
echo "trainwright edit lock: blocked to be safe: '$exe ticket hook' failed with exit code $rc while a ticket is active. Run 'trainwright ticket status' to see what is wrong." >&2
exit 2
