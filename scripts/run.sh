#!/usr/bin/env bash
# README command 1: install everything, then run baseliner on its embedded defaults:
# SQLite in var/, a private Redis on a free loopback port that this script starts, a Celery worker
# with beat, and the ASGI server on http://127.0.0.1:${PORT:-8000}/. Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export BASELINER_VAR_DIR="${BASELINER_VAR_DIR:-$PWD/var}"
mkdir -p "$BASELINER_VAR_DIR/run"
PORT="${PORT:-8000}"
# The machines' `score` command posts here: this server, on whatever port it was given.
export BASELINER_PUBLIC_URL="${BASELINER_PUBLIC_URL:-http://127.0.0.1:$PORT}"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ -z "${REDIS_URL:-}" ]; then
  # A private Redis on a free loopback port (channel layer, Celery broker, cache).
  rport=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --bind 127.0.0.1 --port "$rport" --save "" --appendonly no \
    --dir "$BASELINER_VAR_DIR/run" --logfile "$BASELINER_VAR_DIR/run/redis.log" &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export REDIS_URL="redis://127.0.0.1:$rport/0"
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
.venv/bin/python -m baseliner.serve baseliner.asgi:application --host 127.0.0.1 --port "$PORT" --log-level warning \
  --workers "${WEB_WORKERS:-1}" &
pids+=($!)
wait -n "${pids[@]}" || true
echo "A baseliner process stopped; see the logs in $BASELINER_VAR_DIR/run/. Stopping the rest." >&2
exit 1
