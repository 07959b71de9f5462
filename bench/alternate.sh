#!/usr/bin/env bash
# Alternated runs of bench/concurrency.py, so that contenders are compared within the same
# minutes of a noisy VM (the same contender varies up to 5x between runs; see bench/RESULTS.md):
#   bash bench/alternate.sh [rounds] [n] [out-dir]        (as root; about 2 minutes a run)
# Each round runs webssh in tmux, baseliner (2 uvicorn workers) and plain webssh, 20 s apart,
# and prints one table row per run, with the time it started.
set -uo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}; N=${2:-200}; OUT=${3:-/tmp/bench-alternate}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
bash bench/setup_peers.sh >/dev/null
for i in $(seq "$ROUNDS"); do
  for t in webssh-tmux baseliner webssh; do
    case $t in
      baseliner) args=(--target baseliner --workers 2) ;;
      webssh) args=(--target webssh) ;;
      webssh-tmux) args=(--target webssh --webssh-tmux) ;;
    esac
    sleep 20
    started=$(date -u +%H:%M)
    timeout 900 "$PY" bench/concurrency.py "${args[@]}" --n "$N" --duration 12 --no-storm \
      --json "$OUT/$t-$i.json" >"$OUT/$t-$i.log" 2>&1
    echo "$started $(grep '^| [a-z]' "$OUT/$t-$i.log" | grep -v '^| contender' | head -1)"
  done
done
