#!/bin/sh
# trainwright UserPromptSubmit hook for Claude Code (.claude/settings.json) and Codex
# (.codex/hooks.json). Usage: retro-prompt.sh claude|codex, the prompt event as JSON on stdin.
# A prompt that starts with <retrospective> gets context from `trainwright retro hook`; every
# other prompt, a missing trainwright or a failing one adds nothing and never blocks (exit 0).
agent=${1:-claude}
input=$(cat)
printf '%s' "$input" | grep -qi 'retrospective' || exit 0

root=${CLAUDE_PROJECT_DIR:-$(pwd)}
exe=${TRAINWRIGHT_BIN:-}
if [ -z "$exe" ]; then
  for candidate in "$(command -v trainwright 2>/dev/null)" "$root/.venv/bin/trainwright" \
    "$root/venv/bin/trainwright"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then exe=$candidate; break; fi
  done
fi
[ -n "$exe" ] && [ -x "$exe" ] || exit 0
printf '%s' "$input" | "$exe" retro hook --agent "$agent"
exit 0
