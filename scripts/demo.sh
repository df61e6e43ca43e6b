#!/usr/bin/env bash
# The main job on the embedded example. For now: install the pack into a fresh project folder,
# start a training project in its grimoire, check the state files, and report the machine.
set -euo pipefail
VENV=${1:-.venv}
TW="$VENV/bin/trainwright"
DEMO=demo-project
STAMP=$(date +%Y%m%d-%H%M%S)
if [ -e "$DEMO" ]; then
  # Nothing is deleted: an earlier demo is moved aside.
  mv "$DEMO" "$DEMO.previous-$STAMP"
  echo "moved the previous demo to $DEMO.previous-$STAMP"
fi
echo "== trainwright init $DEMO"
"$TW" init "$DEMO"
echo
echo "== trainwright grimoire new example-style"
"$TW" --grimoire "$DEMO/grimoire" grimoire new example-style
"$TW" --grimoire "$DEMO/grimoire" grimoire set intent --project example-style \
  Type=style "Trigger word=exstyle" "Base model=sdxl" "Description=demo project"
echo
echo "== trainwright grimoire validate"
"$TW" --grimoire "$DEMO/grimoire" grimoire validate
echo
echo "== trainwright doctor"
"$TW" --grimoire "$DEMO/grimoire" doctor
echo
echo "demo done: see $DEMO/ (CLAUDE.md, .claude/skills/, grimoire/training/example-style/)"
