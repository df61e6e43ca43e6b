#!/usr/bin/env bash
# `make demo`: the whole /train path on the embedded example (see `trainwright demo --help`),
# kept in ./demo-project for the person to open. An earlier demo is moved aside, not deleted.
set -euo pipefail
VENV=${1:-.venv}
DEMO=demo-project
if [ -e "$DEMO" ]; then
  STAMP=$(date +%Y%m%d-%H%M%S)
  mv "$DEMO" "$DEMO.previous-$STAMP"
  echo "moved the previous demo to $DEMO.previous-$STAMP"
fi
"$VENV/bin/trainwright" doctor
echo
"$VENV/bin/trainwright" demo --keep "$DEMO"
