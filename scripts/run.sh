#!/usr/bin/env bash
# README command 1: install everything, then run baseliner on its embedded defaults:
# SQLite in var/, a private Redis on a Unix socket that this script starts, a Celery worker
# with beat, and the ASGI server on http://127.0.0.1:${PORT:-8000}/. Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export BASELINER_VAR_DIR="${BASELINER_VAR_DIR:-$PWD/var}"
mkdir -p "$BASELINER_VAR_DIR/run"
PORT="${PORT:-8000}"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ -z "${REDIS_URL:-}" ]; then
  sock="$BASELINER_VAR_DIR/run/redis.sock"
  redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --save "" --appendonly no \
    --dir "$BASELINER_VAR_DIR/run" --logfile "$BASELINER_VAR_DIR/run/redis.log" &
  pids+=($!)
  for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
  export REDIS_URL="unix://$sock?db=0"
fi

py=.venv/bin/python
$py manage.py migrate --noinput
[ -d environments ] && $py manage.py help sync_environments >/dev/null 2>&1 && $py manage.py sync_environments
$py manage.py seed_demo

.venv/bin/celery -A baseliner worker --beat --loglevel=INFO --concurrency=2 \
  --schedule "$BASELINER_VAR_DIR/run/celerybeat-schedule" >"$BASELINER_VAR_DIR/run/celery.log" 2>&1 &
pids+=($!)

echo
echo "  baseliner is running:  http://127.0.0.1:$PORT/"
echo "  demo admin:  admin / admin-demo-pass     demo expert:  expert / expert-demo-pass"
echo "  logs: $BASELINER_VAR_DIR/run/  (Ctrl-C stops everything)"
echo
.venv/bin/uvicorn baseliner.asgi:application --host 127.0.0.1 --port "$PORT" --log-level warning &
pids+=($!)
wait -n "${pids[@]}"
