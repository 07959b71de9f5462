#!/usr/bin/env bash
# README command 2: install everything, make sure PostgreSQL and Redis answer (starting the
# machine's own if they do not), then run the whole test suite, browser tests included.
# Extra arguments go to pytest (e.g. scripts/test.sh -k clock -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

log() { printf '\033[1m[test]\033[0m %s\n' "$*"; }
[ -f .env ] && { set -a; . ./.env; set +a; }
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/baseliner}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/9}"

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  log "PostgreSQL is not answering; starting it"
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] && { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
  fi
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "Redis is not answering; starting it"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/baseliner-test-redis.log
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi

log "checks: migrations and deploy settings"
# (on an in-memory SQLite: the check reads only the models and migration files, and the
# PostgreSQL database named above need not exist before pytest creates its test database)
DATABASE_URL=sqlite:///:memory: .venv/bin/python manage.py makemigrations --check --dry-run >/dev/null \
  || { echo "models changed without a migration: run manage.py makemigrations" >&2; exit 1; }

log "pytest"
exec .venv/bin/python -m pytest "$@"
